// Upstream lifecycle in process: a crashing upstream (clear errors, restart with backoff), a
// server that cannot start, config reload (only changed servers restart; an invalid file keeps
// the last good one), names (64-character limit, servers.json validation).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Runtime } from '../../src/exec/runtime.js';
import { listTools } from '../../src/server/tool-list.js';
import { everythingServer, fixtureServer, pidsWith, rig, uniq, until } from './helpers.js';

type Env = Record<string, unknown> & { ok: boolean; error?: { code: string; message: string; hint?: string } };
const call = async (rt: Runtime, name: string, args: unknown): Promise<Env> =>
  (await rt.call(name, args as Record<string, unknown>)) as unknown as Env;
const listed = (rt: Runtime): string[] => listTools(rt.pipeline.tools(), rt.services).map((t) => t.name);
const status = (rt: Runtime, name: string) => rt.serverStatuses().find((s) => s.name === name)!;

void describe('a crashing upstream', () => {
  void it('the call in flight fails with CONNECTION_FAILED, the status says why, and the server is restarted with backoff', async () => {
    const marker = uniq('crash');
    const r = await rig({ fx: fixtureServer(marker, {}, { tools: { allow: ['*'] } }) });
    try {
      await r.rt.federation.connect('fx');
      r.rt.federation.approve('fx');
      const firstPid = status(r.rt, 'fx').pid;
      const e = await call(r.rt, 'fx__crash', {});
      assert.equal(e.error?.code, 'CONNECTION_FAILED', JSON.stringify(e));
      assert.equal(r.rt.services.audit.list({ tool: 'fx__crash', limit: 1 })[0]?.status, 'error');
      const st = status(r.rt, 'fx');
      if (st.status === 'failed') assert.match(st.reason ?? '', /exit code 3/);
      // restarted automatically after the first backoff step
      await until(() => status(r.rt, 'fx').status === 'connected' && status(r.rt, 'fx').pid !== firstPid, 'restart after crash');
      assert.ok(status(r.rt, 'fx').restarts >= 1);
      assert.ok(listed(r.rt).includes('fx__greet'), 'tools stay listed across the restart');
      assert.equal((await call(r.rt, 'fx__greet', { name: 'again' })).ok, true);
      assert.ok(pidsWith(marker).length >= 1);
    } finally {
      await r.close();
    }
  });

  void it('a server that exits at start is failed with its stderr in the reason; a call gets a clear error', async () => {
    const marker = uniq('nostart');
    const r = await rig({ bad: fixtureServer(marker, { FIXTURE_CRASH_AT_START: '1' }, { tools: { allow: ['*'] } }) });
    try {
      await assert.rejects(r.rt.federation.connect('bad'), /refusing to start/);
      const st = status(r.rt, 'bad');
      assert.equal(st.status, 'failed');
      assert.match(st.reason ?? '', /refusing to start/);
      const e = await call(r.rt, 'bad__greet', {});
      assert.ok(e.error, 'refused');
      await r.rt.close();
      assert.deepEqual(pidsWith(marker), []);
    } finally {
      r.p.cleanup();
    }
  });

  void it('a command that does not exist fails with the reason', async () => {
    const r = await rig({ nope: { command: '/nonexistent/mcp-server', tools: { allow: ['*'] } } });
    try {
      await assert.rejects(r.rt.federation.connect('nope'), (e: Error) => /nonexistent|not found|exit code 127|closed/i.test(e.message));
    } finally {
      await r.close();
    }
  });
});

