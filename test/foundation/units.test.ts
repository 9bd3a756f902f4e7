import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BoundedSink, HeadTail } from '../../src/artifacts/bounded-sink.js';
import { Redactor } from '../../src/artifacts/redactor.js';
import { parseArtifactUri } from '../../src/artifacts/uri.js';
import { parseJsonc } from '../../src/config/jsonc.js';
import { parseRefs } from '../../src/config/secret-refs.js';
import { ulid } from '../../src/core/ids.js';
import { isPlainRequest } from '../../src/server/stdio-transport.js';
import { JSONRPCMessageSchema } from '@modelcontextprotocol/sdk/types.js';

describe('redactor', () => {
  const secret = 'hunter2-SECRET-value';
  const r = new Redactor();
  r.addSecret(secret);

  it('replaces a secret, its base64 and its URL-encoded forms', () => {
    const b64 = Buffer.from(secret).toString('base64');
    const text = `a ${secret} b ${b64} c ${encodeURIComponent('x' + secret)}`;
    const out = r.redact(text);
    assert.ok(!out.includes(secret));
    assert.ok(!out.includes(b64));
    assert.match(out, /\[REDACTED\]/);
  });

  it('replaces well-known token shapes', () => {
    const samples = [
      'ghp_' + 'a'.repeat(36),
      'glpat-' + 'b'.repeat(20),
      'xoxb-' + '1234567890-abcdef',
      'AKIA' + 'ABCDEFGHIJKLMNOP',
      'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----',
    ];
    for (const s of samples) {
      const out = r.redact(`x ${s} y`);
      assert.ok(!out.includes(s), `not redacted: ${s.slice(0, 20)}`);
      assert.match(out, /REDACTED/);
    }
    assert.equal(r.redact('Authorization: Bearer abcdefgh12345678'), 'Authorization: Bearer [REDACTED:bearer]');
  });

  it('finds the shortest matches whole: a 4-character secret and the shortest token shapes alone in a string', () => {
    const short = new Redactor();
    short.addSecret('pw42');
    assert.equal(short.redact('pw42'), '[REDACTED]');
    // each is exactly as long as the shape's shortest match (strings shorter than every match are not searched)
    for (const s of ['xoxb-1234567890', 'Bearer abcdefgh', 'AKIAABCDEFGHIJKLMNOP']) {
      assert.match(short.redact(s), /REDACTED/, s);
      assert.equal(short.redact(s.slice(1)), s.slice(1));
    }
  });

  it('redacts a secret split across stream chunks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'infra-unit-'));
    const sink = new BoundedSink({
      name: 'out',
      path: join(dir, 'out'),
      uri: 'artifact://calls/x/out',
      inlineBytes: 1024,
      artifactMaxBytes: 1 << 30,
      redactor: r,
    });
    const payload = `start ${secret} middle ${secret} end`;
    // one byte at a time: every boundary splits the secret somewhere
    for (const ch of Buffer.from(payload)) sink.write(Buffer.from([ch]));
    const res = await sink.done();
    const stored = readFileSync(join(dir, 'out'), 'utf8');
    assert.equal(stored, 'start [REDACTED] middle [REDACTED] end');
    assert.equal(res.sha256, createHash('sha256').update(stored).digest('hex'));
    assert.equal(statSync(join(dir, 'out')).mode & 0o777, 0o600);
  });
});

describe('head and tail', () => {
  it('keeps the whole stream under the cap, head and tail over it', () => {
    const h = new HeadTail(10);
    h.push(Buffer.from('abc'));
    assert.equal(h.text(), 'abc');
    h.push(Buffer.from('defghijklmnopqrstuvwxyz'));
    assert.ok(h.truncated);
    const t = h.text();
    assert.ok(t.startsWith('abcde'));
    assert.ok(t.endsWith('vwxyz'));
    assert.match(t, /16 bytes omitted/);
  });
});

describe('artifact URIs', () => {
  it('path traversal through an artifact URI is refused', () => {
    for (const bad of [
      'artifact://calls/../../etc/passwd',
      'artifact://calls/%2e%2e/x',
      'artifact:///etc/passwd',
      'artifact://calls/a\0b',
      'artifact://calls/a\\..\\b',
      'artifact://other/x',
      'file:///etc/passwd',
      'artifact://calls/./x',
    ]) {
      assert.throws(
        () => parseArtifactUri(bad),
        (e: { code?: string }) => e.code === 'INVALID_ARGUMENT',
        bad,
      );
    }
    assert.deepEqual(parseArtifactUri('artifact://calls/c_1/stdout'), ['calls', 'c_1', 'stdout']);
    assert.deepEqual(parseArtifactUri('artifact://runs/repo.snapshot/2026-01-29T10:00:00Z'), [
      'runs',
      'repo.snapshot',
      '2026-01-29T10:00:00Z',
    ]);
  });
});

describe('config parsing', () => {
  it('accepts comments and trailing commas, keeps strings intact', () => {
    const v = parseJsonc('{\n // c\n "a": "x // not a comment, }", /* b */ "b": [1,2,],\n}') as Record<string, unknown>;
    assert.deepEqual(v, { a: 'x // not a comment, }', b: [1, 2] });
  });
  it('finds secret references in all spellings', () => {
    const refs = parseRefs('${env:A} ${B} ${file:~/x} ${secret:C}');
    assert.deepEqual(
      refs.map((r) => `${r.kind}:${r.name}`),
      ['env:A', 'env:B', 'file:~/x', 'secret:C'],
    );
  });
});

describe('ids', () => {
  it('are strictly increasing', () => {
    let prev = '';
    for (let i = 0; i < 5000; i++) {
      const id = ulid();
      assert.ok(id > prev);
      prev = id;
    }
  });
});

describe('stdio transport: the hand check of plain requests', () => {
  it('accepts only what the SDK schema accepts, unchanged', () => {
    const samples: unknown[] = [
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'state', arguments: { action: 'get', key: 'k' } } },
      { jsonrpc: '2.0', id: 'a', method: 'tools/list' },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { jsonrpc: '2.0', id: 1.5, method: 'x' },
      { jsonrpc: '2.0', id: null, method: 'x' },
      { jsonrpc: '2.0', id: 1, method: 'x', params: 'str' },
      { jsonrpc: '2.0', id: 1, method: 'x', params: [] },
      { jsonrpc: '2.0', id: 1, method: 'x', params: null },
      { jsonrpc: '2.0', id: 1, method: 'x', params: undefined },
      { jsonrpc: '2.0', id: 1, method: 'x', extra: true },
      { jsonrpc: '1.0', id: 1, method: 'x' },
      { jsonrpc: '2.0', id: 1, method: 7 },
      { jsonrpc: '2.0', id: 1, method: 'x', params: { _meta: { progressToken: 1.5 } } },
      { jsonrpc: '2.0', id: 1, result: {} },
      [{ jsonrpc: '2.0', id: 1, method: 'x' }],
      null,
      'text',
    ];
    let fast = 0;
    for (const v of samples) {
      if (!isPlainRequest(v)) continue;
      fast++;
      const parsed = JSONRPCMessageSchema.safeParse(v);
      assert.equal(parsed.success, true, `hand check accepted what the schema refuses: ${JSON.stringify(v)}`);
      assert.deepEqual(parsed.data, v);
    }
    assert.equal(fast, 3, 'the three plain messages take the fast path');
  });
});
