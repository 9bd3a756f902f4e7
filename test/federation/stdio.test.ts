// End to end: an SDK client connected to infra alone (dist/cli.js over stdio) uses tools of
// upstream servers; approvals through the CLI; list_changed forwarded; config reload; no
// upstream process outlives infra after SIGTERM or SIGKILL (checked with ps).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { CLI, startStdio } from '../helpers/client.js';
import { makeProject } from '../helpers/project.js';
import { everythingServer, fixtureServer, pidsWith, uniq, until } from './helpers.js';

const cli = (root: string, ...args: string[]): string =>
  execFileSync(process.execPath, [CLI, '--project', root, ...args], {
    encoding: 'utf8',
    env: { ...process.env, INFRA_LOG_LEVEL: 'error' },
  });

void describe('an MCP client connected to infra alone', () => {
  void it('lists and calls upstream tools, sees list_changed when an upstream changes or the config is edited', async () => {
    const mEv = uniq('e2e-ev');
    const mFx = uniq('e2e-fx');
    const servers = (evAllow: string[]) => ({
      mcpServers: {
        ev: everythingServer(mEv, { tools: { allow: evAllow }, description: 'MCP reference server' }),
        fx: fixtureServer(mFx, { FIXTURE_MUTATE: '1' }, { tools: { allow: ['greet', 'note'] }, start: 'startup' }),
      },
    });
    const p = makeProject({ 'servers.json': servers(['echo']) });
    try {
      assert.match(cli(p.root, 'servers', 'test', 'ev'), /13 new/);
      assert.match(cli(p.root, 'servers', 'approve', 'ev'), /approved 13 tool definition\(s\) of ev[\s\S]*exposed now: ev__echo/);
      assert.match(cli(p.root, 'servers', 'approve', 'fx'), /exposed now: fx__greet, fx__note/);
      assert.match(cli(p.root, 'servers', 'test', 'ev'), /0 new, 0 changed, 0 removed, 13 unchanged/);
      const listing = JSON.parse(cli(p.root, 'servers', 'list', '--json')) as { name: string; status: string }[];
      assert.deepEqual(
        listing.map((s) => `${s.name}:${s.status}`),
        ['ev:idle', 'fx:idle'],
      );

      const s = await startStdio({ env: { MCP_PROFILES_DIR: p.infraDir } });
      try {
        let changed = 0;
        s.client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
          changed++;
        });
        const names = async (): Promise<string[]> => (await s.client.listTools()).tools.map((t) => t.name);
        await until(async () => (await names()).includes('fx__greet'), 'fx__greet listed');
        const { tools } = await s.client.listTools();
        const echo = tools.find((t) => t.name === 'ev__echo')!;
        assert.equal(echo.description, 'Echoes back the input string');
        assert.deepEqual(echo.inputSchema.required, ['message']);
        assert.equal(echo.annotations?.readOnlyHint, true);
        assert.ok(!tools.some((t) => t.name === 'ev__get-sum'), 'not allowed');

        const r = await s.client.callTool({ name: 'ev__echo', arguments: { message: 'through infra' } });
        assert.ok(!r.isError);
        assert.match(JSON.stringify(r.structuredContent), /Echo: through infra/);

        const g = await s.call('fx__greet', { name: 'e2e' });
        assert.equal(g.ok, true);
        // the fixture changes greet's description and notifies; infra re-lists, blocks, forwards
        await until(async () => changed > 0 && !(await names()).includes('fx__greet'), 'greet blocked and list_changed forwarded');
        const blocked = await s.client.callTool({ name: 'fx__greet', arguments: { name: 'e2e' } });
        assert.equal(blocked.isError, true);
        assert.equal((blocked.structuredContent as { error: { code: string } }).error.code, 'DENIED');

        // editing servers.json takes effect without restarting infra
        const before = changed;
        p.write('servers.json', servers(['echo', 'get-sum']));
        await until(async () => changed > before && (await names()).includes('ev__get-sum'), 'config reload lists ev__get-sum');
        const sum = await s.call('ev__get-sum', { a: 20, b: 22 });
        assert.match(JSON.stringify(sum.result), /42/);

        const audit = await s.call('audit', { action: 'list', limit: 50 });
        const rows = (audit.result as { rows: { tool: string; status: string; action: string }[] }).rows.map(
          (x) => `${x.tool}.${x.action}:${x.status}`,
        );
        for (const want of [
          'ev__echo.call:ok',
          'fx__greet.call:ok',
          'fx__greet.call:denied',
          'fx__greet.pin_check:denied',
          'ev__get-sum.call:ok',
        ]) {
          assert.ok(rows.includes(want), `${want} in ${rows.join(' ')}`);
        }
      } finally {
        await s.close();
      }
      await until(() => pidsWith(mEv).length === 0 && pidsWith(mFx).length === 0, 'upstreams end with the session');
    } finally {
      p.cleanup();
    }
  });
});

for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
  void describe(`no orphan processes after ${signal} of infra`, () => {
    void it('every upstream process and its children are gone', async () => {
      const mFx = uniq(`orph-fx-${signal}`);
      const mEv = uniq(`orph-ev-${signal}`);
      const p = makeProject({
        'servers.json': {
          mcpServers: {
            // ignores stdin EOF and leaves a child in its process group: closing stdin is not enough
            fx: fixtureServer(mFx, { FIXTURE_GRANDCHILD: '1', FIXTURE_IGNORE_EOF: '1' }, { start: 'startup' }),
            ev: everythingServer(mEv, { start: 'startup' }),
          },
        },
      });
      try {
        const s = await startStdio({ env: { MCP_PROFILES_DIR: p.infraDir } });
        try {
          // supervisor, its watcher, the server and the grandchild; for ev: supervisor, watcher, server
          await until(
            () => pidsWith(`${mFx} grandchild`).length === 1 && pidsWith(mFx).length >= 4 && pidsWith(mEv).length >= 3,
            'upstreams, supervisors and the grandchild running',
          );
          process.kill(s.pid, signal);
          await until(() => pidsWith(mFx).length === 0 && pidsWith(mEv).length === 0, `no process left after ${signal}`, 20_000);
        } finally {
          await s.close();
        }
      } finally {
        for (const pid of [...pidsWith(mFx), ...pidsWith(mEv)]) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        p.cleanup();
      }
    });
  });
}
