import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { psqlEnv, type PsqlEnv } from './setup.js';

let env: PsqlEnv;

void before(async () => {
  env = await psqlEnv();
});
void after(async () => {
  await env?.close();
});

interface Q {
  command: string | null;
  columns: { name: string; type: string }[];
  rows: Record<string, unknown>[];
  row_count: number;
  truncated: boolean;
  max_rows: number;
  rows_inline?: number;
  rows_uri?: string;
}

void describe('psql query', () => {
  void test('columns with types, $n params, values as JSON', async () => {
    const r = await env.ok<Q>({
      action: 'query',
      profile: 'ro',
      sql: "SELECT id, name, price, created, tags, meta, 9007199254740993::int8 AS huge, 5::int8 AS small, '\\xdead'::bytea AS b, interval '1 day' AS iv, $2::text AS p FROM items WHERE id = $1",
      params: [7, 'param'],
    });
    assert.equal(r.command, 'SELECT');
    assert.deepEqual(
      r.columns.map((c) => `${c.name}:${c.type}`),
      [
        'id:integer',
        'name:text',
        'price:numeric',
        'created:date',
        'tags:text[]',
        'meta:jsonb',
        'huge:bigint',
        'small:bigint',
        'b:bytea',
        'iv:interval',
        'p:text',
      ],
    );
    assert.deepEqual(r.rows, [
      {
        id: 7,
        name: 'item 7',
        price: '10.50',
        created: '2024-01-08',
        tags: ['a', 'b'],
        meta: { n: 7 },
        huge: '9007199254740993',
        small: 5,
        b: '\\xdead',
        iv: '1 day',
        p: 'param',
      },
    ]);
    assert.equal(r.row_count, 1);
    assert.equal(r.truncated, false);
  });

  void test('a JSON value nested more than 500 levels deep is LIMIT_EXCEEDED, audited; 400 levels come back whole', async () => {
    const sql = "SELECT (repeat('[', $1::int) || '0' || repeat(']', $1::int))::jsonb AS j";
    const fine = await env.ok<Q>({ action: 'query', profile: 'ro', sql, params: [400] });
    let v: unknown = fine.rows[0]!.j;
    let levels = 0;
    while (Array.isArray(v)) {
      v = v[0];
      levels++;
    }
    assert.equal(levels, 400);
    // 5,000 levels used to run the handling of the result out of stack (an INTERNAL error)
    for (const [depth, said] of [
      [600, /nests more than 500 levels deep/],
      [5000, /nests (more than 500 levels|too deeply)/],
    ] as const) {
      const call = await env.call({ action: 'query', profile: 'ro', sql, params: [depth] });
      assert.equal(call.ok, false);
      const e = (call as { error: { code: string; message: string } }).error;
      assert.equal(e.code, 'LIMIT_EXCEEDED', `depth ${depth}: ${e.message}`);
      assert.match(e.message, said);
      await env.rt.services.audit.settle();
      assert.equal(env.rt.services.audit.get(call.call_id)?.status, 'error');
    }
  });

  void test('attack: a NUL byte ends the statement text early in the protocol; refused before anything is sent', async () => {
    // the Parse message ends the text at the first NUL and reads what follows as parameter
    // types: these four bytes declare one parameter, so Postgres ran the DELETE before them
    env.pg.psql(
      `CREATE TABLE nul_probe (id int); INSERT INTO nul_probe SELECT generate_series(1, 5); ALTER TABLE nul_probe OWNER TO writer`,
    );
    const crafted = 'DELETE FROM nul_probe WHERE $1::int IS NULL\u0000\u0000\u0001\u0000';
    const e = await env.fail({ action: 'execute', profile: 'rw', sql: crafted, params: [null] });
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.match(e.message, /sql: must not contain a NUL byte/);
    assert.equal(env.pg.psql('SELECT count(*) FROM nul_probe'), '5', 'no row was deleted');
    // a read got CONNECTION_FAILED (the server dropped the connection over the malformed message)
    for (const args of [
      { action: 'query', sql: 'SELECT 1 AS a\u0000 WHERE false' },
      { action: 'explain', sql: 'SELECT 1\u0000' },
      { action: 'export', sql: 'SELECT 1\u0000', format: 'csv' },
      { action: 'export', table: 'nul_probe\u0000', format: 'csv' },
    ]) {
      const r = await env.fail({ profile: 'ro', ...args });
      assert.equal(r.code, 'INVALID_ARGUMENT', `${args.action}: ${r.message}`);
      assert.match(r.message, /must not contain a NUL byte/);
    }
  });

  void test('a column named __proto__ stays a column of the row objects', async () => {
    const r = await env.ok<Q>({ action: 'query', profile: 'ro', sql: 'SELECT 1 AS "__proto__", 2 AS b' });
    assert.deepEqual(Object.keys(r.rows[0]!), ['__proto__', 'b']);
    assert.equal(JSON.stringify(r.rows[0]), '{"__proto__":1,"b":2}');
  });

  void test('max_rows bounds the result and sets truncated; the profile max_rows is a ceiling', async () => {
    const r = await env.ok<Q>({ action: 'query', profile: 'ro', sql: 'SELECT id FROM items ORDER BY id', max_rows: 10 });
    assert.equal(r.rows.length, 10);
    assert.equal(r.truncated, true);
    const exact = await env.ok<Q>({ action: 'query', profile: 'ro', sql: 'SELECT id FROM items ORDER BY id', max_rows: 100 });
    assert.equal(exact.rows.length, 100);
    assert.equal(exact.truncated, false);
    const tiny = await env.ok<Q>({ action: 'query', profile: 'tiny', sql: 'SELECT id FROM items', max_rows: 50 });
    assert.equal(tiny.rows.length, 5);
    assert.equal(tiny.max_rows, 5);
    assert.equal(tiny.truncated, true);
  });

  void test('rows beyond the inline cap go to rows.jsonl in the artifact', async () => {
    const r = await env.ok<Q>({ action: 'query', profile: 'ro', sql: 'SELECT id, name FROM items ORDER BY id', max_bytes: 1024 });
    assert.ok(r.rows_uri, 'artifact uri present');
    assert.ok(r.rows.length < 100 && r.rows.length === r.rows_inline);
    assert.equal(r.row_count, 100);
    const lines = env.artifact(r.rows_uri!).toString('utf8').trim().split('\n');
    assert.equal(lines.length, 100);
    assert.deepEqual(JSON.parse(lines[99]!), { id: 100, name: 'item 100' });
  });

  void test('row_format arrays, repeated column names, empty results, statements without rows', async () => {
    const a = await env.ok<{ rows: unknown[][] }>({ action: 'query', profile: 'ro', sql: 'SELECT 1 AS x, 2 AS x', row_format: 'arrays' });
    assert.deepEqual(a.rows, [[1, 2]]);
    const o = await env.ok<Q>({ action: 'query', profile: 'ro', sql: 'SELECT 1 AS x, 2 AS x' });
    assert.deepEqual(o.rows, [{ x: 1, x_2: 2 }]);
    const none = await env.ok<Q>({ action: 'query', profile: 'ro', sql: 'SELECT id FROM items WHERE false' });
    assert.deepEqual(none.rows, []);
    assert.equal(none.columns.length, 1);
    const show = await env.ok<Q>({ action: 'query', profile: 'ro', sql: 'SHOW transaction_read_only' });
    assert.deepEqual(show.rows, [{ transaction_read_only: 'on' }]);
  });

  void test('profile_name (the seed spelling) and the hidden alias mcp_psql_manager', async () => {
    const r = await env.rt.call('mcp_psql_manager', { action: 'query', profile_name: 'ro', sql: 'SELECT 41 + 1 AS answer' });
    assert.ok(r.ok);
    assert.equal(r.tool, 'psql');
    assert.deepEqual((r.result as Q).rows, [{ answer: 42 }]);
  });

  void test('a bad statement is INVALID_ARGUMENT with the position; an unknown table is NOT_FOUND', async () => {
    const e = await env.fail({ action: 'query', profile: 'ro', sql: 'SELEC 1' });
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.equal((e.details as { sqlstate: string }).sqlstate, '42601');
    const nf = await env.fail({ action: 'query', profile: 'ro', sql: 'SELECT * FROM nope' });
    assert.equal(nf.code, 'NOT_FOUND');
    // the pooled connection is fine afterwards
    assert.deepEqual((await env.ok<Q>({ action: 'query', profile: 'ro', sql: 'SELECT 1 AS one' })).rows, [{ one: 1 }]);
  });

  void test('every call is audited with its artifact (call.json)', async () => {
    const r = await env.call({ action: 'query', profile: 'ro', sql: 'SELECT 1' });
    const row = env.rt.services.audit.get(r.call_id);
    assert.ok(row);
    assert.equal(row.tool, 'psql');
    assert.equal(row.action, 'query');
    assert.equal(row.target, 'ro');
    assert.equal(row.status, 'ok');
    assert.ok(existsSync(join(env.rt.project.artifactsDir, 'calls', r.call_id, 'call.json')));
    const bad = await env.call({ action: 'query', profile: 'ro', sql: 'DELETE FROM victims' });
    assert.equal(env.rt.services.audit.get(bad.call_id)?.error_code, 'DENIED');
  });
});

