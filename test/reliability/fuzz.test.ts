/**
 * Hostile input (issue 11): property-based fuzzing with fast-check, seeded and bounded.
 *  1. every tool's arguments, derived from the live tools/list inputSchemas and the catalog
 *     (hidden tools and aliases too): wrong types, unknown keys and actions, huge strings, deep
 *     nesting, NUL bytes, lone surrogates — each call answers within a bound, as a result or a
 *     clear isError envelope with a known code; the server keeps answering.
 *  2. raw JSON-RPC framing written straight to the server's stdin: malformed JSON, huge lines,
 *     deep nesting, wrong types, invalid UTF-8 bytes, batch arrays, unknown methods — requests
 *     that carry an id get a JSON-RPC response, and the server answers a ping afterwards.
 * RELIABILITY_FUZZ_SEED replays a run; RELIABILITY_FUZZ_RUNS scales it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { CLI, REPO_ROOT, startStdio, type StdioSession } from '../helpers/client.js';
import { makeProject, type TempProject } from '../helpers/project.js';
import { auditCount, clearError } from './helpers.js';

const SEED = Number(process.env.RELIABILITY_FUZZ_SEED ?? Date.now() % 2 ** 31);
const RUNS = Number(process.env.RELIABILITY_FUZZ_RUNS ?? 1);
const CALL_BOUND_MS = 30_000;

// every outbound request must stay local: the only allowed host does not exist
const POLICY = { http: { allow_hosts: ['fuzz.invalid'] } };

type Schema = { type?: string | string[]; enum?: unknown[]; properties?: Record<string, Schema>; items?: Schema };

const deep = (depth: number, leaf: unknown = 1): unknown => {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? { a: v } : [v];
  return v;
};

/** Values no schema expects. */
const hostile: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, -1, 0, 2 ** 53 + 2, -0),
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.constantFrom(
    '\u0000',
    'a\u0000b',
    '\ud800',
    '\udfff\ud800',
    '../../../etc/passwd',
    'artifact://calls/../../x',
    '%00',
    '${env:HOME}',
    '-rf',
    '\u202e',
  ),
  fc.integer({ min: 100_000, max: 2_000_000 }).map((n) => 'x'.repeat(n)),
  // deeper nesting overflows the SDK client's own serialisation; the framing fuzz sends 100,000 levels raw
  fc.integer({ min: 50, max: 800 }).map((d) => deep(d)),
  fc.array(fc.anything(), { maxLength: 5 }),
  fc.dictionary(fc.string({ maxLength: 10 }), fc.anything(), { maxKeys: 5 }),
);

function typed(s: Schema | undefined): fc.Arbitrary<unknown> {
  if (!s) return fc.anything();
  if (s.enum) return fc.constantFrom(...s.enum);
  const t = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (t) {
    case 'string':
      return fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 }));
    case 'integer':
      return fc.integer({ min: -5, max: 2_000 });
    case 'number':
      return fc.double({ min: -5, max: 2_000, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(typed(s.items), { maxLength: 4 });
    case 'object':
      return fc.dictionary(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), { maxKeys: 4 });
    default:
      return fc.anything();
  }
}

