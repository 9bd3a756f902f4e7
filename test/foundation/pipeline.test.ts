import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRuntime, type Runtime } from '../../src/exec/runtime.js';
import { makeProject, type TempProject } from '../helpers/project.js';

type Env = Record<string, unknown> & {
  ok: boolean;
  call_id: string;
  error?: { code: string; message: string; hint?: string };
  result?: Record<string, unknown>;
};

async function rtFor(p: TempProject, env: Record<string, string> = {}): Promise<Runtime> {
  return createRuntime({ projectDir: p.infraDir, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } });
}

describe('pipeline', () => {
  let p: TempProject;
  let rt: Runtime;
  before(async () => {
    p = makeProject();
    rt = await rtFor(p, { INFRA_UNSAFE_LOCAL: '1' });
  });
  after(async () => {
    await rt.close();
    p.cleanup();
  });

  it('round-trips state through set and get, with a call.json artifact per call', async () => {
    const set = (await rt.call('state', { action: 'set', key: 'k', value: { n: 1 } })) as unknown as Env;
    assert.equal(set.ok, true);
    const get = (await rt.call('state', { action: 'get', key: 'k' })) as unknown as Env;
    assert.deepEqual((get.result as { value: unknown }).value, { n: 1 });
    const callJson = join(p.infraDir, 'artifacts', 'calls', get.call_id, 'call.json');
    const doc = JSON.parse(readFileSync(callJson, 'utf8')) as { tool: string; envelope: { ok: boolean } };
    assert.equal(doc.tool, 'state');
    assert.equal(doc.envelope.ok, true);
    assert.equal(statSync(callJson).mode & 0o777, 0o600);
  });

  it('audits invalid, unknown and denied calls with their status', async () => {
    const bad = (await rt.call('state', { action: 'set' })) as unknown as Env;
    assert.equal(bad.error?.code, 'INVALID_ARGUMENT');
    assert.match(bad.error!.message, /key/);
    const unknown = (await rt.call('nosuch', {})) as unknown as Env;
    assert.equal(unknown.error?.code, 'INVALID_ARGUMENT');
    const extra = (await rt.call('state', { action: 'get', key: 'k', bogus: 1 })) as unknown as Env;
    assert.equal(extra.error?.code, 'INVALID_ARGUMENT');
    assert.match(extra.error!.message, /bogus/);
    for (const [id, status] of [
      [bad.call_id, 'invalid'],
      [unknown.call_id, 'invalid'],
      [extra.call_id, 'invalid'],
    ] as const) {
      const row = rt.services.audit.get(id);
      assert.equal(row?.status, status);
      assert.ok(row?.hash, 'closed rows are in the chain');
    }
    const v = await rt.services.audit.verify();
    assert.equal(v.ok, true);
  });

  it('refuses arguments nested deeper than 100 levels with INVALID_ARGUMENT, audited with the arguments cut at that depth', async () => {
    const nest = (d: number): unknown => {
      let v: unknown = 'leaf';
      for (let i = 0; i < d; i++) v = [v];
      return v;
    };
    // 5,000 levels ran the recursive steps (schema, redaction, the record) out of stack
    for (const depth of [101, 5000, 200_000]) {
      const deep = (await rt.call('state', { action: 'set', key: 'deep', value: nest(depth) })) as unknown as Env;
      assert.equal(deep.ok, false, `depth ${depth}`);
      assert.equal(deep.error?.code, 'INVALID_ARGUMENT');
      assert.match(deep.error!.message, /nest more than 100 levels/);
      await rt.services.audit.settle();
      const row = rt.services.audit.get(deep.call_id);
      assert.equal(row?.status, 'invalid');
      assert.ok(row?.hash, 'the refusal is in the chain');
      const doc = JSON.parse(readFileSync(join(p.infraDir, 'artifacts', 'calls', deep.call_id, 'call.json'), 'utf8')) as {
        args: { key: string; value: unknown };
      };
      assert.equal(doc.args.key, 'deep');
      let v: unknown = doc.args.value;
      let levels = 0;
      while (Array.isArray(v)) {
        v = v[0];
        levels++;
      }
      assert.match(String(v), /nested deeper than 100 levels; not recorded/);
      assert.ok(levels < 100, `recorded ${levels} levels`);
    }
    const missing = (await rt.call('state', { action: 'get', key: 'deep' })) as unknown as Env;
    assert.equal(missing.error?.code, 'NOT_FOUND', 'nothing was stored');
    // 100 levels (the value's own 99 inside the arguments object) still go through
    const ok = (await rt.call('state', { action: 'set', key: 'deep', value: nest(99) })) as unknown as Env;
    assert.equal(ok.ok, true);
  });

  it('keeps a key named __proto__ as data: stored, returned and recorded', async () => {
    // as JSON.parse makes it from a client's line: an own property, not the prototype
    const value = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, unknown>;
    const set = (await rt.call('state', { action: 'set', key: 'proto', value })) as unknown as Env;
    assert.equal(set.ok, true);
    const get = (await rt.call('state', { action: 'get', key: 'proto' })) as unknown as Env;
    const got = (get.result as { value: Record<string, unknown> }).value;
    assert.deepEqual(Object.keys(got), ['__proto__', 'a']);
    assert.equal(JSON.stringify(got), '{"__proto__":{"polluted":true},"a":1}');
    assert.equal(({} as { polluted?: boolean }).polluted, undefined, 'no prototype was touched');
    await rt.services.audit.settle({ files: true });
    const doc = readFileSync(join(p.infraDir, 'artifacts', 'calls', set.call_id, 'call.json'), 'utf8');
    assert.match(doc, /"__proto__":\{"polluted":true\}/);
  });

  it('names at most ten unknown keys, each cut short, however many a call sends', async () => {
    const args: Record<string, unknown> = { action: 'get', key: 'k' };
    for (let i = 0; i < 100_000; i++) args[`extra${i}`] = 1;
    args['x'.repeat(1_000_000)] = 1;
    const r = (await rt.call('state', args)) as unknown as Env;
    assert.equal(r.error?.code, 'INVALID_ARGUMENT');
    assert.match(r.error!.message, /unknown keys "extra0", .*"extra9" and 99991 more/);
    assert.ok(r.error!.message.length < 1000, `message of ${r.error!.message.length} characters`);
  });

  it('resolves the seed aliases (mcp_state)', async () => {
    const r = (await rt.call('mcp_state', { action: 'set', key: 'hello', value: 'world' })) as unknown as Env;
    assert.equal(r.ok, true);
    assert.equal(rt.services.audit.get(r.call_id)?.tool, 'state');
  });

  it('local exec: argv, exit codes as results, stdin, and a timeout that kills the process group', async () => {
    const r = (await rt.call('local', {
      action: 'exec',
      command: 'sh',
      args: ['-c', 'cat; echo err >&2; exit 7'],
      stdin: 'in-put',
    })) as unknown as Env;
    assert.equal(r.ok, true);
    assert.equal(r.result?.exit_code, 7);
    assert.equal(r.result?.stdout, 'in-put');
    assert.equal(r.result?.stderr, 'err\n');
    const marker = `infra-sleep-${process.pid}-${Date.now()}`;
    const t = (await rt.call('local', {
      action: 'exec',
      command: 'sh',
      args: ['-c', `sleep 1000 & sleep 1001; echo ${marker}`],
      timeout_ms: 500,
    })) as unknown as Env;
    assert.equal(t.error?.code, 'TIMEOUT');
    assert.equal(rt.services.audit.get(t.call_id)?.status, 'timeout');
    await new Promise((r) => setTimeout(r, 2500));
    const ps = (await rt.call('local', {
      action: 'exec',
      command: 'sh',
      args: ['-c', 'ps -eo args | grep "^sleep 100[01]" || true'],
    })) as unknown as Env;
    assert.equal(ps.result?.stdout, '', 'the whole process group was stopped');
  });

  it('local exec: a NUL byte in the command, an argument, the environment or cwd is INVALID_ARGUMENT naming it', async () => {
    for (const [args, named] of [
      [{ command: 'echo', args: ['ok', 'a\u0000b'] }, /^args\[1\] contains a NUL byte/],
      [{ command: 'env', env: { A: 'x\u0000y' } }, /^env "A" contains a NUL byte/],
      [{ command: 'ec\u0000ho' }, /^command contains a NUL byte/],
      [{ command: 'pwd', cwd: '/tm\u0000p' }, /^cwd contains a NUL byte/],
    ] as const) {
      const r = (await rt.call('local', { action: 'exec', ...args })) as unknown as Env;
      assert.equal(r.error?.code, 'INVALID_ARGUMENT', JSON.stringify(r.error));
      assert.match(r.error!.message, named);
    }
  });

  it('runs a long action as a job: async, status, wait, logs, cancel', async () => {
    const start = (await rt.call('local', {
      action: 'exec',
      command: 'sh',
      args: ['-c', 'echo started; sleep 30'],
      async: true,
    })) as unknown as Env;
    assert.equal(start.ok, true);
    const jobId = (start.result as { job_id: string }).job_id;
    await new Promise((r) => setTimeout(r, 300));
    const logs = (await rt.call('jobs', { action: 'logs', job_id: jobId })) as unknown as Env;
    assert.match(JSON.stringify(logs.result), /started/);
    const cancel = (await rt.call('jobs', { action: 'cancel', job_id: jobId })) as unknown as Env;
    assert.equal((cancel.result as { status: string }).status, 'cancelled');
    assert.equal(rt.services.audit.get(start.call_id)?.status, 'cancelled');
    const quick = (await rt.call('local', { action: 'exec', command: 'echo', args: ['done'], async: true })) as unknown as Env;
    const waited = (await rt.call('jobs', {
      action: 'wait',
      job_id: (quick.result as { job_id: string }).job_id,
      wait_ms: 5000,
    })) as unknown as Env;
    assert.equal((waited.result as { status: string }).status, 'ok');
    assert.match(JSON.stringify(waited.result), /done/);
  });

  it('caps the inline reply at max_bytes and keeps every byte in the artifact', async () => {
    const r = (await rt.call('local', { action: 'exec', command: 'sh', args: ['-c', 'seq 1 100000'], max_bytes: 1000 })) as unknown as Env;
    assert.equal(r.ok, true);
    const out = r.result?.stdout as string;
    assert.ok(Buffer.byteLength(out) < 1200, `inline is ${Buffer.byteLength(out)} bytes`);
    assert.ok(out.startsWith('1\n2\n'));
    assert.ok(out.trimEnd().endsWith('100000'));
    assert.ok((r.truncated as Record<string, unknown>).stdout);
    const file = readFileSync(join(p.infraDir, 'artifacts', 'calls', r.call_id, 'stdout'), 'utf8');
    assert.equal(file.split('\n').length, 100001);
    const tail = (await rt.call('artifacts', {
      action: 'tail',
      uri: `artifact://calls/${r.call_id}/stdout`,
      max_bytes: 7,
    })) as unknown as Env;
    assert.equal((tail.result as { content: string }).content, '100000\n');
  });

  it('never leaves a temp file presented as an artifact', () => {
    const calls = join(p.infraDir, 'artifacts', 'calls');
    for (const d of readdirSync(calls, { withFileTypes: true }).filter((e) => e.isDirectory()))
      for (const f of readdirSync(join(calls, d.name))) assert.ok(!f.endsWith('.partial') || f.startsWith('.'), f);
  });
});

