import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { LookupAddress } from 'node:dns';
import { after, before, describe, it } from 'node:test';
import { findSsrfError, HttpAgents, sendOnce, type LookupFn } from '../../src/adapters/http-agents.js';
import { makeTlsFixture, startHttpServer, startHttpsServer, type FixtureServer, type TlsFixture } from '../fixtures/http-server.js';

const DEFAULT = { allowPrivate: true, allowLinkLocal: false };

void describe('http adapter (undici, guarded connector)', () => {
  let srv: FixtureServer;
  let tls: TlsFixture;
  let tlsSrv: FixtureServer;
  before(async () => {
    srv = await startHttpServer();
    tls = makeTlsFixture();
    tlsSrv = await startHttpsServer(tls);
  });
  after(async () => {
    await srv.close();
    await tlsSrv.close();
    tls.cleanup();
  });

  void it('reuses one keep-alive connection per origin', async () => {
    const agents = new HttpAgents();
    const get = async (): Promise<void> => {
      const r = await sendOnce(agents, {
        url: new URL(`${srv.url}/text`),
        method: 'GET',
        headers: {},
        signal: new AbortController().signal,
        agent: { guard: DEFAULT, tls: {} },
      });
      assert.equal(r.status, 200);
      await r.body.dump?.();
    };
    // undici may open a second socket while the first is finishing its response; after that
    // the warm pool serves every request
    await get();
    await get();
    const warm = srv.connections();
    for (let i = 0; i < 20; i++) await get();
    assert.equal(srv.connections(), warm, 'no new connection on a warm origin');
    await agents.close();
  });

  void it('trusts a CA file for https and refuses an unknown CA without it', async () => {
    const agents = new HttpAgents();
    const ok = await sendOnce(agents, {
      url: new URL(`${tlsSrv.url}/text`),
      method: 'GET',
      headers: {},
      signal: new AbortController().signal,
      agent: { guard: DEFAULT, tls: { caFile: tls.caFile } },
    });
    assert.equal(ok.status, 200);
    await ok.body.dump?.();
    await assert.rejects(
      sendOnce(agents, {
        url: new URL(`${tlsSrv.url}/text`),
        method: 'GET',
        headers: {},
        signal: new AbortController().signal,
        agent: { guard: DEFAULT, tls: {} },
      }),
      (e: Error) => /certificate|self.signed|issuer/i.test(`${e.message} ${(e as { code?: string }).code}`),
    );
    await agents.close();
  });

  void it('ssrf: DNS rebinding to a metadata address is refused inside the connection lookup', async () => {
    // first answer is the test server, the next one the metadata address: a check on the name
    // before connecting would pass; the lookup inside the socket refuses the second
    let n = 0;
    const lookup: LookupFn = (_host, _opts, cb) => {
      n++;
      const addrs: LookupAddress[] = [{ address: n === 1 ? '127.0.0.1' : '169.254.169.254', family: 4 }];
      cb(null, addrs);
    };
    const a1 = new HttpAgents({ lookup });
    const url = new URL(`http://rebind.test:${srv.port}/text`);
    const r = await sendOnce(a1, {
      url,
      method: 'GET',
      headers: {},
      signal: new AbortController().signal,
      agent: { guard: DEFAULT, tls: {} },
    });
    assert.equal(r.status, 200);
    await r.body.dump?.();
    await a1.close();
    const a2 = new HttpAgents({ lookup });
    const err = await sendOnce(a2, {
      url,
      method: 'GET',
      headers: {},
      signal: new AbortController().signal,
      agent: { guard: DEFAULT, tls: {} },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const blocked = findSsrfError(err);
    assert.ok(blocked, `expected an SSRF refusal, got ${String(err)}`);
    assert.equal(blocked.refusal.allowKey, 'allow_link_local');
    await a2.close();
  });

  void it('ssrf: a name resolving to both a public and a link-local address is refused', async () => {
    const lookup: LookupFn = (_h, _o, cb) =>
      cb(null, [
        { address: '127.0.0.1', family: 4 },
        { address: 'fe80::1', family: 6 },
      ]);
    const agents = new HttpAgents({ lookup });
    const err = await sendOnce(agents, {
      url: new URL(`http://two.test:${srv.port}/`),
      method: 'GET',
      headers: {},
      signal: new AbortController().signal,
      agent: { guard: DEFAULT, tls: {} },
    }).catch((e: unknown) => e);
    assert.ok(findSsrfError(err));
    await agents.close();
  });

  void it('ssrf: literal metadata addresses never open a socket', async () => {
    const seen: string[] = [];
    const onConnect = (m: unknown): void => {
      seen.push(String((m as { connectParams?: { hostname?: string } }).connectParams?.hostname));
    };
    const created: number[] = [];
    const onSocket = (): void => void created.push(1);
    subscribe('undici:client:beforeConnect', onConnect);
    subscribe('undici:client:connected', onSocket);
    const agents = new HttpAgents();
    try {
      for (const u of [
        'http://169.254.169.254/latest/meta-data/',
        'http://2852039166/',
        'http://0251.0376.0251.0376/',
        'http://0xa9fea9fe/',
        'http://[::ffff:169.254.169.254]/',
        'http://metadata.google.internal/',
      ]) {
        const err = await sendOnce(agents, {
          url: new URL(u),
          method: 'GET',
          headers: {},
          signal: new AbortController().signal,
          agent: { guard: DEFAULT, tls: {} },
        }).catch((e: unknown) => e);
        assert.ok(findSsrfError(err), `${u}: ${String(err)}`);
      }
    } finally {
      unsubscribe('undici:client:beforeConnect', onConnect);
      unsubscribe('undici:client:connected', onSocket);
      await agents.close();
    }
    assert.equal(created.length, 0, 'no connection was established');
  });
});