void describe('psql execute', () => {
  void test('refused on a read_only profile, naming the setting that allows it', async () => {
    const e = await env.fail({ action: 'execute', profile: 'ro', sql: 'DELETE FROM victims' });
    assert.equal(e.code, 'DENIED');
    assert.match(e.hint ?? '', /"mode": "read_write"/);
    assert.match(e.hint ?? '', /profiles\.json/);
    assert.equal(env.pg.psql('SELECT count(*) FROM victims'), '1');
  });

  void test('writes on a read_write profile in a transaction, returning the row count and RETURNING rows', async () => {
    env.pg.psql('CREATE TABLE IF NOT EXISTS notes (id int PRIMARY KEY, body text); ALTER TABLE notes OWNER TO writer');
    const ins = await env.ok<{ command: string; row_count: number; committed: boolean; rows?: unknown[] }>({
      action: 'execute',
      profile: 'rw',
      sql: 'INSERT INTO notes SELECT g, $1 FROM generate_series(1, 3) g',
      params: ['hello'],
    });
    assert.equal(ins.command, 'INSERT');
    assert.equal(ins.row_count, 3);
    assert.equal(ins.committed, true);
    assert.equal(env.pg.psql('SELECT count(*) FROM notes'), '3');
    const upd = await env.ok<{ row_count: number; rows: unknown[] }>({
      action: 'execute',
      profile: 'rw',
      sql: 'UPDATE notes SET body = body || id WHERE id < 3 RETURNING id, body',
    });
    assert.equal(upd.row_count, 2);
    assert.deepEqual(upd.rows, [
      { id: 1, body: 'hello1' },
      { id: 2, body: 'hello2' },
    ]);
  });

  void test('a failing write leaves nothing behind, and so does a stacked one', async () => {
    const e = await env.fail({ action: 'execute', profile: 'rw', sql: 'INSERT INTO notes VALUES (10, $1), (1, $1)', params: ['dup'] });
    assert.equal(e.code, 'UPSTREAM_ERROR');
    assert.equal((e.details as { sqlstate: string }).sqlstate, '23505');
    assert.equal(env.pg.psql('SELECT count(*) FROM notes WHERE id = 10'), '0');
    const s = await env.fail({ action: 'execute', profile: 'rw', sql: 'INSERT INTO notes VALUES (11, null); DROP TABLE notes' });
    assert.equal(s.code, 'INVALID_ARGUMENT');
    assert.equal(env.pg.psql('SELECT count(*) FROM notes WHERE id = 11'), '0');
  });

  void test('DDL, and transaction: false for statements that cannot run in a block', async () => {
    const ddl = await env.ok<{ command: string }>({ action: 'execute', profile: 'rw', sql: 'CREATE INDEX notes_body_idx ON notes (body)' });
    assert.equal(ddl.command, 'CREATE INDEX');
    const inBlock = await env.fail({ action: 'execute', profile: 'rw', sql: 'VACUUM notes' });
    assert.equal(inBlock.code, 'INVALID_ARGUMENT');
    assert.match(inBlock.hint ?? '', /"transaction": false/);
    const vac = await env.ok<{ command: string; committed: boolean }>({
      action: 'execute',
      profile: 'rw',
      sql: 'VACUUM notes',
      transaction: false,
    });
    assert.equal(vac.command, 'VACUUM');
    assert.equal(vac.committed, false);
    const cic = await env.ok<{ command: string }>({
      action: 'execute',
      profile: 'rw',
      sql: 'CREATE INDEX CONCURRENTLY notes_id2 ON notes (id)',
      transaction: false,
    });
    assert.equal(cic.command, 'CREATE INDEX');
  });

  void test('execute asks for confirmation by default (irreversible); declined means DENIED and nothing runs', async () => {
    const strict = await psqlEnv({ pg: env.pg, policy: {} });
    try {
      const declined = await strict.call({ action: 'execute', profile: 'rw', sql: 'DELETE FROM notes' }, { confirm: async () => false });
      assert.equal(declined.ok, false);
      if (!declined.ok) assert.equal(declined.error.code, 'DENIED');
      assert.equal(env.pg.psql('SELECT count(*) FROM notes'), '3');
      let asked = '';
      const yes = await strict.call(
        { action: 'execute', profile: 'rw', sql: 'DELETE FROM notes WHERE id = 3' },
        { confirm: async (req) => ((asked = req.message), true) },
      );
      assert.ok(yes.ok);
      assert.match(asked, /psql\.execute/);
      assert.equal(env.pg.psql('SELECT count(*) FROM notes'), '2');
    } finally {
      await strict.close();
    }
  });
});

