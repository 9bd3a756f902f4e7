import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import stringify from 'safe-stable-stringify';
import { CLI, REPO_ROOT, startStdio, type StdioSession } from '../helpers/client.js';
import { makeProject, type TempProject } from '../helpers/project.js';
import { eventually } from '../helpers/wait.js';

function peakRssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

describe('stdio server through the SDK client', () => {
  let p: TempProject;
  let s: StdioSession;
  before(async () => {
    p = makeProject();
    s = await startStdio({ env: { MCP_PROFILES_DIR: p.infraDir } });
  });
  after(async () => {
    await s.close();
    p.cleanup();
  });

  it('lists exactly the committed tools/list snapshot', async () => {
    const { tools } = await s.client.listTools();
    const snapshot = JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'snapshots', 'tools-list.json'), 'utf8')) as unknown;
    assert.equal(stringify(tools, null, 2), stringify(snapshot, null, 2));
    assert.ok(!tools.some((t) => t.name === 'local'), 'local is absent without INFRA_UNSAFE_LOCAL');
    for (const t of tools) {
      assert.equal(t.inputSchema.type, 'object');
      assert.ok(!('oneOf' in t.inputSchema) && !('anyOf' in t.inputSchema), `${t.name}: no top-level union`);
    }
  });

  it('round-trips state, serves the artifact as a resource, and audits invalid and denied calls', async () => {
    const set = await s.call('state', { action: 'set', key: 'greeting', value: 'hi' });
    assert.equal(set.ok, true);
    const get = await s.call('state', { action: 'get', key: 'greeting' });
    assert.equal((get.result as { value: string }).value, 'hi');
    const res = await s.client.readResource({ uri: `artifact://calls/${get.call_id as string}/call.json` });
    assert.match((res.contents[0] as { text: string }).text, /"greeting"/);
    const invalid = await s.client.callTool({ name: 'state', arguments: { action: 'get' } });
    assert.equal(invalid.isError, true);
    const denied = await s.client.callTool({ name: 'local', arguments: { action: 'exec', command: 'id' } });
    assert.equal(denied.isError, true);
    assert.equal((denied.structuredContent as { error: { code: string } }).error.code, 'DENIED');
    const list = await s.call('audit', { action: 'list', limit: 10 });
    const statuses = (list.result as { rows: { status: string; tool: string }[] }).rows.map((r) => `${r.tool}:${r.status}`);
    assert.ok(statuses.includes('state:invalid'), statuses.join(' '));
    assert.ok(statuses.includes('local:denied'), statuses.join(' '));
    const verify = await s.call('audit', { action: 'verify' });
    assert.equal((verify.result as { ok: boolean }).ok, true);
  });
});

describe('crash recovery', () => {
  it('a call in flight when the server is killed with SIGKILL shows as interrupted after restart', async () => {
    const p = makeProject();
    try {
      const s1 = await startStdio({ env: { MCP_PROFILES_DIR: p.infraDir, INFRA_UNSAFE_LOCAL: '1' } });
      const pending = s1.client
        .callTool({ name: 'local', arguments: { action: 'exec', command: 'sleep', args: ['30'] } })
        .catch(() => undefined);
      await new Promise((r) => setTimeout(r, 700));
      process.kill(s1.pid, 'SIGKILL');
      await pending;
      await s1.close();
      const s2 = await startStdio({ env: { MCP_PROFILES_DIR: p.infraDir } });
      try {
        const list = await s2.call('audit', { action: 'list', tool: 'local' });
        const rows = (list.result as { rows: { status: string; action: string }[] }).rows;
        assert.equal(rows.length, 1);
        assert.equal(rows[0]!.status, 'interrupted');
        const verify = await s2.call('audit', { action: 'verify' });
        assert.equal((verify.result as { ok: boolean }).ok, true);
      } finally {
        await s2.close();
      }
    } finally {
      p.cleanup();
    }
  });
});

