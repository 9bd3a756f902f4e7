import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import type { Envelope } from '../../src/core/envelope.js';
import { startHttpServer, type FixtureServer } from '../fixtures/http-server.js';
import { fail, filesContaining, filesUnder, httpRig, ok, type HttpRig } from './helpers.js';

/** Hostnames undici was asked to connect to while `fn` ran. */
async function connectsDuring(fn: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const on = (m: unknown): void => void seen.push(String((m as { connectParams?: { hostname?: string } }).connectParams?.hostname));
  subscribe('undici:client:beforeConnect', on);
  try {
    await fn();
  } finally {
    unsubscribe('undici:client:beforeConnect', on);
  }
  return seen;
}

const METADATA_URLS = [
  'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
  'http://2852039166/latest/meta-data/', // decimal
  'http://0251.0376.0251.0376/latest/meta-data/', // octal
  'http://0xa9fea9fe/latest/meta-data/', // hex
  'http://0xa9.0xfe.0xa9.0xfe/', // hex per octet
  'http://169.254.43518/', // two-part
  'http://[::ffff:169.254.169.254]/latest/meta-data/', // IPv4-mapped IPv6
  'http://[::ffff:a9fe:a9fe]/',
  'http://[fd00:ec2::254]/latest/meta-data/', // AWS IMDS over IPv6
  'http://100.100.100.200/latest/meta-data/', // Alibaba
  'http://metadata.google.internal/computeMetadata/v1/', // GCP name
  'http://metadata/computeMetadata/v1/',
  'http://[fe80::1]/', // link-local v6
  'http://169.254.1.1/', // link-local v4
];

