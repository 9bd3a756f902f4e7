/**
 * INFRA_READ_ONLY=1 end to end through stdio: every write or irreversible action of the
 * catalog (iterated, not hard-coded) is absent from tools/list and refused by name, whatever its
 * arguments; argument-dependent actions (http request) are refused for their write uses.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { buildCatalog } from '../../src/catalog.js';
import { NATIVE_TOOLS } from '../../src/toolsets/registry.js';
import { makeProject, type TempProject } from '../helpers/project.js';
import { CLI, startStdio, type StdioSession } from '../helpers/client.js';

interface CatalogAction {
  action: string;
  effect: 'read' | 'write' | 'irreversible';
  effect_depends_on_arguments?: boolean;
}
interface CatalogTool {
  name: string;
  actions: CatalogAction[];
}

let session: StdioSession;
let project: TempProject;
const catalog = (buildCatalog(NATIVE_TOOLS) as { tools: CatalogTool[] }).tools;

before(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  project = makeProject({ 'policy.json': { repo: { write: true } } });
  // every gate that could hide a tool for another reason is opened: only read-only mode remains
  session = await startStdio({
    env: { MCP_PROFILES_DIR: project.infraDir, INFRA_READ_ONLY: '1', INFRA_UNSAFE_LOCAL: '1', INFRA_ALLOW_SECRET_EXPORT: '1' },
  });
});
after(async () => {
  await session?.close();
  project?.cleanup();
});

void describe('INFRA_READ_ONLY=1 through stdio', () => {
  void it('the catalog has write and irreversible actions to check', () => {
    const writes = catalog.flatMap((t) => t.actions.filter((a) => a.effect !== 'read' && !a.effect_depends_on_arguments));
    assert.ok(writes.length >= 8, `writes: ${writes.length}`);
    assert.ok(writes.some((a) => a.effect === 'irreversible'));
  });

  void it('tools/list shows no write or irreversible action, and every tool is read-only', async () => {
    const { tools } = await session.client.listTools();
    const listed = new Map(
      tools.map((t) => [t.name, ((t.inputSchema.properties as Record<string, { enum?: string[] }>)?.action?.enum ?? []) as string[]]),
    );
    for (const tool of catalog) {
      for (const a of tool.actions) {
        const shown = listed.get(tool.name)?.includes(a.action) ?? false;
        if (a.effect === 'read' || a.effect_depends_on_arguments) continue;
        assert.equal(shown, false, `${tool.name}.${a.action} (${a.effect}) is listed`);
      }
    }
    for (const t of tools) {
      assert.equal(t.annotations?.readOnlyHint, true, `${t.name} readOnlyHint`);
      assert.equal(t.annotations?.destructiveHint, false, `${t.name} destructiveHint`);
    }
    // reads stay available
    assert.ok(listed.get('state')?.includes('get'));
    assert.ok(listed.get('preflight')?.includes('run'));
  });

  void it('every write or irreversible action is refused by name, with or without valid arguments', async () => {
    let checked = 0;
    for (const tool of catalog) {
      for (const a of tool.actions) {
        if (a.effect === 'read' || a.effect_depends_on_arguments) continue;
        for (const args of [{ action: a.action }, { action: a.action, unexpected_argument: true }]) {
          const env = await session.call(tool.name, args);
          assert.equal(env.ok, false, `${tool.name}.${a.action} ran`);
          const err = env.error as { code: string; message: string; hint: string };
          assert.equal(err.code, 'DENIED', `${tool.name}.${a.action}: ${JSON.stringify(err)}`);
          assert.match(err.message, /INFRA_READ_ONLY=1/);
        }
        checked++;
      }
    }
    // hidden aliases reach the same refusal
    const alias = await session.call('mcp_state', { action: 'set', key: 'k', value: 'v' });
    assert.equal((alias.error as { code: string }).code, 'DENIED');
    assert.ok(checked >= 8);
  });

  void it('argument-dependent actions are refused for their write uses (http POST) and audited as denied', async () => {
    const post = await session.call('http', { action: 'request', method: 'POST', url: 'http://127.0.0.1:9/x', body: 'x' });
    assert.equal((post.error as { code: string }).code, 'DENIED');
    const audit = await session.call('audit', { action: 'list', status: 'denied', limit: 500 });
    assert.ok(audit.ok, JSON.stringify(audit));
    assert.ok(JSON.stringify(audit.result).includes('"denied"'), 'denied calls are in the audit');
    const st = await session.call('state', { action: 'list' });
    assert.ok(st.ok, 'reads still run');
  });
});
