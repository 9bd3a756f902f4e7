import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pools } from '../../src/toolsets/psql/common.js';
import { startPostgres } from '../fixtures/postgres.js';
import { backendsRunning, eventually, psqlEnv, type PsqlEnv } from './setup.js';

/*
 * The read-only bypasses known from other Postgres MCP servers, replayed against a real
 * cluster. Each test proves the side effect did not happen (checked as the superuser, outside
 * infra), not only that an error came back.
 */
let env: PsqlEnv;

void before(async () => {
  // one: a single pooled connection, so consecutive calls share a session
  env = await psqlEnv({
    profiles: {
      one: { type: 'postgres', url: '${env:RO_URL}', statement_timeout_ms: 300, pool_max: 1 },
      rwone: { type: 'postgres', url: '${env:RW_URL}', mode: 'read_write', statement_timeout_ms: 300, pool_max: 1 },
    },
  });
});
void after(async () => {
  await env?.close();
});

const victimsIntact = (): void => {
  assert.equal(
    env.pg.psql(`SELECT count(*) || ':' || string_agg(note, ',') FROM victims`),
    '1:still here',
    'the victims table is untouched',
  );
};

void describe('read-only bypass attacks (reader login, read_only profile)', () => {
  void test('COMMIT; DROP TABLE (stacked statements ending the read-only transaction)', async () => {
    for (const sql of [
      'COMMIT; DROP TABLE victims',
      'ROLLBACK; DELETE FROM victims',
      'select 1; drop table victims;',
      'END; TRUNCATE victims',
    ]) {
      const e = await env.fail({ action: 'query', profile: 'ro', sql });
      assert.equal(e.code, 'INVALID_ARGUMENT', sql);
      assert.match(e.message, /multiple commands/);
    }
    victimsIntact();
  });

  void test('COMMIT alone, then a write in the next call, still finds a read-only transaction', async () => {
    await env.ok({ action: 'query', profile: 'ro', sql: 'COMMIT' });
    const e = await env.fail({ action: 'query', profile: 'ro', sql: 'DELETE FROM victims' });
    assert.equal(e.code, 'DENIED');
    victimsIntact();
  });

  void test('SET TRANSACTION READ WRITE (alone and stacked before a write)', async () => {
    const alone = await env.fail({ action: 'query', profile: 'ro', sql: 'SET TRANSACTION READ WRITE' });
    assert.match(alone.message, /cannot set transaction read-write mode inside a read-only transaction/);
    const stacked = await env.fail({ action: 'query', profile: 'ro', sql: 'SET TRANSACTION READ WRITE; DELETE FROM victims' });
    assert.equal(stacked.code, 'INVALID_ARGUMENT');
    const session = await env.call({ action: 'query', profile: 'ro', sql: 'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE' });
    assert.ok(session.ok || session.error.code !== 'INTERNAL');
    const next = await env.fail({ action: 'query', profile: 'ro', sql: 'DELETE FROM victims' });
    assert.equal(next.code, 'DENIED');
    const guc = await env.call({ action: 'query', profile: 'ro', sql: "SELECT set_config('default_transaction_read_only', 'off', false)" });
    assert.ok(guc.ok);
    assert.equal((await env.fail({ action: 'query', profile: 'ro', sql: 'DELETE FROM victims' })).code, 'DENIED');
    victimsIntact();
  });

  void test('a leading comment hiding the write (-- and /* */)', async () => {
    for (const sql of [
      '-- just a select\nDELETE FROM victims',
      '/* select */ DELETE FROM victims',
      '/* a */ -- b\n  UPDATE victims SET note = $1',
      '-- x\nCOMMIT; DROP TABLE victims',
    ]) {
      const e = await env.fail({ action: 'query', profile: 'ro', sql, ...(sql.includes('$1') ? { params: ['pwned'] } : {}) });
      assert.ok(e.code === 'DENIED' || e.code === 'INVALID_ARGUMENT', `${sql}: ${e.code}`);
    }
    victimsIntact();
  });

  void test('a writable CTE (WITH d AS (DELETE … RETURNING) SELECT)', async () => {
    const e = await env.fail({ action: 'query', profile: 'ro', sql: 'WITH d AS (DELETE FROM victims RETURNING *) SELECT * FROM d' });
    assert.equal(e.code, 'DENIED');
    assert.match(e.message, /read-only transaction/);
    victimsIntact();
  });

  void test('a writable CTE through explain analyze and through export', async () => {
    const ex = await env.fail({
      action: 'explain',
      profile: 'ro',
      analyze: true,
      sql: 'WITH d AS (DELETE FROM victims RETURNING *) SELECT * FROM d',
    });
    assert.equal(ex.code, 'DENIED');
    const ex2 = await env.fail({ action: 'explain', profile: 'ro', analyze: true, sql: 'DELETE FROM victims' });
    assert.equal(ex2.code, 'DENIED');
    const exp = await env.fail({ action: 'export', profile: 'ro', sql: 'WITH d AS (DELETE FROM victims RETURNING *) SELECT * FROM d' });
    assert.ok(['DENIED', 'INVALID_ARGUMENT'].includes(exp.code), exp.code);
    victimsIntact();
  });

  void test('stacked statements and parenthesis escapes through export sql (COPY is sent as a simple query)', async () => {
    for (const sql of [
      'select 1; drop table victims',
      'select 1) TO STDOUT; DROP TABLE victims; COPY (select 1',
      'select 1 --',
      'select 1 /*',
      "select 1) TO STDOUT; DELETE FROM victims; COPY (select '",
    ]) {
      const r = await env.call({ action: 'export', profile: 'ro', sql });
      if (r.ok) assert.equal(sql, 'select 1 --', 'only the harmless trailing comment may export');
      else assert.ok(['INVALID_ARGUMENT', 'DENIED'].includes(r.error.code), `${sql}: ${r.error.code} ${r.error.message}`);
    }
    victimsIntact();
  });

  void test('COPY … TO PROGRAM as the low-privilege login', async () => {
    const marker = join(tmpdir(), `infra-pwned-${process.pid}-${Date.now()}`);
    const e = await env.fail({ action: 'query', profile: 'ro', sql: `COPY (SELECT 1) TO PROGRAM 'touch ${marker}'` });
    assert.equal(e.code, 'DENIED');
    const e2 = await env.fail({ action: 'query', profile: 'ro', sql: `COPY victims TO '${marker}'` });
    assert.equal(e2.code, 'DENIED');
    assert.equal(existsSync(marker), false, 'no program ran and no server file was written');
  });

  void test('COPY … TO PROGRAM as a superuser login: the read_only profile refuses to run at all', async () => {
    const marker = join(tmpdir(), `infra-pwned-su-${process.pid}-${Date.now()}`);
    const e = await env.fail({ action: 'query', profile: 'su', sql: `COPY (SELECT 1) TO PROGRAM 'touch ${marker}'` });
    assert.equal(e.code, 'DENIED');
    assert.match(e.message, /superuser/);
    assert.match(e.hint ?? '', /GRANT pg_read_all_data/);
    assert.match(e.hint ?? '', /"allow_superuser": true/);
    assert.equal(existsSync(marker), false);
    for (const action of ['explain', 'export', 'schema']) {
      const r = await env.fail({ action, profile: 'su', ...(action === 'schema' ? {} : { sql: 'select 1' }) });
      assert.equal(r.code, 'DENIED', action);
    }
  });

  void test('SELECT … FROM pg_read_file(…) as the low-privilege login', async () => {
    for (const sql of [
      "SELECT * FROM pg_read_file('/etc/passwd')",
      "SELECT pg_read_file('postgresql.conf')",
      "SELECT * FROM pg_ls_dir('.')",
      "SELECT lo_import('/etc/passwd')",
    ]) {
      const r = await env.call({ action: 'query', profile: 'ro', sql });
      assert.equal(r.ok, false, sql);
      if (!r.ok) assert.ok(['DENIED'].includes(r.error.code), `${sql}: ${r.error.code} ${r.error.message}`);
      assert.doesNotMatch(JSON.stringify(r), /root:|listen_addresses/);
    }
  });

  void test('pg_sleep past the timeout: TIMEOUT, the statement stops on the server and the backend is gone', async () => {
    const started = Date.now();
    const e = await env.fail({
      action: 'query',
      profile: 'ro',
      sql: "SELECT pg_advisory_lock(4242), pg_sleep(60), 'marker-timeout-1'",
      timeout_ms: 400,
    });
    assert.equal(e.code, 'TIMEOUT');
    assert.ok(Date.now() - started < 3000, 'answered soon after the timeout');
    assert.ok(await eventually(() => backendsRunning(env.pg, 'marker-timeout-1') === 0), 'no backend still runs the statement');
    assert.equal(
      env.pg.psql(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242`, 'app'),
      '0',
      'its session lock went with it',
    );
  });

  void test('pg_sleep past the profile statement_timeout_ms: the server cancels it', async () => {
    const e = await env.fail({ action: 'query', profile: 'fast', sql: "SELECT pg_sleep(30), 'marker-timeout-2'" });
    assert.equal(e.code, 'TIMEOUT');
    assert.match(e.hint ?? '', /statement_timeout_ms/);
    assert.equal(backendsRunning(env.pg, 'marker-timeout-2'), 0);
  });

  void test("a read that lifts the session statement_timeout (SET, set_config, RESET) does not lift the next call's", async () => {
    // the profile's timeout is the session's, sent at connect; only ROLLBACK stands between a
    // read's session-level SET and the next call on the same connection
    for (const sql of [
      'SET statement_timeout = 0',
      'SET SESSION statement_timeout = 0',
      "SELECT set_config('statement_timeout', '0', false)",
      'RESET statement_timeout',
      'RESET ALL',
      "DO $$BEGIN PERFORM set_config('statement_timeout', '0', false); END$$",
    ]) {
      await env.ok({ action: 'query', profile: 'one', sql });
      const started = Date.now();
      const e = await env.fail({ action: 'query', profile: 'one', sql: "SELECT pg_sleep(30), 'marker-session-timeout'", timeout_ms: 5000 });
      assert.equal(e.code, 'TIMEOUT', sql);
      assert.match(e.hint ?? '', /statement_timeout_ms/, `${sql}: cancelled by the server at the profile timeout`);
      assert.ok(Date.now() - started < 2500, `${sql}: within the 300 ms profile timeout (took ${Date.now() - started} ms)`);
    }
    assert.equal(backendsRunning(env.pg, 'marker-session-timeout'), 0);
  });

  void test("an execute that lifts the session statement_timeout does not lift a later read's on that connection", async () => {
    const pid = async (): Promise<number> =>
      (await env.ok<{ rows: { pid: number }[] }>({ action: 'query', profile: 'rwone', sql: 'SELECT pg_backend_pid() AS pid' })).rows[0]!
        .pid;
    const before = await pid();
    // committed, so it stays with the session (infra's own RESET after a transaction: false
    // execute would undo it, so that one comes first)
    await env.ok({ action: 'execute', profile: 'rwone', sql: "SELECT set_config('statement_timeout', '0', false)", transaction: false });
    await env.ok({ action: 'execute', profile: 'rwone', sql: 'SET statement_timeout = 0' });
    assert.equal(await pid(), before, 'the same session');
    const e = await env.fail({ action: 'query', profile: 'rwone', sql: "SELECT pg_sleep(30), 'marker-exec-timeout'", timeout_ms: 5000 });
    assert.equal(e.code, 'TIMEOUT');
    assert.match(e.hint ?? '', /statement_timeout_ms/, 'cancelled by the server at the profile timeout, not by the call deadline');
    assert.equal(backendsRunning(env.pg, 'marker-exec-timeout'), 0);
  });

  void test('a session advisory lock taken by a read query does not outlive the call', async () => {
    // the unlock goes out with the statement and runs right after it (the reply does not wait
    // for it): the lock is gone a moment after the reply, on a connection that stays open
    const locks = (id: number): string => env.pg.psql(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = ${id}`, 'app');
    const r = await env.ok<{ rows: { pid: number }[] }>({
      action: 'query',
      profile: 'ro',
      sql: 'SELECT pg_advisory_lock(777), pg_backend_pid() AS pid',
    });
    const pid = r.rows[0]!.pid;
    assert.ok(await eventually(() => locks(777) === '0', 2000), 'lock 777 released');
    assert.equal(
      env.pg.psql(`SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid}`, 'app'),
      '1',
      'released by the unlock, not by a disconnect',
    );
    await env.fail({ action: 'query', profile: 'ro', sql: 'SELECT pg_advisory_lock(778), 1/0' });
    assert.ok(await eventually(() => locks(778) === '0', 2000), 'lock 778 released');
  });

  void test('DO blocks and PREPARE do not carry a write past the transaction', async () => {
    const e = await env.fail({ action: 'query', profile: 'ro', sql: 'DO $$BEGIN DELETE FROM victims; END$$' });
    assert.equal(e.code, 'DENIED');
    const c = await env.fail({ action: 'query', profile: 'ro', sql: 'DO $$BEGIN COMMIT; DELETE FROM victims; END$$' });
    assert.ok(['DENIED', 'INVALID_ARGUMENT', 'UPSTREAM_ERROR'].includes(c.code), c.code);
    await env.call({ action: 'query', profile: 'ro', sql: 'PREPARE wipe AS DELETE FROM victims' });
    for (let i = 0; i < 6; i++) {
      const r = await env.call({ action: 'query', profile: 'ro', sql: 'EXECUTE wipe' });
      assert.equal(r.ok, false);
    }
    victimsIntact();
  });

  void test('a prepared-statement swap (a DO block re-preparing every statement of the session) lifts neither read-only nor the timeout', async () => {
    // PREPARE and DEALLOCATE are allowed in a READ ONLY transaction, from a DO block too, and
    // outlive its ROLLBACK. Were any step infra runs before the user's statement (BEGIN READ
    // ONLY, the timeout) a named prepared statement, this would replace it on the session and the
    // next call on that connection would run without it (docs/DECISIONS.md).
    const pid = async (): Promise<number> =>
      (await env.ok<{ rows: { pid: number }[] }>({ action: 'query', profile: 'one', sql: 'SELECT pg_backend_pid() AS pid' })).rows[0]!.pid;
    const before = await pid();
    const swap = `DO $$
      DECLARE r record;
      BEGIN
        FOR r IN SELECT name, parameter_types FROM pg_prepared_statements LOOP
          EXECUTE format('DEALLOCATE %I', r.name);
          IF cardinality(r.parameter_types) > 0 THEN
            EXECUTE format('PREPARE %I(%s) AS SELECT $1', r.name, array_to_string(r.parameter_types, ','));
          ELSE
            EXECUTE format('PREPARE %I AS SELECT 1', r.name);
          END IF;
        END LOOP;
        EXECUTE 'PREPARE swap_probe AS SELECT 1';
      END $$`;
    await env.ok({ action: 'query', profile: 'one', sql: swap });
    assert.equal(await pid(), before, 'the same session');
    const probe = await env.ok<{ rows: { n: number }[] }>({
      action: 'query',
      profile: 'one',
      sql: "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'swap_probe'",
    });
    assert.equal(probe.rows[0]!.n, 1, 'the swap outlived its call on that session');
    const del = await env.fail({ action: 'query', profile: 'one', sql: 'DELETE FROM victims' });
    assert.equal(del.code, 'DENIED');
    assert.match(del.message, /read-only transaction/, 'refused by the READ ONLY transaction (before the missing privilege)');
    const rw = await env.fail({ action: 'query', profile: 'one', sql: 'SET TRANSACTION READ WRITE' });
    assert.match(rw.message, /cannot set transaction read-write mode inside a read-only transaction/);
    const slow = await env.fail({ action: 'query', profile: 'one', sql: "SELECT pg_sleep(30), 'marker-swap'", timeout_ms: 3000 });
    assert.equal(slow.code, 'TIMEOUT');
    assert.match(slow.hint ?? '', /statement_timeout_ms/, 'cancelled by the server at the profile timeout, not by the call deadline');
    assert.equal(backendsRunning(env.pg, 'marker-swap'), 0);
    assert.equal(await pid(), before, 'still the same session');
    victimsIntact();
  });

  void test('nextval and other writes hidden in functions are refused by the read-only transaction', async () => {
    const e = await env.fail({ action: 'query', profile: 'ro', sql: "SELECT nextval('events_id_seq')" });
    assert.equal(e.code, 'DENIED');
    assert.equal(env.pg.psql(`SELECT last_value FROM events_id_seq`), '2000');
  });
});

void describe('login check of read_only profiles', () => {
  void test('dblink executable by the login: the read_only profile refuses to run', async () => {
    env.pg.psql('CREATE DATABASE linkdb', 'postgres');
    env.pg.psql('CREATE EXTENSION dblink', 'linkdb');
    const local = await psqlEnv({
      pg: env.pg,
      profiles: { link: { type: 'postgres', url: env.pg.url('reader', 'linkdb') } },
    });
    try {
      const e = await local.fail({ action: 'query', profile: 'link', sql: "SELECT dblink_exec('dbname=app', 'DROP TABLE victims')" });
      assert.equal(e.code, 'DENIED');
      assert.match(e.message, /dblink_exec/);
      victimsIntact();
    } finally {
      await local.close();
    }
  });

  void test('RESET transaction_read_only (PostgreSQL 15 and older): a read_only profile whose login may write is refused', async () => {
    // before 16 RESET skips the check that keeps a READ ONLY transaction from turning
    // read-write; the rows a statement then writes are rolled back, a sequence it advances is not
    env.pg.psql(`CREATE SEQUENCE reset_probe; ALTER SEQUENCE reset_probe OWNER TO writer`, 'app');
    const version = Number(env.pg.psql(`SHOW server_version_num`));
    const attack = "DO $$BEGIN EXECUTE 'RESET transaction_read_only'; PERFORM setval('reset_probe', 4242); END$$";
    const probe = (): string => env.pg.psql(`SELECT last_value FROM reset_probe`);
    const local = await psqlEnv({
      pg: env.pg,
      profiles: {
        wro: { type: 'postgres', url: env.pg.url('writer') },
        wro_ok: { type: 'postgres', url: env.pg.url('writer'), allow_superuser: true },
      },
    });
    try {
      const direct = await local.call({ action: 'query', profile: 'wro_ok', sql: attack });
      if (version < 160000) {
        assert.ok(direct.ok, 'the hole is real on this server: the opted-out profile runs the attack');
        assert.equal(probe(), '4242', 'and the sequence kept the value past the ROLLBACK');
        env.pg.psql(`SELECT setval('reset_probe', 1, false)`, 'app');
        const e = await local.fail({ action: 'query', profile: 'wro', sql: attack });
        assert.equal(e.code, 'DENIED');
        assert.match(e.message, /"writer" may write public\..*RESET transaction_read_only/);
        assert.match(e.hint ?? '', /without write grants/);
        const plain = await local.fail({ action: 'query', profile: 'wro', sql: 'select 1' });
        assert.equal(plain.code, 'DENIED', 'the login is refused for every read, not only this statement');
      } else {
        assert.equal(direct.ok, false, 'PostgreSQL 16+ refuses the RESET');
        assert.ok(
          (await local.call({ action: 'query', profile: 'wro', sql: 'select 1' })).ok,
          'and the login check does not look for writes',
        );
      }
      assert.equal(probe(), '1', 'the sequence is where it was');
      victimsIntact();
    } finally {
      await local.close();
    }
  });

  void test('pg_logical_emit_message under wal_level = logical: a read_only profile whose login may call it is refused', async () => {
    // a message written with transactional = false reaches logical decoding whatever the
    // transaction does, and a READ ONLY transaction allows it
    const logical = await startPostgres({ tables: false, conf: ['wal_level = logical'] });
    const local = await psqlEnv({
      pg: logical,
      profiles: {
        rd: { type: 'postgres', url: logical.url('reader') },
        rd_ok: { type: 'postgres', url: logical.url('reader'), allow_superuser: true },
      },
    });
    try {
      logical.psql(`SELECT 1 FROM pg_create_logical_replication_slot('probe', 'test_decoding')`, 'app');
      // (decoding reads the WAL up to its flushed end; the CHECKPOINT flushes what the call wrote)
      const messages = (): string =>
        logical.psql(
          `CHECKPOINT; SELECT count(*) FROM pg_logical_slot_get_changes('probe', NULL, NULL) WHERE data LIKE 'message:%infra-probe%'`,
          'app',
        );
      const attack = "SELECT pg_logical_emit_message(false, 'infra-probe', 'written by a read')";
      assert.ok((await local.call({ action: 'query', profile: 'rd_ok', sql: attack })).ok, 'the opted-out profile runs it');
      assert.equal(messages(), '1', 'and the message outlived the ROLLBACK');
      const e = await local.fail({ action: 'query', profile: 'rd', sql: attack });
      assert.equal(e.code, 'DENIED');
      assert.match(e.message, /pg_logical_emit_message/);
      assert.match(e.hint ?? '', /REVOKE EXECUTE ON FUNCTION pg_logical_emit_message/);
      assert.equal(messages(), '0', 'no message from the refused call');
    } finally {
      await local.close();
      logical.stop();
    }
  });

  void test('a member of pg_signal_backend is refused; allow_superuser: true is the human opt-out', async () => {
    env.pg.psql(`CREATE ROLE signaller LOGIN PASSWORD 'sig-pass'; GRANT pg_read_all_data, pg_signal_backend TO signaller`, 'postgres');
    const url = `postgres://signaller:sig-pass@127.0.0.1:${env.pg.port}/app`;
    const local = await psqlEnv({
      pg: env.pg,
      profiles: { sig: { type: 'postgres', url }, sig_ok: { type: 'postgres', url, allow_superuser: true } },
    });
    try {
      const e = await local.fail({ action: 'query', profile: 'sig', sql: 'select 1' });
      assert.equal(e.code, 'DENIED');
      assert.match(e.message, /pg_signal_backend/);
      const ok = await local.ok<{ rows: unknown[] }>({ action: 'query', profile: 'sig_ok', sql: 'select 1 as one' });
      assert.deepEqual(ok.rows, [{ one: 1 }]);
    } finally {
      await local.close();
    }
  });

  void test('a login a human fixes in place after a refusal is taken at the next call, without a restart', async () => {
    env.pg.psql(`CREATE ROLE fixme LOGIN PASSWORD 'fix-pass'; GRANT pg_read_all_data, pg_signal_backend TO fixme`, 'postgres');
    const local = await psqlEnv({
      pg: env.pg,
      profiles: { fix: { type: 'postgres', url: `postgres://fixme:fix-pass@127.0.0.1:${env.pg.port}/app` } },
    });
    try {
      for (let i = 0; i < 2; i++) {
        const e = await local.fail({ action: 'query', profile: 'fix', sql: 'select 1' });
        assert.equal(e.code, 'DENIED');
        assert.match(e.message, /pg_signal_backend/);
      }
      // what the refusal's hint asks for, done on the server while infra runs
      env.pg.psql(`REVOKE pg_signal_backend FROM fixme`, 'postgres');
      const ok = await local.ok<{ rows: unknown[] }>({ action: 'query', profile: 'fix', sql: 'select 1 as one' });
      assert.deepEqual(ok.rows, [{ one: 1 }]);
    } finally {
      await local.close();
    }
  });

  void test('a login that gains a risky privilege while infra runs is refused once its passed check is older than privilegeRecheckMs', async () => {
    env.pg.psql(`CREATE ROLE laterrisk LOGIN PASSWORD 'later-pass'; GRANT pg_read_all_data TO laterrisk`, 'postgres');
    const local = await psqlEnv({
      pg: env.pg,
      profiles: { later: { type: 'postgres', url: `postgres://laterrisk:later-pass@127.0.0.1:${env.pg.port}/app` } },
    });
    try {
      const shared = pools(local.rt.services);
      assert.equal(shared.privilegeRecheckMs, 60_000, 'a passed check stands for a minute by default');
      shared.privilegeRecheckMs = 300;
      const ok = await local.ok<{ rows: unknown[] }>({ action: 'query', profile: 'later', sql: 'select 1 as one' });
      assert.deepEqual(ok.rows, [{ one: 1 }]);
      env.pg.psql(`GRANT pg_signal_backend TO laterrisk`, 'postgres');
      await new Promise((r) => setTimeout(r, 400));
      const e = await local.fail({ action: 'query', profile: 'later', sql: 'select 1' });
      assert.equal(e.code, 'DENIED');
      assert.match(e.message, /pg_signal_backend/);
    } finally {
      await local.close();
    }
  });

  void test('the read_write profile may use a privileged login for execute, but its reads stay read-only', async () => {
    const e = await env.fail({ action: 'query', profile: 'rw', sql: 'DELETE FROM victims' });
    assert.equal(e.code, 'DENIED');
    victimsIntact();
  });
});