describe('bounded memory', () => {
  it('local exec producing 1 GiB keeps the server under 200 MB RSS, stores every byte, caps the reply', { timeout: 300_000 }, async () => {
    const p = makeProject();
    const s = await startStdio({ env: { MCP_PROFILES_DIR: p.infraDir, INFRA_UNSAFE_LOCAL: '1' } });
    try {
      // distinct lines, so a wrong byte anywhere changes the hash
      const cmd = 'seq -f "%012g line of output" 1 40000000 | head -c 1073741824';
      const r = await s.call('local', { action: 'exec', command: cmd, shell: true, max_bytes: 4096, timeout_ms: 280_000 });
      assert.equal(r.ok, true, JSON.stringify(r).slice(0, 500));
      const result = r.result as { stdout: string; stdout_bytes: number; stdout_sha256: string };
      assert.equal(result.stdout_bytes, 1073741824);
      const { spawnSync } = await import('node:child_process');
      const gen = spawnSync('sh', ['-c', `${cmd} | sha256sum`], { encoding: 'utf8', maxBuffer: 1 << 20 });
      assert.equal(result.stdout_sha256, gen.stdout.split(' ')[0]);
      const onDisk = spawnSync('sha256sum', [join(p.infraDir, 'artifacts', 'calls', r.call_id as string, 'stdout')], { encoding: 'utf8' });
      assert.equal(onDisk.stdout.split(' ')[0], result.stdout_sha256);
      assert.ok(Buffer.byteLength(result.stdout) <= 4096 + 100, `inline ${Buffer.byteLength(result.stdout)} bytes`);
      const peak = peakRssKb(s.pid);
      assert.ok(peak < 200 * 1024, `peak RSS ${Math.round(peak / 1024)} MB`);
    } finally {
      await s.close();
      p.cleanup();
    }
  });
});

/** Starts dist/cli.js and speaks JSON-RPC lines to it by hand (ids and bytes as sent). */
/** The audit status of a call, asked through the audit tool. */
async function auditStatus(s: Awaited<ReturnType<typeof rawSession>>, id: string, callId: string): Promise<string> {
  const row = await s.request(id, 'tools/call', { name: 'audit', arguments: { action: 'get', id: callId } });
  return (row.result as { structuredContent: { result: { row: { status: string } } } }).structuredContent.result.row.status;
}

async function rawSession(env: Record<string, string>): Promise<{
  request(id: string | number, method: string, params?: unknown): Promise<Record<string, unknown>>;
  /** A request written as given (a line JSON.stringify could not make); `id` is its id. */
  requestLine(id: string | number, line: string): Promise<Record<string, unknown>>;
  /** A line written as given, answered or not. */
  writeLine(line: string): void;
  notify(method: string, params?: unknown): void;
  /** Every line the server wrote so far, parsed. */
  lines: Record<string, unknown>[];
  close(): Promise<void>;
}> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [CLI], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', INFRA_LOG_LEVEL: 'warn', ...env },
    cwd: '/',
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  const lines: Record<string, unknown>[] = [];
  const waiting = new Map<string, (m: Record<string, unknown>) => void>();
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const m = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
      buf = buf.slice(nl + 1);
      lines.push(m);
      if ('id' in m) waiting.get(JSON.stringify(m.id))?.(m);
    }
  });
  const send = (m: unknown): void => void child.stdin.write(JSON.stringify(m) + '\n');
  const s = {
    request: (id: string | number, method: string, params?: unknown) =>
      new Promise<Record<string, unknown>>((resolve) => {
        waiting.set(JSON.stringify(id), resolve);
        send({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
      }),
    writeLine: (line: string) => void child.stdin.write(line + '\n'),
    requestLine: (id: string | number, line: string) =>
      new Promise<Record<string, unknown>>((resolve) => {
        waiting.set(JSON.stringify(id), resolve);
        child.stdin.write(line + '\n');
      }),
    notify: (method: string, params?: unknown) => send({ jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }) }),
    lines,
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin.end();
      await exited;
    },
  };
  await s.request(0, 'initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } });
  s.notify('notifications/initialized');
  return s;
}