function argsFor(schema: Schema): fc.Arbitrary<Record<string, unknown>> {
  const props = schema.properties ?? {};
  const actionEnum = props.action?.enum ?? [];
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [k, v] of Object.entries(props)) {
    if (k === 'action') continue;
    // mostly well-typed (to reach the handlers), sometimes hostile
    fields[k] = fc.oneof({ arbitrary: typed(v), weight: 3 }, { arbitrary: hostile, weight: 1 });
  }
  const action = fc.oneof(
    { arbitrary: actionEnum.length ? fc.constantFrom(...actionEnum) : fc.constant(undefined), weight: 6 },
    { arbitrary: fc.string({ maxLength: 20 }), weight: 1 },
    { arbitrary: hostile, weight: 1 },
  );
  const known = fc.record(fields, { requiredKeys: [] });
  const unknown = fc.dictionary(
    fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !(k in props) && k !== '__proto__'),
    hostile,
    { maxKeys: 2 },
  );
  return fc
    .tuple(action, known, fc.oneof({ arbitrary: fc.constant({}), weight: 4 }, { arbitrary: unknown, weight: 1 }))
    .map(([a, k, u]) => ({
      ...(a === undefined ? {} : { action: a }),
      ...k,
      ...u,
    }));
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (a hang)`)), ms);
    }),
  ]);
}

async function check(prop: fc.IAsyncProperty<[unknown]> | fc.IAsyncPropertyWithHooks<never>, numRuns: number): Promise<void> {
  try {
    await fc.assert(prop as fc.IAsyncProperty<[unknown]>, { seed: SEED, numRuns: numRuns * RUNS, endOnFailure: true });
  } catch (e) {
    throw new Error(`fuzz failure (replay with RELIABILITY_FUZZ_SEED=${SEED}): ${(e as Error).message.slice(0, 4000)}`);
  }
}

describe(`fuzz (seed ${SEED})`, () => {
  let p: TempProject;
  let s: StdioSession;
  let stderr = '';
  before(async () => {
    process.stdout.write(`# fuzz seed ${SEED} (replay: RELIABILITY_FUZZ_SEED=${SEED})\n`);
    p = makeProject({ 'policy.json': POLICY });
    s = await startStdio({ env: { MCP_PROFILES_DIR: p.infraDir } });
    s.transport.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-20_000);
    });
  });
  after(async () => {
    await s?.close();
    p?.cleanup();
  });

  it('every tool, every argument: a result or a clear isError, never a crash or a hang', { timeout: 600_000 }, async () => {
    const { tools } = await s.client.listTools();
    const catalog = JSON.parse(readFileSync(join(REPO_ROOT, 'tool_catalog.json'), 'utf8')) as {
      aliases: Record<string, string>;
      tools: { name: string; actions: { action: string; input_schema: Schema }[] }[];
    };
    const schemas = new Map<string, Schema>(tools.map((t) => [t.name, t.inputSchema as Schema]));
    // hidden tools (local, secrets …) and aliases are callable by name: fuzz them from the catalog
    for (const t of catalog.tools) {
      if (schemas.has(t.name)) continue;
      const properties: Record<string, Schema> = { action: { type: 'string', enum: t.actions.map((a) => a.action) } };
      for (const a of t.actions) Object.assign(properties, a.input_schema.properties ?? {});
      schemas.set(t.name, { type: 'object', properties });
    }
    for (const [alias, target] of Object.entries(catalog.aliases)) if (schemas.has(target)) schemas.set(alias, schemas.get(target)!);
    let calls = 0;
    const codes = new Map<string, number>();
    for (const [name, schema] of schemas) {
      await check(
        fc.asyncProperty(argsFor(schema), async (args) => {
          calls++;
          const res = await withTimeout(
            s.client.callTool({ name, arguments: args }, undefined, { timeout: CALL_BOUND_MS + 5_000 }),
            CALL_BOUND_MS,
            `${name} ${JSON.stringify(args).slice(0, 300)}`,
          );
          const env = res.structuredContent as { ok?: boolean } | undefined;
          assert.ok(env && typeof env.ok === 'boolean', `${name}: a structured envelope`);
          if (res.isError || env.ok === false) {
            const { code } = clearError(env as Record<string, unknown>, `${name} ${JSON.stringify(args).slice(0, 300)}`);
            codes.set(code, (codes.get(code) ?? 0) + 1);
          } else codes.set('ok', (codes.get('ok') ?? 0) + 1);
        }),
        name.startsWith('mcp_') ? 5 : 25,
      );
    }
    // the server is alive and every call was audited
    await withTimeout(s.client.ping(), 10_000, 'ping after the argument fuzz');
    await withTimeout(s.client.listTools(), 10_000, 'tools/list after the argument fuzz');
    assert.equal(auditCount(join(p.infraDir, 'infra.db')), calls, 'one audit row per fuzzed call');
    process.stdout.write(`# argument fuzz: ${calls} calls over ${schemas.size} tool names: ${JSON.stringify(Object.fromEntries(codes))}\n`);
    assert.doesNotMatch(stderr, /uncaught|unhandled|FATAL/i, stderr.slice(-2000));
  });
});

/** The server over raw stdio: bytes in, newline-delimited JSON out. */
class RawServer {
  readonly child: ChildProcessWithoutNullStreams;
  private buf = '';
  private readonly waiters = new Map<number | string, (msg: Record<string, unknown>) => void>();
  readonly unsolicited: Record<string, unknown>[] = [];
  exited: { code: number | null; signal: string | null } | undefined;
  stderr = '';

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, [CLI], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', INFRA_LOG_LEVEL: 'warn', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        if (!line.trim()) continue;
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          throw new Error(`the server wrote a line that is not JSON: ${line.slice(0, 200)}`);
        }
        const w = msg.id !== undefined ? this.waiters.get(msg.id as number) : undefined;
        if (w) {
          this.waiters.delete(msg.id as number);
          w(msg);
        } else this.unsolicited.push(msg);
      }
    });
    this.child.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString('utf8')).slice(-20_000);
    });
    this.child.on('exit', (code, signal) => {
      this.exited = { code, signal };
    });
    this.child.stdin.on('error', () => undefined);
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.stdin.write(data)) resolve();
      else this.child.stdin.once('drain', () => resolve());
    });
  }

  request(id: number | string, method: string, params?: unknown, ms = 15_000): Promise<Record<string, unknown>> {
    const p = new Promise<Record<string, unknown>>((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters.delete(id);
        reject(
          new Error(
            `no answer to ${method} (id ${id}) within ${ms} ms${this.exited ? `; the server exited ${JSON.stringify(this.exited)}` : ''}`,
          ),
        );
      }, ms);
      this.waiters.set(id, (m) => {
        clearTimeout(t);
        resolve(m);
      });
    });
    void this.write(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }) + '\n');
    return p;
  }

  /** Waits for the answer to an id sent inside raw bytes (if it comes). */
  answerTo(id: number | string, ms: number): Promise<Record<string, unknown> | undefined> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters.delete(id);
        resolve(undefined);
      }, ms);
      this.waiters.set(id, (m) => {
        clearTimeout(t);
        resolve(m);
      });
    });
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