void describe('psql explain, schema, profiles', () => {
  void test('explain returns the JSON plan; analyze adds actual figures', async () => {
    const r = await env.ok<{ plan: { Plan: Record<string, unknown> } }>({
      action: 'explain',
      profile: 'ro',
      sql: 'SELECT * FROM events WHERE id = $1',
      params: [5],
    });
    assert.equal(r.plan.Plan['Node Type'], 'Index Scan');
    const a = await env.ok<{ analyze: boolean; plan: { Plan: Record<string, unknown>; 'Execution Time': number } }>({
      action: 'explain',
      profile: 'ro',
      analyze: true,
      sql: "SELECT count(*) FROM events WHERE kind = 'click'",
    });
    assert.equal(a.analyze, true);
    assert.equal(typeof a.plan['Execution Time'], 'number');
    assert.ok('Actual Rows' in a.plan.Plan);
  });

  void test('schema lists schemas and tables, and describes one table', async () => {
    const all = await env.ok<{
      schemas: { name: string }[];
      tables: { schema: string; name: string; kind: string; row_estimate: number | null }[];
    }>({ action: 'schema', profile: 'ro' });
    assert.ok(all.schemas.some((s) => s.name === 'public'));
    const events = all.tables.find((t) => t.name === 'events');
    assert.equal(events?.kind, 'table');
    assert.equal(events?.row_estimate, 2000);
    assert.equal(all.tables.find((t) => t.name === 'item_names')?.kind, 'view');
    assert.ok(!all.tables.some((t) => t.schema === 'pg_catalog'));
    const one = await env.ok<{
      table: { name: string };
      columns: { name: string; type: string; nullable: boolean; default: string | null }[];
      indexes: { name: string; primary: boolean }[];
      constraints: { type: string; definition: string }[];
    }>({ action: 'schema', profile: 'ro', table: 'public.items' });
    assert.equal(one.table.name, 'items');
    assert.deepEqual(
      one.columns.map((c) => `${c.name} ${c.type}${c.nullable ? '' : ' not null'}`),
      ['id integer not null', 'name text not null', 'price numeric(10,2)', 'created date', 'tags text[]', 'meta jsonb'],
    );
    assert.ok(one.indexes.some((i) => i.primary));
    assert.ok(one.constraints.some((c) => c.type === 'primary key' && c.definition === 'PRIMARY KEY (id)'));
    const nf = await env.fail({ action: 'schema', profile: 'ro', table: 'nope' });
    assert.equal(nf.code, 'NOT_FOUND');
  });

  void test('profiles lists names, modes and hosts, never passwords', async () => {
    const r = await env.call({ action: 'profiles' });
    assert.ok(r.ok);
    const list = (r.result as { profiles: { name: string; mode: string; host: string; user: string; database: string }[] }).profiles;
    assert.deepEqual(list.map((p) => `${p.name}:${p.mode}:${p.host}:${p.user}:${p.database}`).sort(), [
      'fast:read_only:127.0.0.1:reader:app',
      'ro:read_only:127.0.0.1:reader:app',
      'rw:read_write:127.0.0.1:writer:app',
      'su:read_only:127.0.0.1:postgres:app',
      'tiny:read_only:127.0.0.1:reader:app',
    ]);
    const text = JSON.stringify(r) + readFileSync(join(env.rt.project.artifactsDir, 'calls', r.call_id, 'call.json'), 'utf8');
    for (const pw of Object.values(env.pg.passwords)) assert.ok(!text.includes(pw), 'no password in the reply or artifact');
  });
});