describe('policy', () => {
  it('local is absent and refused by name without INFRA_UNSAFE_LOCAL', async () => {
    const p = makeProject();
    const rt = await rtFor(p);
    try {
      const r = (await rt.call('local', { action: 'exec', command: 'true' })) as unknown as Env;
      assert.equal(r.error?.code, 'DENIED');
      assert.match(r.error!.hint!, /INFRA_UNSAFE_LOCAL=1/);
      const alias = (await rt.call('mcp_local', { action: 'read', path: '/etc/hostname' })) as unknown as Env;
      assert.equal(alias.error?.code, 'DENIED');
      assert.equal(rt.services.audit.get(r.call_id)?.status, 'denied');
    } finally {
      await rt.close();
      p.cleanup();
    }
  });

  it('INFRA_READ_ONLY refuses writes by name, including state writes', async () => {
    const p = makeProject();
    const rt = await rtFor(p, { INFRA_READ_ONLY: '1' });
    try {
      const r = (await rt.call('state', { action: 'set', key: 'x', value: 1 })) as unknown as Env;
      assert.equal(r.error?.code, 'DENIED');
      assert.match(r.error!.message, /INFRA_READ_ONLY/);
      assert.equal(((await rt.call('state', { action: 'list' })) as unknown as Env).ok, true);
    } finally {
      await rt.close();
      p.cleanup();
    }
  });

  it('policy.json action toggles are enforced at call time', async () => {
    const p = makeProject({ 'policy.json': { tools: { state: { actions: { delete: false } }, audit: { enabled: false } } } });
    const rt = await rtFor(p);
    try {
      const del = (await rt.call('state', { action: 'delete', key: 'x' })) as unknown as Env;
      assert.equal(del.error?.code, 'DENIED');
      assert.match(del.error!.message, /tools\.state\.actions\.delete/);
      const audit = (await rt.call('audit', { action: 'list' })) as unknown as Env;
      assert.equal(audit.error?.code, 'DENIED');
    } finally {
      await rt.close();
      p.cleanup();
    }
  });

  it('an invalid policy.json fails closed with the file and key in the message', async () => {
    const p = makeProject({ 'policy.json': { limits: { inline_max_bytes: 'big' }, nonsense: true } });
    const rt = await rtFor(p);
    try {
      const r = (await rt.call('state', { action: 'list' })) as unknown as Env;
      assert.equal(r.error?.code, 'DENIED');
      assert.match(r.error!.message, /policy\.json/);
      assert.match(r.error!.message, /nonsense|inline_max_bytes/);
    } finally {
      await rt.close();
      p.cleanup();
    }
  });

  it('an irreversible action without a way to confirm is refused, naming the confirm key', async () => {
    const p = makeProject({ 'policy.json': { confirm: { 'state.delete': true } } });
    const rt = await rtFor(p);
    try {
      const r = (await rt.call('state', { action: 'delete', key: 'x' })) as unknown as Env;
      assert.equal(r.error?.code, 'DENIED');
      assert.match(r.error!.hint!, /"confirm": \{ "state\.delete": false \}/);
      const yes = (await rt.call('state', { action: 'delete', key: 'x' }, { confirm: async () => true })) as unknown as Env;
      assert.equal(yes.ok, true);
    } finally {
      await rt.close();
      p.cleanup();
    }
  });
});

describe('artifacts tool', () => {
  it('refuses URIs that escape the artifacts root, including through a symlink', async () => {
    const p = makeProject();
    const rt = await rtFor(p);
    try {
      const first = (await rt.call('state', { action: 'list' })) as unknown as Env;
      const { symlinkSync } = await import('node:fs');
      symlinkSync('/etc/passwd', join(p.infraDir, 'artifacts', 'calls', first.call_id, 'link'));
      for (const uri of ['artifact://calls/../../../etc/passwd', 'artifact://calls/%2e%2e/x', `artifact://calls/${first.call_id}/link`]) {
        const r = (await rt.call('artifacts', { action: 'get', uri })) as unknown as Env;
        assert.equal(r.ok, false, uri);
        assert.ok(!JSON.stringify(r).includes('root:x:0'), 'nothing of /etc/passwd leaked');
      }
    } finally {
      await rt.close();
      p.cleanup();
    }
  });
});