void describe('config reload', () => {
  void it('servers.json changes restart only the changed server; an invalid file keeps the last good one', async () => {
    const mA = uniq('relA');
    const mB = uniq('relB');
    const servers = (allowB: string[]) => ({
      a: fixtureServer(mA, {}, { tools: { allow: ['greet'] } }),
      b: everythingServer(mB, { tools: { allow: allowB } }),
    });
    const r = await rig(servers(['echo']));
    try {
      for (const s of ['a', 'b']) {
        await r.rt.federation.connect(s);
        r.rt.federation.approve(s);
      }
      const pidA = status(r.rt, 'a').pid;
      assert.deepEqual(
        listed(r.rt)
          .filter((n) => n.includes('__'))
          .sort(),
        ['a__greet', 'b__echo'],
      );
      r.p.write('servers.json', { mcpServers: servers(['echo', 'get-sum']) });
      r.rt.reload({ keepLastGood: true });
      assert.equal(status(r.rt, 'a').pid, pidA, 'a was not restarted');
      assert.ok(listed(r.rt).includes('b__get-sum'), 'b lists the newly allowed tool from its pins at once');
      // an invalid edit: the last good servers.json stays in effect, and the problem is reported
      r.p.write('servers.json', { mcpServers: { ...servers([]), a: { command: 'x', url: 'http://y' } } });
      const cfg = r.rt.reload({ keepLastGood: true });
      assert.ok(cfg.issues.some((i) => i.file.endsWith('servers.json')));
      assert.ok(listed(r.rt).includes('b__get-sum') && listed(r.rt).includes('a__greet'));
      assert.equal(status(r.rt, 'a').pid, pidA);
      // a server removed from the file is stopped and its tools go away
      r.p.write('servers.json', { mcpServers: { b: servers(['echo']).b } });
      r.rt.reload({ keepLastGood: true });
      assert.ok(!listed(r.rt).some((n) => n.startsWith('a__')));
      await until(() => pidsWith(mA).length === 0, 'removed server stopped');
    } finally {
      await r.close();
    }
  });

  void it('unknown keys in servers.json are errors naming the file and the key', async () => {
    const r = await rig({ s: { command: 'node', tools: { allow: ['*'] }, toolz: 1 } });
    try {
      const issue = r.rt.services.config.issues.find((i) => i.file.endsWith('servers.json'));
      assert.ok(issue);
      assert.match(issue.message, /servers\.json: mcpServers\.s: unknown key "toolz"/);
      assert.deepEqual(r.rt.serverStatuses(), []);
    } finally {
      await r.close();
    }
  });

  void it('server names that would make ambiguous tool names are refused by the schema', async () => {
    const r = await rig({ a__b: { command: 'node' } });
    try {
      assert.ok(
        r.rt.services.config.issues.some((i) => /servers\.json: mcpServers\.a__b/.test(i.message)),
        JSON.stringify(r.rt.services.config.issues),
      );
    } finally {
      await r.close();
    }
  });

  void it('exposed names are checked against the 64-character limit', async () => {
    const name = `s${'x'.repeat(57)}`; // 58 + "__" + "greet" = 65
    const r = await rig({ [name]: fixtureServer(uniq('long'), {}, { tools: { allow: ['*'] } }) });
    try {
      await r.rt.federation.connect(name);
      const st = status(r.rt, name);
      const greet = st.tools.find((t) => t.tool === 'greet')!;
      assert.equal(greet.state, 'refused');
      assert.match(greet.reason!, /at most 64 characters/);
      assert.ok(st.tools.find((t) => t.tool === 'env')?.state !== 'refused', `${name}__env fits`);
    } finally {
      await r.close();
    }
  });
});

void describe('status in preflight', () => {
  void it('reports connected, disabled, missing_credentials, pending approval and failed servers', async () => {
    const r = await rig({
      good: fixtureServer(uniq('pf-good'), {}, { tools: { allow: ['greet'] } }),
      off: fixtureServer(uniq('pf-off'), {}, { enabled: false }),
      nocred: fixtureServer(uniq('pf-nocred'), { FIXTURE_SECRET: '${secret:PF_MISSING}' }),
      fresh: fixtureServer(uniq('pf-fresh')),
      broken: fixtureServer(uniq('pf-broken'), { FIXTURE_CRASH_AT_START: '1' }),
    });
    try {
      await r.rt.federation.connect('good');
      r.rt.federation.approve('good');
      const e = (await r.rt.call('preflight', { kinds: ['upstream'], probe_timeout_ms: 30000 })) as unknown as {
        ok: boolean;
        result: { items: { name: string; status: string; reason?: string; message: string; missing?: string[] }[] };
      };
      assert.equal(e.ok, true, JSON.stringify(e));
      const by = Object.fromEntries(e.result.items.map((i) => [i.name, i]));
      assert.equal(by.good?.status, 'ok');
      assert.match(by.good!.message, /connected; 1 tool\(s\) exposed/);
      assert.equal(by.off?.status, 'disabled');
      assert.equal(by.nocred?.status, 'missing_credentials');
      assert.deepEqual(by.nocred?.missing, ['secret:PF_MISSING']);
      assert.equal(by.fresh?.status, 'disabled');
      assert.match(by.fresh!.message, /pending approval/);
      assert.equal(by.broken?.status, 'failed');
      assert.match(by.broken!.message, /refusing to start/);
    } finally {
      await r.close();
    }
  });
});