describe(`raw JSON-RPC framing fuzz (seed ${SEED})`, () => {
  let p: TempProject;
  let srv: RawServer;
  before(async () => {
    p = makeProject({ 'policy.json': POLICY });
    srv = new RawServer({ MCP_PROFILES_DIR: p.infraDir });
    const init = await srv.request(0, 'initialize', {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 'raw-fuzz', version: '1' },
    });
    assert.ok(init.result, JSON.stringify(init));
    await srv.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) + '\n');
  });
  after(() => {
    srv?.kill();
    p?.cleanup();
  });

  let nextId = 1000;
  const garbage: fc.Arbitrary<{ bytes: Buffer; id?: number; expectAnswer: boolean; label: string }> = fc.oneof(
    // malformed JSON text
    fc.string({ maxLength: 200 }).map((t) => ({ bytes: Buffer.from(t.replace(/\n/g, ' ') + '\n'), expectAnswer: false, label: 'text' })),
    fc
      .string({ unit: 'binary', maxLength: 200 })
      .map((t) => ({ bytes: Buffer.from(t.replace(/\n/g, ' ') + '\n'), expectAnswer: false, label: 'unicode' })),
    // invalid UTF-8 bytes, alone and inside a request's string
    fc.uint8Array({ minLength: 1, maxLength: 200 }).map((a) => ({
      bytes: Buffer.concat([Buffer.from(a.filter((b) => b !== 10)), Buffer.from('\n')]),
      expectAnswer: false,
      label: 'bytes',
    })),
    fc.uint8Array({ minLength: 1, maxLength: 50 }).map((a) => {
      const id = nextId++;
      const bad = Buffer.from(a.map((b) => (b < 0x80 ? b | 0x80 : b)).filter((b) => b !== 0x22 && b !== 0x5c));
      return {
        bytes: Buffer.concat([
          Buffer.from(`{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"state","arguments":{"action":"get","key":"`),
          bad,
          Buffer.from('"}}}\n'),
        ]),
        id,
        expectAnswer: true,
        label: 'invalid utf-8 in a tool argument',
      };
    }),
    // huge lines
    fc.integer({ min: 1, max: 8 }).map((mb) => ({
      bytes: Buffer.from('{"jsonrpc":"2.0","id":"' + 'a'.repeat(mb * 1024 * 1024) + '"\n'),
      expectAnswer: false,
      label: `${mb} MB line`,
    })),
    fc.integer({ min: 1, max: 4 }).map((mb) => {
      const id = nextId++;
      return {
        bytes: Buffer.from(
          JSON.stringify({
            jsonrpc: '2.0',
            id,
            method: 'tools/call',
            params: { name: 'state', arguments: { action: 'set', key: 'big', value: 'v'.repeat(mb * 1024 * 1024) } },
          }) + '\n',
        ),
        id,
        expectAnswer: true,
        label: `${mb} MB tool call`,
      };
    }),
    // deep nesting, as text and inside a request
    fc
      .integer({ min: 1_000, max: 200_000 })
      .map((d) => ({ bytes: Buffer.from('['.repeat(d) + ']'.repeat(d) + '\n'), expectAnswer: false, label: `depth ${d}` })),
    fc.integer({ min: 100, max: 100_000 }).map((d) => {
      const id = nextId++;
      return {
        bytes: Buffer.from(
          `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"state","arguments":{"action":"set","key":"deep","value":${'['.repeat(d)}${']'.repeat(d)}}}}\n`,
        ),
        id,
        expectAnswer: true,
        label: `tool call nested ${d} deep`,
      };
    }),
    // wrong types and unknown methods, with an id: a JSON-RPC error comes back
    fc
      .oneof(
        fc.record({ method: fc.constant('tools/call'), params: hostile }),
        fc.record({ method: fc.constant('tools/call'), params: fc.record({ name: hostile, arguments: hostile }) }),
        fc.record({ method: fc.string({ maxLength: 30 }), params: fc.anything() }),
        fc.record({
          method: fc.constantFrom(
            'tools/list',
            'resources/read',
            'resources/list',
            'prompts/list',
            'logging/setLevel',
            'completion/complete',
          ),
          params: hostile,
        }),
        fc.record({ method: fc.constant('resources/read'), params: fc.record({ uri: fc.oneof(fc.string(), hostile) }) }),
      )
      .map((m) => {
        const id = nextId++;
        let text: string;
        try {
          text = JSON.stringify({ jsonrpc: '2.0', id, ...m });
        } catch {
          text = JSON.stringify({ jsonrpc: '2.0', id, method: 'x' });
        }
        return { bytes: Buffer.from(text + '\n'), id, expectAnswer: true, label: `method ${String(m.method).slice(0, 30)}` };
      }),
    // wrong jsonrpc envelopes and batches
    fc
      .constantFrom(
        '{"jsonrpc":"1.0","id":1,"method":"ping"}',
        '{"id":1,"method":"ping"}',
        '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}',
        '{"jsonrpc":"2.0","id":null,"method":"ping"}',
        '{"jsonrpc":"2.0","method":7}',
        '[]',
        '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]',
        '[1,2,3]',
        '{"jsonrpc":"2.0","result":{},"id":987654}',
        '{"jsonrpc":"2.0","error":{"code":1,"message":"x"},"id":"nope"}',
        'null',
        '"just a string"',
        '{"jsonrpc":"2.0","id":1,"method":"notifications/cancelled","params":{"requestId":"zzz"}}',
        '{"__proto__":{"polluted":true},"jsonrpc":"2.0","method":"ping","id":"proto"}',
      )
      .map((t) => ({ bytes: Buffer.from(t + '\n'), expectAnswer: false, label: t.slice(0, 40) })),
  );

  it('garbage in: the server never crashes or hangs, requests with an id are answered', { timeout: 600_000 }, async () => {
    let answered = 0;
    let sent = 0;
    await check(
      fc.asyncProperty(garbage, async (g) => {
        sent++;
        const answer = g.id !== undefined ? srv.answerTo(g.id, 30_000) : undefined;
        await srv.write(g.bytes);
        if (answer) {
          const m = await answer;
          if (g.expectAnswer) assert.ok(m, `no answer to ${g.label} (id ${g.id})`);
          if (m) {
            answered++;
            if (m.error) {
              const e = m.error as { code?: unknown; message?: unknown };
              assert.equal(typeof e.code, 'number', `${g.label}: JSON-RPC error code`);
              assert.ok(typeof e.message === 'string' && e.message.length > 0, `${g.label}: JSON-RPC error message`);
            } else {
              const r = m.result as { isError?: boolean; structuredContent?: Record<string, unknown> } | undefined;
              if (r?.isError) clearError(r.structuredContent, g.label);
            }
          }
        }
        const pong = await srv.request(`ping-${sent}`, 'ping', undefined, 15_000);
        assert.deepEqual(pong.result, {}, `${g.label}: ping answered`);
        assert.equal(srv.exited, undefined, `${g.label}: the server exited: ${srv.stderr.slice(-1000)}`);
      }),
      150,
    );
    // past the SDK's 10 MB line limit (which closed the transport, and so ended the server) and
    // past our own 64 MiB bound (skipped, answered by id)
    for (const mb of [12, 70]) {
      const id = `huge-${mb}`;
      const answer = srv.answerTo(id, 60_000);
      const line = `{"jsonrpc":"2.0","id":"${id}","method":"tools/call","params":{"name":"state","arguments":{"action":"set","key":"huge","value":"${'h'.repeat(mb * 1024 * 1024)}"}}}\n`;
      await srv.write(line);
      const m = await answer;
      assert.ok(m, `a ${mb} MB request is answered`);
      if (mb > 64) assert.equal((m.error as { code: number } | undefined)?.code, -32600, JSON.stringify(m).slice(0, 300));
      else assert.ok(m.result, JSON.stringify(m).slice(0, 300));
      assert.deepEqual((await srv.request(`ping-huge-${mb}`, 'ping')).result, {});
    }
    const list = await srv.request('final-list', 'tools/list', {}, 15_000);
    assert.ok(Array.isArray((list.result as { tools?: unknown[] }).tools), 'tools/list answered at the end');
    process.stdout.write(`# framing fuzz: ${sent} inputs, ${answered} answered with an id\n`);
  });
});