void describe('http security rules', () => {
  let srv: FixtureServer;
  let other: FixtureServer;
  let rig: HttpRig;

  before(async () => {
    srv = await startHttpServer();
    other = await startHttpServer();
    rig = await httpRig(
      {
        'profiles.json': { api: { type: 'http', base_url: srv.url, headers: { Authorization: 'Bearer ${env:API_TOKEN}' } } },
      },
      { API_TOKEN: 'tok-for-redirect-tests-0123456789' },
    );
  });
  after(async () => {
    await rig.close();
    await srv.close();
    await other.close();
  });

  void it('ssrf: redirect to cloud metadata is refused, and no connection is attempted', async () => {
    let reply: Envelope | undefined;
    const connects = await connectsDuring(async () => {
      reply = await rig.call({
        action: 'request',
        url: `${srv.url}/redirect?to=${encodeURIComponent('http://169.254.169.254/latest/meta-data/')}`,
      });
    });
    const e = fail(reply!);
    assert.equal(e.error.code, 'DENIED');
    assert.equal(e.error.details?.hop, 1);
    assert.equal(e.error.details?.allow_key, 'allow_link_local');
    assert.match(e.error.hint ?? '', /allow_link_local/);
    assert.ok(!connects.some((h) => h.includes('169.254')), `connected to ${connects.join(', ')}`);
    assert.equal(rig.rt.services.audit.get(e.call_id)?.status, 'denied');
  });

  for (const target of METADATA_URLS) {
    void it(`ssrf: redirect to ${target} is refused`, async () => {
      const connects = await connectsDuring(async () => {
        const e = fail(await rig.call({ action: 'request', url: `${srv.url}/redirect?status=307&to=${encodeURIComponent(target)}` }));
        assert.equal(e.error.code, 'DENIED');
        assert.equal(e.error.details?.rule, 'ssrf');
      });
      assert.deepEqual(
        connects.filter((h) => !h.startsWith('127.0.0.1')),
        [],
      );
    });

    void it(`ssrf: direct request to ${target} is refused before the call runs`, async () => {
      const e = fail(await rig.call({ action: 'request', url: target }));
      assert.equal(e.error.code, 'DENIED');
      assert.equal(rig.rt.services.audit.get(e.call_id)?.status, 'denied');
      // check refuses the same way
      assert.equal(fail(await rig.call({ action: 'check', url: target })).error.code, 'DENIED');
    });
  }

  void it('ssrf: a profile pointing at metadata is refused unless the profile allows link-local', async () => {
    const r = await httpRig({ 'profiles.json': { imds: { type: 'http', base_url: 'http://169.254.169.254' } } });
    try {
      const e = fail(await r.call({ action: 'request', profile: 'imds', path: '/latest/meta-data/' }));
      assert.equal(e.error.code, 'DENIED');
      assert.match(e.error.hint ?? '', /profile imds/);
    } finally {
      await r.close();
    }
  });

  void it('ssrf: allow_private false refuses loopback after DNS resolution (localhost)', async () => {
    const r = await httpRig({ 'policy.json': { http: { allow_private: false } } });
    try {
      // an address literal is refused at the gate
      const lit = fail(await r.call({ action: 'request', url: `${srv.url}/text` }));
      assert.equal(lit.error.code, 'DENIED');
      // a name passes the gate and is refused on its resolved address inside the connection
      const e = fail(await r.call({ action: 'request', url: `http://localhost:${srv.port}/text` }));
      assert.equal(e.error.code, 'DENIED');
      assert.equal(e.error.details?.allow_key, 'allow_private');
      assert.match(String(e.error.details?.address), /^(127\.0\.0\.1|::1)$/);
      assert.equal(r.rt.services.audit.get(e.call_id)?.status, 'denied');
    } finally {
      await r.close();
    }
  });

  void it("ssrf: a profile's allow_private does not carry over a redirect to another origin", async () => {
    const r = await httpRig({
      'policy.json': { http: { allow_private: false } },
      'profiles.json': { internal: { type: 'http', base_url: srv.url, allow_private: true } },
    });
    try {
      ok(await r.call({ action: 'request', profile: 'internal', path: '/text' }));
      const e = fail(
        await r.call({ action: 'request', profile: 'internal', path: `/redirect?to=${encodeURIComponent(`${other.url}/text`)}` }),
      );
      assert.equal(e.error.code, 'DENIED');
      assert.equal(e.error.details?.hop, 1);
    } finally {
      await r.close();
    }
  });

  void it('allow_hosts: a host outside the list is refused, also on a redirect hop', async () => {
    const r = await httpRig({ 'policy.json': { http: { allow_hosts: ['127.0.0.1'] } } });
    try {
      ok(await r.call({ action: 'request', url: `${srv.url}/text` }));
      const direct = fail(await r.call({ action: 'request', url: `http://localhost:${srv.port}/text` }));
      assert.equal(direct.error.code, 'DENIED');
      assert.equal(direct.error.details?.rule, 'allow_hosts');
      assert.match(direct.error.hint ?? '', /allow_hosts/);
      const hop = fail(
        await r.call({ action: 'request', url: `${srv.url}/redirect?to=${encodeURIComponent(`http://localhost:${srv.port}/text`)}` }),
      );
      assert.equal(hop.error.code, 'DENIED');
      assert.equal(hop.error.details?.hop, 1);
    } finally {
      await r.close();
    }
  });

  void it('ssrf: redirect to a non-http scheme is refused', async () => {
    const e = fail(await rig.call({ action: 'request', url: `${srv.url}/redirect?to=${encodeURIComponent('file:///etc/passwd')}` }));
    assert.equal(e.error.code, 'DENIED');
  });

  void it('credential leak: profile headers are not sent to another origin on redirect', async () => {
    const before = other.requests.length;
    const r = ok(
      await rig.call({
        action: 'request',
        profile: 'api',
        path: `/redirect?to=${encodeURIComponent(`${other.url}/echo`)}`,
        headers: { 'X-Api-Key': 'caller-key-1234', 'X-Trace': 't1' },
      }),
    );
    assert.equal(r.result.status, 200);
    const got = other.requests.slice(before);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.headers.authorization, undefined, 'profile Authorization stayed home');
    assert.equal(got[0]!.headers['x-api-key'], undefined, 'caller credentials are dropped cross-origin');
    assert.equal(got[0]!.headers['x-trace'], 't1', 'other caller headers follow');
    // on the profile's origin the header was sent
    const home = srv.requests.filter((q) => q.url.startsWith('/redirect')).at(-1);
    assert.match(String(home?.headers.authorization), /^Bearer tok-for-redirect/);
  });
});

void describe('secret leak: a profile bearer token never reaches replies, artifacts, audit or logs', () => {
  const token = `tok_${randomBytes(24).toString('hex')}`;
  const forms = [
    token,
    Buffer.from(token).toString('base64'),
    Buffer.from(`Bearer ${token}`).toString('base64'),
    encodeURIComponent(token),
  ];
  let srv: FixtureServer;
  let rig: HttpRig;
  const logs: string[] = [];

  before(async () => {
    srv = await startHttpServer();
    rig = await httpRig(
      {
        'profiles.json': {
          api: { type: 'http', base_url: srv.url, headers: { Authorization: 'Bearer ${env:API_TOKEN}', 'X-Api-Key': '${env:API_TOKEN}' } },
        },
      },
      { API_TOKEN: token, INFRA_LOG_LEVEL: 'debug' },
      logs,
    );
  });
  after(async () => {
    await rig.close();
    await srv.close();
  });

  void it('secret leak: token echoed by the server, in errors, redirects and checks stays out of .infra', async () => {
    const replies: Envelope[] = [];
    const call = async (args: Record<string, unknown>): Promise<Envelope> => {
      const r = await rig.call(args);
      replies.push(r);
      return r;
    };
    // the server echoes every request header back in its JSON body
    const echo = ok(await call({ action: 'request', profile: 'api', path: '/echo' }));
    assert.match(echo.result.json.headers.authorization, /^Bearer \[REDACTED/);
    await call({ action: 'request', profile: 'api', path: '/leak' });
    await call({ action: 'request', profile: 'api', path: '/echo', method: 'POST', json: { hello: 'world' } });
    await call({ action: 'request', profile: 'api', path: '/echo', max_bytes: 300 }); // truncated inline
    await call({ action: 'request', profile: 'api', path: '/status/500', expect_status: 200 }); // error with body head
    await call({ action: 'request', profile: 'api', path: `/redirect?to=${encodeURIComponent('/echo')}` });
    await call({ action: 'check', profile: 'api', path: '/echo', expect_body_contains: token }); // the check must fail: the body is redacted
    await call({ action: 'check', profile: 'api', path: '/leak', expect_body_contains: 'you sent' });
    await call({ action: 'profiles' });
    await call({ action: 'request', profile: 'api', path: '/redirect?to=http://169.254.169.254/' });
    await call({ action: 'request', profile: 'api', path: '/slow?ms=2000', timeout_ms: 200 });
    const art = ok(await rig.rt.call('artifacts', { action: 'get', uri: echo.result.body_uri, max_bytes: 65536 }));
    replies.push(art);

    // the token did reach the server
    assert.ok(srv.requests.some((q) => q.headers.authorization === `Bearer ${token}`));
    const text = JSON.stringify(replies);
    for (const f of forms) assert.ok(!text.includes(f), `a reply contains the token (form ${f.slice(0, 8)}…)`);
    await rig.rt.close(); // flush the audit database and its WAL before reading the files
    const files = filesUnder(rig.project.infraDir);
    assert.ok(files.some((f) => f.endsWith('request.json')));
    assert.ok(files.some((f) => f.endsWith('infra.db')));
    assert.deepEqual(filesContaining(rig.project.infraDir, forms), []);
    assert.ok(!logs.join('\n').includes(token));
  });
});
