import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeTlsFixture, startHttpServer, startHttpsServer, type FixtureServer, type TlsFixture } from '../fixtures/http-server.js';
import { fail, httpRig, ok, type HttpRig } from './helpers.js';

void describe('http request through the pipeline', () => {
  let srv: FixtureServer;
  let other: FixtureServer;
  let tls: TlsFixture;
  let tlsSrv: FixtureServer;
  let rig: HttpRig;

  before(async () => {
    srv = await startHttpServer();
    other = await startHttpServer();
    tls = makeTlsFixture();
    tlsSrv = await startHttpsServer(tls);
    rig = await httpRig(
      {
        'profiles.json': {
          api: { type: 'http', base_url: `${srv.url}/v1`, headers: { 'X-Env': 'test', Authorization: 'Bearer ${env:API_TOKEN}' } },
          secure: { type: 'http', base_url: tlsSrv.url, ca_file: tls.caFile, timeout_ms: 300 },
          plain: { type: 'http', base_url: tlsSrv.url },
          db: { type: 'postgres', url: 'postgres://x@localhost/db' },
        },
      },
      { API_TOKEN: 'api-token-abcdef-0123456789' },
    );
  });
  after(async () => {
    await rig.close();
    await srv.close();
    await other.close();
    await tlsSrv.close();
    tls.cleanup();
  });

  void it('GET returns status, headers, timing and parsed JSON; the body is in the artifact', async () => {
    const r = ok(await rig.call({ action: 'request', url: `${srv.url}/json` }));
    assert.equal(r.result.status, 200);
    assert.equal(r.result.json.status, 'up');
    assert.equal(r.result.body, undefined, 'JSON is given once, parsed');
    assert.ok(r.result.timing.total_ms >= 0);
    assert.equal(r.result.headers['content-type'], 'application/json');
    const file = join(rig.rt.project.artifactsDir, 'calls', r.call_id, 'body');
    const bytes = readFileSync(file);
    assert.equal(bytes.length, r.result.body_bytes);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), r.result.body_sha256);
    assert.equal(r.result.request.headers['user-agent'], 'infra-mcp');
  });

  void it('a JSON body nested deeper than 100 levels comes back as text (parsing it ran the reply out of stack)', async () => {
    const shallow = ok(await rig.call({ action: 'request', url: `${srv.url}/deep?depth=99` }));
    assert.ok(Array.isArray(shallow.result.json), 'parsed when it is not too deep');
    for (const depth of [101, 5000]) {
      const r = ok(await rig.call({ action: 'request', url: `${srv.url}/deep?depth=${depth}` }));
      assert.equal(r.result.status, 200);
      assert.equal(r.result.json, undefined);
      assert.equal(r.result.body, '['.repeat(depth) + '"bottom"' + ']'.repeat(depth));
      assert.equal(r.result.body_bytes, 2 * depth + 8);
    }
  });

  void it('the request headers are recorded in call.json with credentials masked; request.json on failure', async () => {
    const r = ok(await rig.call({ action: 'request', profile: 'api', path: '/text', headers: { 'X-Api-Key': 'caller-secret-value' } }));
    const call = JSON.parse(readFileSync(join(rig.rt.project.artifactsDir, 'calls', r.call_id, 'call.json'), 'utf8'));
    const sent = call.envelope.result.request.headers;
    assert.equal(sent.authorization, 'Bearer [REDACTED]');
    assert.equal(sent['x-api-key'], '[REDACTED]');
    assert.equal(sent['x-env'], 'test');
    const e = fail(await rig.call({ action: 'request', profile: 'api', path: '/status/500', expect_status: 200 }));
    const req = JSON.parse(readFileSync(join(rig.rt.project.artifactsDir, 'calls', e.call_id, 'request.json'), 'utf8'));
    assert.equal(req.requests[0].headers.authorization, 'Bearer [REDACTED]');
  });

  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'post']) {
    void it(`method ${method} reaches the server`, async () => {
      const r = ok(await rig.call({ action: 'request', url: `${srv.url}/echo`, method }));
      assert.equal(r.result.status, 200);
      assert.equal(r.result.method, method.toUpperCase());
      if (method !== 'HEAD') assert.equal(r.result.json.method, method.toUpperCase());
      else assert.equal(r.result.body_bytes, 0);
    });
  }

  void it('an unknown method is an invalid argument', async () => {
    const e = fail(await rig.call({ action: 'request', url: `${srv.url}/echo`, method: 'TRACE' }));
    assert.equal(e.error.code, 'INVALID_ARGUMENT');
  });

  void it('GET/HEAD/OPTIONS are reads, other methods writes (INFRA_READ_ONLY refuses writes)', async () => {
    const ro = await httpRig({}, { INFRA_READ_ONLY: '1' });
    try {
      ok(await ro.call({ action: 'request', url: `${srv.url}/echo` }));
      ok(await ro.call({ action: 'request', url: `${srv.url}/echo`, method: 'OPTIONS' }));
      const e = fail(await ro.call({ action: 'request', url: `${srv.url}/echo`, method: 'POST', json: {} }));
      assert.equal(e.error.code, 'DENIED');
    } finally {
      await ro.close();
    }
  });

  void it('json body', async () => {
    const r = ok(await rig.call({ action: 'request', url: `${srv.url}/echo`, method: 'POST', json: { a: 1, b: ['x'] } }));
    assert.equal(r.result.json.body, '{"a":1,"b":["x"]}');
    assert.equal(r.result.json.headers['content-type'], 'application/json');
  });

  void it("text body, with the caller's content-type kept", async () => {
    const r = ok(
      await rig.call({
        action: 'request',
        url: `${srv.url}/echo`,
        method: 'PUT',
        body: 'hello\nworld',
        headers: { 'Content-Type': 'text/x-custom' },
      }),
    );
    assert.equal(r.result.json.body, 'hello\nworld');
    assert.equal(r.result.json.headers['content-type'], 'text/x-custom');
  });

  void it('base64 body arrives byte for byte', async () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255, 10, 13]);
    const r = ok(await rig.call({ action: 'request', url: `${srv.url}/echo`, method: 'POST', body_base64: bytes.toString('base64') }));
    assert.equal(r.result.json.body_bytes, bytes.length);
    assert.equal(r.result.json.body_sha256, createHash('sha256').update(bytes).digest('hex'));
  });

  void it('body_ref streams an earlier artifact as the request body', async () => {
    const first = ok(await rig.call({ action: 'request', url: `${srv.url}/big?bytes=300000` }));
    const r = ok(
      await rig.call({ action: 'request', url: `${srv.url}/echo`, method: 'POST', body_ref: first.result.body_uri, max_bytes: 1_000_000 }),
    );
    assert.equal(r.result.json.body_bytes, 300000);
    assert.equal(r.result.json.body_sha256, first.result.body_sha256);
    assert.equal(r.result.json.headers['content-length'], '300000');
  });

  void it('body_ref outside the artifacts root is refused', async () => {
    const e = fail(
      await rig.call({ action: 'request', url: `${srv.url}/echo`, method: 'POST', body_ref: 'artifact://calls/../../../etc/passwd' }),
    );
    assert.equal(e.error.code, 'INVALID_ARGUMENT');
  });

  void it('two bodies at once are refused before anything is sent', async () => {
    const n = srv.requests.length;
    const e = fail(await rig.call({ action: 'request', url: `${srv.url}/echo`, method: 'POST', json: {}, body: 'x' }));
    assert.equal(e.error.code, 'INVALID_ARGUMENT');
    assert.equal(srv.requests.length, n);
  });

  void it('query parameters are added (arrays repeat the key)', async () => {
    const r = ok(await rig.call({ action: 'request', url: `${srv.url}/echo?a=1`, query: { b: 'two', c: [3, true] } }));
    assert.match(r.result.url, /\?a=1&b=two&c=3&c=true$/);
  });

  void it('profile + path joins the base_url and sends the profile headers', async () => {
    const r = ok(await rig.call({ action: 'request', profile: 'api', path: '/echo?x=1', query: { y: 2 } }));
    assert.equal(r.result.json.path, '/v1/echo');
    assert.deepEqual(r.result.json.query, { x: '1', y: '2' });
    assert.equal(r.result.json.headers['x-env'], 'test');
    assert.equal(r.result.profile, 'api');
    // profile_name is the seed's spelling
    const r2 = ok(await rig.call({ action: 'request', profile_name: 'api', path: 'echo' }));
    assert.equal(r2.result.json.path, '/v1/echo');
  });

  void it("caller headers override the profile's", async () => {
    const r = ok(await rig.call({ action: 'request', profile: 'api', path: '/echo', headers: { 'X-Env': 'override' } }));
    assert.equal(r.result.json.headers['x-env'], 'override');
  });

  void it('a path cannot leave the profile origin', async () => {
    for (const path of ['//evil.example/x', 'http://evil.example/', '/\t/evil.example/', '\\\\evil.example']) {
      const e = fail(await rig.call({ action: 'request', profile: 'api', path }));
      assert.equal(e.error.code, 'INVALID_ARGUMENT', path);
    }
    const e = fail(await rig.call({ action: 'request', profile: 'api', url: `${other.url}/echo` }));
    assert.equal(e.error.code, 'INVALID_ARGUMENT');
  });

  void it('unknown profiles and non-http profiles are NOT_FOUND', async () => {
    assert.equal(fail(await rig.call({ action: 'request', profile: 'nope', path: '/' })).error.code, 'NOT_FOUND');
    assert.equal(fail(await rig.call({ action: 'request', profile: 'db', path: '/' })).error.code, 'NOT_FOUND');
  });

  void it('credentials in the URL are refused (they would land in the audit)', async () => {
    const e = fail(await rig.call({ action: 'request', url: `http://user:pw@127.0.0.1:${srv.port}/echo` }));
    assert.equal(e.error.code, 'INVALID_ARGUMENT');
  });

  void it('framing headers cannot be set', async () => {
    assert.equal(
      fail(await rig.call({ action: 'request', url: `${srv.url}/echo`, headers: { 'Transfer-Encoding': 'chunked' } })).error.code,
      'INVALID_ARGUMENT',
    );
    assert.equal(
      fail(await rig.call({ action: 'request', url: `${srv.url}/echo`, headers: { 'X-A': 'a\r\nX-B: b' } })).error.code,
      'INVALID_ARGUMENT',
    );
  });

  void it("https with the profile's ca_file; without it the certificate is refused", async () => {
    const r = ok(await rig.call({ action: 'request', profile: 'secure', path: '/json' }));
    assert.equal(r.result.json.status, 'up');
    const e = fail(await rig.call({ action: 'request', profile: 'plain', path: '/json' }));
    assert.equal(e.error.code, 'CONNECTION_FAILED');
    assert.match(e.error.hint ?? '', /ca_file/);
    const e2 = fail(await rig.call({ action: 'request', url: `${tlsSrv.url}/json` }));
    assert.equal(e2.error.code, 'CONNECTION_FAILED');
  });

  void it('insecure: true in a profile skips verification', async () => {
    const r2 = await httpRig({ 'profiles.json': { lax: { type: 'http', base_url: tlsSrv.url, insecure: true } } });
    try {
      assert.equal(ok(await r2.call({ action: 'request', profile: 'lax', path: '/text' })).result.status, 200);
    } finally {
      await r2.close();
    }
  });

  void it('the profile timeout_ms bounds a call that passes none', async () => {
    const e = fail(await rig.call({ action: 'request', profile: 'secure', path: '/slow?ms=3000' }));
    assert.equal(e.error.code, 'TIMEOUT');
    assert.match(e.error.message, /profile secure/);
    // an explicit timeout_ms wins
    ok(await rig.call({ action: 'request', profile: 'secure', path: '/slow?ms=400', timeout_ms: 5000 }));
  });

  void it('redirects are followed; 303 turns POST into GET', async () => {
    const to = encodeURIComponent(`${srv.url}/echo`);
    const r = ok(await rig.call({ action: 'request', url: `${srv.url}/redirect?to=${to}&status=303`, method: 'POST', json: { a: 1 } }));
    assert.equal(r.result.status, 200);
    assert.equal(r.result.json.method, 'GET');
    assert.equal(r.result.json.body, '');
    assert.equal(r.result.redirects.length, 1);
    assert.equal(r.result.redirects[0].status, 303);
  });

  void it('307 keeps the method and body', async () => {
    const to = encodeURIComponent(`${srv.url}/echo`);
    const r = ok(await rig.call({ action: 'request', url: `${srv.url}/redirect?to=${to}&status=307`, method: 'POST', body: 'keep me' }));
    assert.equal(r.result.json.method, 'POST');
    assert.equal(r.result.json.body, 'keep me');
  });

  void it('follow_redirects: false returns the redirect itself', async () => {
    const r = ok(await rig.call({ action: 'request', url: `${srv.url}/redirect?to=/text`, follow_redirects: false }));
    assert.equal(r.result.status, 302);
    assert.equal(r.result.headers.location, '/text');
  });

  void it('redirects are bounded', async () => {
    const e = fail(await rig.call({ action: 'request', url: `${srv.url}/loop`, follow_redirects: 3 }));
    assert.equal(e.error.code, 'UPSTREAM_ERROR');
    assert.match(e.error.message, /more than 3 redirects/);
  });

  void it('expect_status mismatch is an UPSTREAM_ERROR carrying the status; a plain 500 is a result', async () => {
    const r = ok(await rig.call({ action: 'request', url: `${srv.url}/status/500` }));
    assert.equal(r.result.status, 500);
    const e = fail(await rig.call({ action: 'request', url: `${srv.url}/status/404`, expect_status: '2xx' }));
    assert.equal(e.error.code, 'UPSTREAM_ERROR');
    assert.equal(e.error.details?.status, 404);
    ok(await rig.call({ action: 'request', url: `${srv.url}/status/404`, expect_status: [200, 404] }));
  });

  void it('connection refused is CONNECTION_FAILED', async () => {
    const dead = await startHttpServer();
    const url = `${dead.url}/x`;
    await dead.close();
    const e = fail(await rig.call({ action: 'request', url }));
    assert.equal(e.error.code, 'CONNECTION_FAILED');
    assert.equal(e.error.retryable, true);
  });

  void it('a large body is truncated inline (head and tail) and whole in the artifact', async () => {
    const r = ok(await rig.call({ action: 'request', url: `${srv.url}/big?bytes=200000`, max_bytes: 1000 }));
    assert.equal(r.result.body_bytes, 200000);
    assert.equal(r.truncated?.body?.bytes, 200000);
    assert.equal(r.result.body, undefined, 'octet-stream bodies are not inlined');
    const t = ok(await rig.call({ action: 'request', url: `${srv.url}/echo`, method: 'POST', body: 'y'.repeat(50000), max_bytes: 1000 }));
    assert.ok(t.result.body.length < 1200);
    assert.match(t.result.body, /bytes omitted/);
  });

  void it('max_response_bytes stops reading the body', async () => {
    const r = ok(await rig.call({ action: 'request', url: `${srv.url}/big?bytes=5000000`, max_response_bytes: 100000 }));
    assert.equal(r.result.body_bytes, 100000);
    assert.equal(r.result.body_limited, true);
  });

  void it('response Set-Cookie values are masked', async () => {
    const r = ok(await rig.call({ action: 'request', url: `${srv.url}/cookie` }));
    assert.doesNotMatch(JSON.stringify(r), /s3cr3t-cookie-value/);
    assert.match(JSON.stringify(r.result.headers['set-cookie']), /session=\[REDACTED\]/);
  });

  void it('the mcp_api_client alias reaches the tool', async () => {
    const r = await rig.rt.call('mcp_api_client', { action: 'request', url: `${srv.url}/text` });
    assert.equal(ok(r).result.body, 'hello world\n');
  });

  void it('profiles lists names, base_url and header names, never values', async () => {
    const r = ok(await rig.call({ action: 'profiles' }));
    const api = r.result.profiles.find((p: { name: string }) => p.name === 'api');
    assert.deepEqual(api.headers, ['X-Env', 'Authorization']);
    assert.equal(api.status, 'ok');
    assert.ok(!r.result.profiles.some((p: { name: string }) => p.name === 'db'));
    assert.doesNotMatch(JSON.stringify(r), /api-token-abcdef|Bearer/);
  });

  void it('calls are audited with the host or profile as target', async () => {
    const r = ok(await rig.call({ action: 'request', profile: 'api', path: '/text' }));
    const row = rig.rt.services.audit.get(r.call_id);
    assert.equal(row?.target, 'api');
    assert.equal(row?.status, 'ok');
  });
});
