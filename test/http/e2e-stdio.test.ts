import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { CLI, startStdio, type StdioSession } from '../helpers/client.js';
import { makeProject, type TempProject } from '../helpers/project.js';
import { startHttpServer, type FixtureServer } from '../fixtures/http-server.js';

// the bundled server (npm run build) spoken to by the SDK's own Client over stdio, as a
// third-party MCP client would
void describe('http over stdio with the SDK client', { skip: existsSync(CLI) ? false : `${CLI} is not built (npm run build)` }, () => {
  let srv: FixtureServer;
  let project: TempProject;
  let s: StdioSession;
  const token = 'e2e-token-6f1c2d9a7b3e4f50';

  before(async () => {
    srv = await startHttpServer();
    project = makeProject({
      'profiles.json': { api: { type: 'http', base_url: srv.url, headers: { Authorization: 'Bearer ${env:E2E_TOKEN}' } } },
    });
    s = await startStdio({ env: { MCP_PROFILES_DIR: project.infraDir, E2E_TOKEN: token } });
  });
  after(async () => {
    await s?.close();
    await srv.close();
    project.cleanup();
  });

  void it('lists http with its actions and read/write annotations', async () => {
    const { tools } = await s.client.listTools();
    const http = tools.find((t) => t.name === 'http');
    assert.ok(http, 'http is listed');
    const action = (http.inputSchema.properties as Record<string, { enum?: string[] }>).action;
    assert.deepEqual(action?.enum, ['request', 'check', 'profiles']);
    assert.equal(http.annotations?.readOnlyHint, false);
  });

  void it('request, check and an SSRF refusal answer as envelopes', async () => {
    const r = await s.call('http', { action: 'request', profile: 'api', path: '/echo' });
    assert.equal(r.ok, true);
    assert.doesNotMatch(JSON.stringify(r), new RegExp(token));
    const c = await s.call('http', { action: 'check', profile: 'api', path: '/json', expect_json: { status: 'up' } });
    assert.equal((c.result as { passed: boolean }).passed, true);
    const d = await s.call('mcp_api_client', {
      action: 'request',
      url: `${srv.url}/redirect?to=${encodeURIComponent('http://[::ffff:169.254.169.254]/')}`,
    });
    assert.equal(d.ok, false);
    assert.equal((d.error as { code: string }).code, 'DENIED');
    const audit = await s.call('audit', { action: 'list', limit: 10 });
    assert.equal(audit.ok, true);
    assert.match(JSON.stringify(audit.result), /"tool":"http"/);
  });
});
