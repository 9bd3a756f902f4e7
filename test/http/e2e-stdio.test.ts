import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRuntime } from '../../src/exec/runtime.js';
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

  void it('a body held back with the call record is readable the moment the reply is in, and on disk at stop', async () => {
    const bodies: { uri: string; sha: string; callId: string }[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await s.call('http', { action: 'request', url: `${srv.url}/text` });
      assert.equal(r.ok, true);
      const res = r.result as { body_uri: string; body_sha256: string; body: string };
      bodies.push({ uri: res.body_uri, sha: res.body_sha256, callId: r.call_id as string });
    }
    // read straight after the reply: the reader waits for the record, file included
    const last = bodies.at(-1)!;
    const got = await s.call('artifacts', { action: 'get', uri: last.uri });
    assert.equal(got.ok, true, JSON.stringify(got));
    const text = (got.result as { content: string }).content;
    assert.equal(createHash('sha256').update(text).digest('hex'), last.sha);
    await s.close();
    for (const b of bodies) {
      const file = join(project.infraDir, 'artifacts', 'calls', b.callId, 'body');
      assert.equal(createHash('sha256').update(readFileSync(file)).digest('hex'), b.sha, file);
      assert.ok(existsSync(join(project.infraDir, 'artifacts', 'calls', b.callId, 'call.json')));
    }
    s = await startStdio({ env: { MCP_PROFILES_DIR: project.infraDir, E2E_TOKEN: token } });
  });
});

// the single-file binary has no record worker: the main thread journals and lays out the record,
// held files included (createRuntime from the sources finds no worker file either)
void describe('a held body without a record worker (the single binary’s way)', () => {
  void it('is readable right after the reply, laid out when idle, and on disk at close', async () => {
    const srv = await startHttpServer();
    const project = makeProject({ 'profiles.json': { api: { type: 'http', base_url: srv.url } } });
    const rt = await createRuntime({ projectDir: project.infraDir, env: { ...process.env, INFRA_LOG_LEVEL: 'error' }, recordWorker: true });
    try {
      const calls: { id: string; sha: string; uri: string }[] = [];
      for (let i = 0; i < 5; i++) {
        const e = await rt.call('http', { action: 'request', profile: 'api', path: '/binary' }, { replyBeforeRecorded: true });
        assert.equal(e.ok, true, JSON.stringify(e));
        const r = (e as { result: { body_sha256: string; body_uri: string } }).result;
        calls.push({ id: e.call_id, sha: r.body_sha256, uri: r.body_uri });
      }
      const dir = (id: string): string => join(rt.project.artifactsDir, 'calls', id);
      // the last reply is in; its record is journaled after it and laid out only when idle
      assert.ok(!existsSync(join(dir(calls[4]!.id), 'body')), 'held back with the record');
      const got = await rt.call('artifacts', { action: 'get', uri: calls[4]!.uri, max_bytes: 4096 });
      assert.equal(got.ok, true, JSON.stringify(got));
      assert.equal(
        createHash('sha256')
          .update(readFileSync(join(dir(calls[4]!.id), 'body')))
          .digest('hex'),
        calls[4]!.sha,
      );
    } finally {
      await rt.close();
    }
    const calls = readdirSync(join(project.infraDir, 'artifacts', 'calls')).filter((n) => !n.startsWith('.'));
    assert.ok(calls.length >= 6, calls.join(' '));
    for (const id of calls.filter((n) => existsSync(join(project.infraDir, 'artifacts', 'calls', n, 'body')))) {
      const bytes = readFileSync(join(project.infraDir, 'artifacts', 'calls', id, 'body'));
      assert.equal(bytes.length, 256, 'the /binary body, byte for byte');
      assert.equal(bytes[255], 255);
    }
    assert.equal(calls.filter((n) => existsSync(join(project.infraDir, 'artifacts', 'calls', n, 'body'))).length, 5);
    project.cleanup();
    await srv.close();
  });
});
