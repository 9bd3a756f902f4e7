// psql profiles over TLS against a real cluster that takes only TLS connections over TCP
// (test/fixtures/postgres.ts `tls`), with a CA and server certificate made by openssl for
// 127.0.0.1 and localhost. The cluster also listens on 127.0.0.2, a name the certificate does
// not carry: verify-full must refuse it, verify-ca must not.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeTlsFixture, type TlsFixture } from '../fixtures/http-server.js';
import { startPostgres, type PgCluster } from '../fixtures/postgres.js';
import { psqlEnv, type PsqlEnv } from './setup.js';

let tls: TlsFixture;
let pg: PgCluster;
let env: PsqlEnv;

before(async () => {
  tls = makeTlsFixture();
  pg = await startPostgres({ tables: false, tls: { cert: tls.cert, key: tls.key } });
  const at = (host: string, extra: Record<string, unknown>): Record<string, unknown> => ({
    type: 'postgres',
    host,
    port: pg.port,
    database: 'app',
    user: 'reader',
    password: '${env:RO_PASSWORD}',
    ...extra,
  });
  env = await psqlEnv({
    pg,
    env: { RO_PASSWORD: pg.passwords.reader },
    profiles: {
      full: at('127.0.0.1', { sslmode: 'verify-full', ca_file: tls.caFile }),
      full_other_name: at('127.0.0.2', { sslmode: 'verify-full', ca_file: tls.caFile }),
      ca_other_name: at('127.0.0.2', { sslmode: 'verify-ca', ca_file: tls.caFile }),
      full_no_ca: at('127.0.0.1', { sslmode: 'verify-full' }),
      required: at('127.0.0.1', { sslmode: 'require' }),
      plain: at('127.0.0.1', { sslmode: 'disable' }),
      url_full: {
        type: 'postgres',
        url: `postgresql://reader:\${env:RO_PASSWORD}@127.0.0.1:${pg.port}/app?sslmode=verify-full`,
        ca_file: tls.caFile,
      },
      ca_missing: at('127.0.0.1', { sslmode: 'verify-full', ca_file: '/nonexistent/ca.pem' }),
    },
  });
});

after(async () => {
  await env?.close();
  pg?.stop();
  tls?.cleanup();
});

/** Whether the profile's own connection is encrypted, asked of the server. */
async function encrypted(profile: string): Promise<boolean> {
  const r = await env.ok<{ rows: { ssl: boolean }[] }>({
    action: 'query',
    profile,
    sql: 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
  });
  return r.rows[0]!.ssl;
}

void describe('psql over TLS', () => {
  void test('verify-full with the CA file connects encrypted, from host fields and from a url', async () => {
    assert.equal(await encrypted('full'), true);
    assert.equal(await encrypted('url_full'), true);
  });

  void test('require connects encrypted without checking the certificate', async () => {
    assert.equal(await encrypted('required'), true);
  });

  void test('verify-ca accepts a host the certificate does not name; verify-full refuses it', async () => {
    assert.equal(await encrypted('ca_other_name'), true);
    const e = await env.fail({ action: 'query', profile: 'full_other_name', sql: 'select 1' });
    assert.equal(e.code, 'CONNECTION_FAILED');
    assert.match(e.message, /127\.0\.0\.2|altname|certificate/i);
  });

  void test('verify-full without the CA (system roots only) refuses the test CA’s certificate', async () => {
    const e = await env.fail({ action: 'query', profile: 'full_no_ca', sql: 'select 1' });
    assert.equal(e.code, 'CONNECTION_FAILED');
    assert.match(e.message, /certificate/i);
  });

  void test('sslmode disable against a server that takes only TLS is refused with the server’s reason', async () => {
    const e = await env.fail({ action: 'query', profile: 'plain', sql: 'select 1' });
    assert.ok(e.code === 'CONNECTION_FAILED' || e.code === 'AUTH_FAILED', e.code);
    assert.match(e.message, /pg_hba|encryption|SSL/i);
  });

  void test('an unreadable ca_file is CONNECTION_FAILED naming the file', async () => {
    const e = await env.fail({ action: 'query', profile: 'ca_missing', sql: 'select 1' });
    assert.equal(e.code, 'CONNECTION_FAILED');
    assert.match(e.message, /ca_file \/nonexistent\/ca\.pem cannot be read/);
  });
});
