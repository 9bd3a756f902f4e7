import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, startStdio, type StdioSession } from '../helpers/client.js';
import { makeProject, type TempProject } from '../helpers/project.js';
import { startSshd, type Sshd } from '../fixtures/sshd.js';
import { targetFor } from './helpers.js';

describe('ssh through a third-party MCP client (SDK Client over stdio, dist/cli.js)', () => {
  let sshd: Sshd;
  let p: TempProject;
  let s: StdioSession;

  before(async () => {
    assert.ok(existsSync(CLI), `${CLI} is missing: build it first (npm run build; npm test does)`);
    sshd = await startSshd();
    p = makeProject({ 'targets.json': { prod: targetFor(sshd) } });
    s = await startStdio({ env: { MCP_PROFILES_DIR: p.infraDir } });
  });
  after(async () => {
    await s?.close();
    await sshd?.stop();
    p?.cleanup();
  });

  it('lists ssh with its actions and runs exec, info and check', async () => {
    const { tools } = await s.client.listTools();
    const ssh = tools.find((t) => t.name === 'ssh');
    assert.ok(ssh, 'ssh is listed');
    const actions = (ssh.inputSchema.properties as Record<string, { enum?: string[] }>).action?.enum ?? [];
    assert.deepEqual([...actions].sort(), ['check', 'download', 'exec', 'info', 'targets', 'upload']);
    const r = await s.call('ssh', { action: 'exec', target: 'prod', command: 'echo from-mcp; exit 4' });
    assert.equal(r.ok, true);
    assert.deepEqual([(r.result as any).stdout, (r.result as any).exit_code], ['from-mcp\n', 4]);
    assert.equal((await s.call('ssh', { action: 'info', target: 'prod' })).ok, true);
    assert.equal(((await s.call('ssh', { action: 'check', target: 'prod' })).result as any).ok, true);
  });

  it('the seed alias mcp_ssh_manager works', async () => {
    const r = await s.call('mcp_ssh_manager', { action: 'exec', target: 'prod', command: 'uptime' });
    assert.equal(r.ok, true);
  });

  it('a timeout kills the remote process; every call is in the audit with its artifact', async () => {
    const r = await s.call('ssh', { action: 'exec', target: 'prod', command: 'sleep 1000.125', timeout_ms: 1000 });
    assert.equal(r.ok, false);
    assert.equal((r.error as any).code, 'TIMEOUT');
    const check = await s.call('ssh', { action: 'exec', target: 'prod', command: "pgrep -f 'sleep 1000[.]125' || echo none" });
    assert.equal((check.result as any).stdout, 'none\n');
    const list = await s.call('audit', { action: 'list', tool: 'ssh', limit: 50 });
    const rows = ((list.result as any).rows ?? (list.result as any).calls ?? list.result) as Array<Record<string, any>>;
    assert.ok(Array.isArray(rows), JSON.stringify(list.result).slice(0, 300));
    assert.ok(rows.length >= 6, `${rows.length} ssh rows`);
    for (const row of rows) {
      assert.ok(row.artifact, `row ${row.id} has an artifact`);
      const dir = join(p.infraDir, 'artifacts', 'calls', row.id);
      assert.ok(existsSync(join(dir, 'call.json')), `${dir}/call.json`);
    }
    assert.ok(rows.some((r) => r.status === 'timeout' && r.target === 'prod'));
  });
});