describe('tools/call answered without the SDK dispatch (the direct path)', () => {
  it('answers with the id as sent and a result the SDK schema accepts, like the SDK path does', async () => {
    const p = makeProject();
    const s = await rawSession({ MCP_PROFILES_DIR: p.infraDir });
    try {
      const { CallToolResultSchema } = await import('@modelcontextprotocol/sdk/types.js');
      await s.request('set-1', 'tools/call', { name: 'state', arguments: { action: 'set', key: 'k', value: 'v "quoted" ✓' } });
      // the direct path (plain params) and the SDK path (_meta makes it take the SDK's) side by side
      const direct = await s.request('get-"2"', 'tools/call', { name: 'state', arguments: { action: 'get', key: 'k' } });
      const viaSdk = await s.request(7, 'tools/call', {
        name: 'state',
        arguments: { action: 'get', key: 'k' },
        _meta: { progressToken: 'p' },
      });
      assert.equal(direct.id, 'get-"2"');
      assert.equal(viaSdk.id, 7);
      for (const m of [direct, viaSdk]) {
        assert.equal(m.jsonrpc, '2.0');
        const parsed = CallToolResultSchema.safeParse(m.result);
        assert.ok(parsed.success, JSON.stringify(m).slice(0, 300));
        const r = m.result as {
          content: { type: string; text: string }[];
          structuredContent: { ok: boolean; result: { value: string } };
          isError?: boolean;
        };
        assert.equal(r.structuredContent.result.value, 'v "quoted" ✓');
        assert.equal(r.isError, undefined);
        // the text part is the summary line and then the same envelope
        const [line, json] = [
          r.content[0]!.text.slice(0, r.content[0]!.text.indexOf('\n')),
          r.content[0]!.text.slice(r.content[0]!.text.indexOf('\n') + 1),
        ];
        assert.match(line, /^ok state\.get \(\d+ ms\) artifact:\/\/calls\//);
        assert.deepEqual(JSON.parse(json), r.structuredContent);
      }
      // a tool error is a result with isError on both paths; a malformed call goes the SDK's way
      const failed = await s.request(8, 'tools/call', { name: 'state', arguments: { action: 'get' } });
      assert.equal((failed.result as { isError?: boolean }).isError, true);
      assert.ok(CallToolResultSchema.safeParse(failed.result).success);
      // arguments that are not an object: refused by the pipeline (audited), not by the SDK's schema
      for (const [id, args] of [
        [10, [1, 2]],
        [11, null],
        [12, 'text'],
      ] as const) {
        const m = await s.request(id, 'tools/call', { name: 'state', arguments: args });
        const r = m.result as { isError?: boolean; structuredContent: { call_id: string; error: { code: string; message: string } } };
        assert.equal(r.isError, true, JSON.stringify(m).slice(0, 300));
        assert.equal(r.structuredContent.error.code, 'INVALID_ARGUMENT');
        assert.match(r.structuredContent.error.message, /arguments of state must be a JSON object/);
        assert.equal(await auditStatus(s, `row-${id}`, r.structuredContent.call_id), 'invalid');
      }
      const malformed = await s.request(9, 'tools/call', { name: 42 });
      assert.equal(malformed.result, undefined);
      assert.match((malformed.error as { message: string }).message, /name/);
    } finally {
      await s.close();
      p.cleanup();
    }
  });

  it('a call whose arguments nest 50,000 levels deep gets an INVALID_ARGUMENT result and an audit row, and the server keeps serving', async () => {
    const p = makeProject();
    const s = await rawSession({ MCP_PROFILES_DIR: p.infraDir });
    try {
      // JSON.parse reads any depth; the steps after it used to run out of stack (a JSON-RPC
      // error, no audit row). Built as text: JSON.stringify cannot write it either.
      const value = '{"v":'.repeat(50_000) + '1' + '}'.repeat(50_000);
      const line = `{"jsonrpc":"2.0","id":"deep","method":"tools/call","params":{"name":"state","arguments":{"action":"set","key":"deep","value":${value}}}}`;
      const m = await s.requestLine('deep', line);
      const r = m.result as { isError?: boolean; structuredContent: { call_id: string; error: { code: string; message: string } } };
      assert.equal(r.isError, true, JSON.stringify(m).slice(0, 300));
      assert.equal(r.structuredContent.error.code, 'INVALID_ARGUMENT');
      assert.match(r.structuredContent.error.message, /nest more than 100 levels/);
      assert.equal(await auditStatus(s, 'row', r.structuredContent.call_id), 'invalid');
      const after = await s.request('after', 'tools/call', {
        name: 'state',
        arguments: { action: 'set', key: 'shallow', value: { v: 1 } },
      });
      assert.equal((after.result as { isError?: boolean }).isError, undefined);
    } finally {
      await s.close();
      p.cleanup();
    }
  });

  it('a request whose id is unreadable, and a batch, are answered with id null saying what is wrong; a malformed notification gets nothing', async () => {
    const p = makeProject();
    const s = await rawSession({ MCP_PROFILES_DIR: p.infraDir });
    try {
      const cases: [string, string][] = [
        ['{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', 'id must be a string or an integer'],
        ['{"jsonrpc":"2.0","id":1e400,"method":"ping"}', 'id must be a string or an integer'],
        ['{"jsonrpc":"2.0","id":true,"method":"ping"}', 'id must be a string or an integer'],
        ['[{"jsonrpc":"2.0","id":8,"method":"ping"}]', 'batches are not supported'],
        ['[]', 'batches are not supported'],
      ];
      for (const [line, said] of cases) {
        const before = s.lines.length;
        s.writeLine(line);
        assert.ok(await eventually(() => s.lines.length > before), `${line}: an answer`);
        const m = s.lines.at(-1)!;
        assert.equal(m.id, null, line);
        assert.equal((m.error as { code: number }).code, -32600);
        assert.match((m.error as { message: string }).message, new RegExp(said));
      }
      // with a readable id, the answer names the problem under that id
      const v1 = await s.requestLine(3, '{"jsonrpc":"1.0","id":3,"method":"ping"}');
      assert.match((v1.error as { message: string }).message, /jsonrpc must be "2.0"/);
      const arr = await s.requestLine(4, '{"jsonrpc":"2.0","id":4,"method":"ping","params":[1]}');
      assert.match((arr.error as { message: string }).message, /params must be an object/);
      // a notification is never answered, even a malformed one
      const before = s.lines.length;
      s.writeLine('{"jsonrpc":"2.0","method":"notifications/x","params":5}');
      assert.deepEqual((await s.request('after', 'ping')).result, {});
      assert.equal(s.lines.length, before + 1, 'only the ping was answered');
    } finally {
      await s.close();
      p.cleanup();
    }
  });

  it('SDK-side errors say what is wrong: a bad or missing resource, params that fail a schema', async () => {
    const p = makeProject();
    const s = await rawSession({ MCP_PROFILES_DIR: p.infraDir });
    try {
      const err = async (id: string, method: string, params: unknown): Promise<{ code: number; message: string }> => {
        const m = await s.request(id, method, params);
        assert.ok(m.error, `${id}: ${JSON.stringify(m).slice(0, 200)}`);
        return m.error as { code: number; message: string };
      };
      const dots = await err('dots', 'resources/read', { uri: 'artifact://calls/../../etc/passwd' });
      assert.deepEqual([dots.code, /segment "\.\." is not allowed/.test(dots.message)], [-32602, true]);
      const long = await err('long', 'resources/read', { uri: `artifact://calls/${'a'.repeat(100_000)}` });
      assert.equal(long.code, -32602);
      assert.ok(long.message.length < 400, `message of ${long.message.length} characters`);
      const missing = await err('missing', 'resources/read', { uri: 'artifact://calls/c_nope/call.json' });
      assert.deepEqual([missing.code, /no artifact at/.test(missing.message)], [-32002, true]);
      // the SDK's own schema checks answered -32603 with a JSON dump of zod issues
      const prompt = await err('prompt', 'prompts/get', { name: 'diagnose_host', arguments: { target: 5 } });
      assert.equal(prompt.code, -32602);
      assert.match(prompt.message, /^Invalid params: params\.arguments\.target: /);
      const level = await err('level', 'logging/setLevel', { level: 'loud' });
      assert.equal(level.code, -32602);
      assert.match(level.message, /^Invalid params: params\.level: /);
    } finally {
      await s.close();
      p.cleanup();
    }
  });

  it("a client's cancel stops the running call: no reply for it, the process is gone, the audit row says cancelled", async () => {
    const p = makeProject();
    const s = await rawSession({ MCP_PROFILES_DIR: p.infraDir, INFRA_UNSAFE_LOCAL: '1' });
    try {
      const started = Date.now();
      const pending = s.request('slow', 'tools/call', { name: 'local', arguments: { action: 'exec', command: 'sleep', args: ['30.5'] } });
      let answered = false;
      void pending.then(() => (answered = true));
      const { execFileSync } = await import('node:child_process');
      const sleeping = (): boolean => {
        try {
          return execFileSync('pgrep', ['-f', 'sleep 30.5'], { encoding: 'utf8' }).trim().length > 0;
        } catch {
          return false;
        }
      };
      for (let i = 0; i < 50 && !sleeping(); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(sleeping(), 'the command started');
      s.notify('notifications/cancelled', { requestId: 'slow', reason: 'test' });
      for (let i = 0; i < 50 && sleeping(); i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(sleeping(), false, 'the command was stopped');
      assert.ok(Date.now() - started < 10_000);
      const list = await s.request('audit', 'tools/call', { name: 'audit', arguments: { action: 'list', tool: 'local' } });
      const rows = (list.result as { structuredContent: { result: { rows: { status: string }[] } } }).structuredContent.result.rows;
      assert.deepEqual(
        rows.map((r) => r.status),
        ['cancelled'],
      );
      assert.equal(answered, false, 'a cancelled request gets no response');
      assert.ok(!s.lines.some((m) => m.id === 'slow'));
    } finally {
      await s.close();
      p.cleanup();
    }
  });
});
