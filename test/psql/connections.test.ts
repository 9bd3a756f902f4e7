import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../fixtures/postgres.js';
import { makeProject } from '../helpers/project.js';
import { createRuntime } from '../../src/exec/runtime.js';
import { NATIVE_TOOLS } from '../../src/toolsets/registry.js';
import { backendsRunning, eventually, psqlEnv, type PsqlEnv } from './setup.js';

let env: PsqlEnv;
let deadPort: number;

void before(async () => {
  deadPort = await freePort();
  env = await psqlEnv();
  // broken profiles, written once the cluster's port is known
  env.project.write(
    'profiles.json',
    JSON.stringify({
      ro: { type: 'postgres', url: '${env:RO_URL}' },
      badpw: { type: 'postgres', host: '127.0.0.1', port: env.pg.port, database: 'app', user: 'reader', password: 'wrong-password' },
      nobody: { type: 'postgres', url: '${env:UNSET_DB_URL}' },
      noplace: { type: 'postgres', host: '127.0.0.1', port: deadPort, database: 'app', user: 'reader', password: 'x' },
      nohost: { type: 'postgres', database: 'app' },
      nodb: {
        type: 'postgres',
        url: `postgres://reader:${encodeURIComponent(env.pg.passwords.reader)}@127.0.0.1:${env.pg.port}/missing_db`,
      },
      nopw: { type: 'postgres', host: '127.0.0.1', port: env.pg.port, database: 'app', user: 'reader' },
      web: { type: 'http', base_url: 'http://127.0.0.1:1' },
    }),
  );
  env.rt.reload();
});
void after(async () => {
  await env?.close();
});

