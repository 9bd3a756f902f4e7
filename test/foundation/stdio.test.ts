import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import stringify from 'safe-stable-stringify';
import { REPO_ROOT, startStdio, type StdioSession } from '../helpers/client.js';
import { makeProject, type TempProject } from '../helpers/project.js';

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