void describe('broken profiles report clear errors', () => {
  void test('wrong password → AUTH_FAILED naming the profile, without the password', async () => {
    const e = await env.fail({ action: 'query', profile: 'badpw', sql: 'select 1' });
    assert.equal(e.code, 'AUTH_FAILED');
    assert.match(e.message, /badpw/);
    assert.match(e.hint ?? '', /profiles\.json: badpw/);
    assert.doesNotMatch(JSON.stringify(e), /wrong-password/);
  });

  void test('no password configured → AUTH_FAILED saying how to set one', async () => {
    const e = await env.fail({ action: 'query', profile: 'nopw', sql: 'select 1' });
    assert.equal(e.code, 'AUTH_FAILED');
    assert.match(e.hint ?? '', /password/);
  });

  void test('an unset ${env:…} reference → AUTH_FAILED with missing_credentials', async () => {
    const e = await env.fail({ action: 'query', profile: 'nobody', sql: 'select 1' });
    assert.equal(e.code, 'AUTH_FAILED');
    assert.equal((e.details as { status: string }).status, 'missing_credentials');
    assert.match(e.message, /UNSET_DB_URL/);
  });

  void test('nothing listening → CONNECTION_FAILED (retryable)', async () => {
    const e = await env.fail({ action: 'query', profile: 'noplace', sql: 'select 1' });
    assert.equal(e.code, 'CONNECTION_FAILED');
    assert.equal(e.retryable, true);
    assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${deadPort}`));
  });

  void test('a database that does not exist → CONNECTION_FAILED with a hint', async () => {
    const e = await env.fail({ action: 'query', profile: 'nodb', sql: 'select 1' });
    assert.equal(e.code, 'CONNECTION_FAILED');
    assert.match(e.hint ?? '', /database/);
  });

  void test('neither url nor host; an http profile; an unknown profile; no profile among several', async () => {
    assert.equal((await env.fail({ action: 'query', profile: 'nohost', sql: 'select 1' })).code, 'CONNECTION_FAILED');
    assert.equal((await env.fail({ action: 'query', profile: 'web', sql: 'select 1' })).code, 'INVALID_ARGUMENT');
    const nf = await env.fail({ action: 'query', profile: 'nope', sql: 'select 1' });
    assert.equal(nf.code, 'NOT_FOUND');
    assert.match(nf.hint ?? '', /ro/);
    const several = await env.fail({ action: 'query', sql: 'select 1' });
    assert.equal(several.code, 'INVALID_ARGUMENT');
    const both = await env.fail({ action: 'query', profile: 'ro', profile_name: 'badpw', sql: 'select 1' });
    assert.equal(both.code, 'INVALID_ARGUMENT');
  });

  void test('profiles shows the missing reference and never a password', async () => {
    const r = await env.ok<{ profiles: { name: string; missing_credentials?: string[] }[] }>({ action: 'profiles' });
    assert.deepEqual(r.profiles.find((p) => p.name === 'nobody')?.missing_credentials, ['env:UNSET_DB_URL']);
    assert.doesNotMatch(JSON.stringify(r), /wrong-password/);
    assert.ok(!JSON.stringify(r).includes(env.pg.passwords.reader));
  });
});

void describe('connections', () => {
  void test('a lost pooled connection is replaced: the next query succeeds', async () => {
    await env.ok({ action: 'query', profile: 'ro', sql: 'select 1' });
    const killed = env.pg.psql(
      `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'reader' AND pid <> pg_backend_pid()`,
      'postgres',
    );
    assert.ok(Number(killed) >= 1);
    await new Promise((r) => setTimeout(r, 100));
    const r = await env.ok<{ rows: unknown[] }>({ action: 'query', profile: 'ro', sql: 'select 2 as two' });
    assert.deepEqual(r.rows, [{ two: 2 }]);
  });

  void test('a connection killed right under a read query is retried on a fresh one', async () => {
    await env.ok({ action: 'query', profile: 'ro', sql: 'select 1' });
    // terminate without giving the idle client time to notice
    env.pg.psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'reader'`, 'postgres');
    const r = await env.ok<{ rows: unknown[] }>({ action: 'query', profile: 'ro', sql: 'select 3 as three' });
    assert.deepEqual(r.rows, [{ three: 3 }]);
  });

  void test('client cancellation stops the statement on the server', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const started = Date.now();
    const r = await env.call({ action: 'query', profile: 'ro', sql: "SELECT pg_sleep(60), 'marker-cancel-q'" }, { signal: ac.signal });
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.code, 'CANCELLED');
    assert.ok(Date.now() - started < 3000);
    assert.ok(await eventually(() => backendsRunning(env.pg, 'marker-cancel-q') === 0));
    // and the profile keeps working
    assert.ok((await env.call({ action: 'query', profile: 'ro', sql: 'select 1' })).ok);
  });

  void test('explain analyze past the timeout is cancelled on the server too', async () => {
    const e = await env.fail({
      action: 'explain',
      profile: 'ro',
      analyze: true,
      sql: "SELECT pg_sleep(60), 'marker-explain-t'",
      timeout_ms: 300,
    });
    assert.equal(e.code, 'TIMEOUT');
    assert.ok(await eventually(() => backendsRunning(env.pg, 'marker-explain-t') === 0));
  });

  void test('concurrent calls share the pool (pool_max) and all succeed', async () => {
    // 20 calls of 20 ms on 5 connections: a connection a call gives back goes to a call waiting
    // for one at once (a call that waited for the ready list's 1 s sweep would pass its deadline)
    const calls = Array.from({ length: 20 }, (_, i) =>
      env.ok<{ rows: { v: number }[] }>({
        action: 'query',
        profile: 'ro',
        sql: 'SELECT $1::int AS v, pg_sleep(0.02)',
        params: [i],
        timeout_ms: 2500,
      }),
    );
    const results = await Promise.all(calls);
    assert.deepEqual(
      results.map((r) => r.rows[0]!.v),
      Array.from({ length: 20 }, (_, i) => i),
    );
    const n = Number(
      env.pg.psql(`SELECT count(*) FROM pg_stat_activity WHERE usename = 'reader' AND application_name = 'infra'`, 'postgres'),
    );
    assert.ok(n <= 5, `${n} connections`);
  });

  void test('a changed profile gets a new pool (config reload)', async () => {
    const one = makeProject({ 'profiles.json': { only: { type: 'postgres', url: env.pg.url('reader'), max_rows: 2 } } });
    const rt = await createRuntime({ projectDir: one.infraDir, env: { ...process.env }, tools: NATIVE_TOOLS });
    try {
      // the only profile is used when none is named (the seed's `psql { action: "query", sql }`)
      const a = await rt.call('psql', { action: 'query', sql: 'SELECT generate_series(1, 5) AS g' });
      assert.ok(a.ok);
      assert.equal((a.result as { rows: unknown[] }).rows.length, 2);
      one.write('profiles.json', { only: { type: 'postgres', url: env.pg.url('reader'), max_rows: 4 } });
      rt.reload();
      const b = await rt.call('psql', { action: 'query', sql: 'SELECT generate_series(1, 5) AS g' });
      assert.equal((b.ok && (b.result as { rows: unknown[] }).rows.length) || 0, 4);
      one.write('profiles.json', { only: { type: 'postgres', url: env.pg.url('reader'), max_rows: 4, mode: 'read_write' } });
      rt.reload();
    } finally {
      await rt.close();
      one.cleanup();
    }
  });

  void test('policy psql.allow_profiles refuses other profiles', async () => {
    const p = await psqlEnv({ pg: env.pg, policy: { psql: { allow_profiles: ['r*'] } } });
    try {
      assert.ok((await p.call({ action: 'query', profile: 'ro', sql: 'select 1' })).ok);
      const e = await p.fail({ action: 'query', profile: 'fast', sql: 'select 1' });
      assert.equal(e.code, 'DENIED');
      assert.match(e.hint ?? '', /allow_profiles/);
    } finally {
      await p.close();
    }
  });
});
