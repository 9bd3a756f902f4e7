import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { backendsRunning, eventually, psqlEnv, type PsqlEnv } from './setup.js';

let env: PsqlEnv;
let local: PsqlEnv;
let outDir: string;

const BIG_ROWS = 150_000;

void before(async () => {
  env = await psqlEnv();
  local = await psqlEnv({ pg: env.pg, env: { INFRA_UNSAFE_LOCAL: '1' } });
  outDir = mkdtempSync(join(tmpdir(), 'infra-export-'));
  env.pg.psql(
    `SET ROLE writer;
     CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h, repeat('x', 600) AS pad FROM generate_series(1, ${BIG_ROWS}) g;
     CREATE TABLE tricky (id int, t text, j jsonb);
     INSERT INTO tricky VALUES (1, E'quote " backslash \\\\ tab \\t nl \\n cr \\r', '{"a": "b\\"c"}'), (2, NULL, NULL), (3, 'ünïcødé ✓ \x01 ctl', '[1,2]'), (4, '', '{}');
     CREATE TABLE "Mixed Case" (v int); INSERT INTO "Mixed Case" VALUES (1), (2);`,
  );
});
void after(async () => {
  await local?.close();
  await env?.close();
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

interface Ex {
  rows: number;
  bytes: number;
  sha256: string;
  uri?: string;
  file_path?: string;
  preview: string;
  source: string;
}

void describe('psql export', () => {
  void test(`a ${BIG_ROWS}-row table to CSV in the artifact, streamed with flat memory`, async () => {
    global.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    const r = await env.ok<Ex>({ action: 'export', profile: 'ro', table: 'big', format: 'csv', csv_header: true });
    clearInterval(sampler);
    assert.equal(r.rows, BIG_ROWS);
    assert.ok(r.bytes > 90_000_000, `export is ${r.bytes} bytes`);
    const data = env.artifact(r.uri!);
    assert.equal(data.length, r.bytes);
    assert.equal(createHash('sha256').update(data).digest('hex'), r.sha256);
    const head = data.subarray(0, 200).toString('utf8').split('\n');
    assert.equal(head[0], 'id,h,pad');
    assert.ok(head[1]!.startsWith('1,c4ca4238a0b923820dcc509a6f75849b,xxx'));
    const growth = peak - base;
    assert.ok(growth < 64 * 1024 * 1024, `rss grew ${Math.round(growth / 1e6)} MB while exporting ${Math.round(r.bytes / 1e6)} MB`);
    assert.ok(r.preview.length <= 4096 + 200);
  });

  void test('CSV and JSON lines keep quotes, backslashes, newlines, control characters and unicode intact', async () => {
    const csv = await env.ok<Ex>({ action: 'export', profile: 'ro', table: 'tricky', csv_header: false });
    const expected = env.pg.psql(`COPY tricky TO STDOUT WITH (FORMAT csv)`).trim();
    assert.equal(env.artifact(csv.uri!).toString('utf8').trim(), expected);
    const jl = await env.ok<Ex>({ action: 'export', profile: 'ro', sql: 'SELECT * FROM tricky ORDER BY id', format: 'jsonl' });
    const lines = env.artifact(jl.uri!).toString('utf8').trimEnd().split('\n');
    assert.equal(lines.length, 4);
    const rows = lines.map((l) => JSON.parse(l) as { id: number; t: string | null; j: unknown });
    assert.deepEqual(rows[0], { id: 1, t: 'quote " backslash \\ tab \t nl \n cr \r', j: { a: 'b"c' } });
    assert.deepEqual(rows[1], { id: 2, t: null, j: null });
    assert.deepEqual(rows[2], { id: 3, t: 'ünïcødé ✓ \u0001 ctl', j: [1, 2] });
    assert.deepEqual(rows[3], { id: 4, t: '', j: {} });
    const jt = await env.ok<Ex>({ action: 'export', profile: 'ro', table: '"Mixed Case"', format: 'jsonl' });
    assert.equal(env.artifact(jt.uri!).toString('utf8'), '{"v":1}\n{"v":2}\n');
    assert.equal(jt.source, 'table public."Mixed Case"');
  });

  void test('a query export with a trailing semicolon, views, and errors', async () => {
    const q = await env.ok<Ex>({ action: 'export', profile: 'ro', sql: 'SELECT id, name FROM items WHERE id <= 3 ORDER BY id;' });
    assert.equal(env.artifact(q.uri!).toString('utf8'), 'id,name\n1,item 1\n2,item 2\n3,item 3\n');
    const v = await env.ok<Ex>({ action: 'export', profile: 'ro', table: 'item_names' });
    assert.equal(v.rows, 100);
    assert.equal((await env.fail({ action: 'export', profile: 'ro', table: 'nope' })).code, 'NOT_FOUND');
    assert.equal((await env.fail({ action: 'export', profile: 'ro' })).code, 'INVALID_ARGUMENT');
    assert.equal((await env.fail({ action: 'export', profile: 'ro', table: 'items', sql: 'select 1' })).code, 'INVALID_ARGUMENT');
  });

  void test('to a local file_path: refused without INFRA_UNSAFE_LOCAL, written 0600 with it', async () => {
    const path = join(outDir, 'items.csv');
    const e = await env.fail({ action: 'export', profile: 'ro', table: 'items', file_path: path });
    assert.equal(e.code, 'DENIED');
    assert.match(e.hint ?? '', /INFRA_UNSAFE_LOCAL=1/);
    assert.equal(existsSync(path), false);
    const r = await local.ok<Ex>({ action: 'export', profile: 'ro', table: 'items', file_path: path });
    assert.equal(r.file_path, path);
    assert.equal(r.rows, 100);
    const data = readFileSync(path);
    assert.equal(data.length, r.bytes);
    assert.equal(createHash('sha256').update(data).digest('hex'), r.sha256);
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  void test('file_path inside the project .infra directory is refused (even through a relative path)', async () => {
    for (const p of [
      join(local.project.infraDir, 'x.csv'),
      '.infra/runbooks.json',
      join(local.rt.project.artifactsDir, 'calls', 'x.csv'),
    ]) {
      const e = await local.fail({ action: 'export', profile: 'ro', table: 'items', file_path: p });
      assert.ok(['DENIED', 'INVALID_ARGUMENT'].includes(e.code), `${p}: ${e.code}`);
    }
    assert.equal(existsSync(join(local.project.infraDir, 'x.csv')), false);
    assert.equal(existsSync(join(local.project.infraDir, 'runbooks.json')), false);
  });

  void test("the seed's db.export.table example works unchanged through mcp_psql_manager and psql", async () => {
    for (const tool of ['mcp_psql_manager', 'psql']) {
      const file = join(outDir, `events-${tool}.csv`);
      const r = await local.rt.call(tool, {
        action: 'export',
        profile_name: 'ro',
        table: 'events',
        file_path: file,
        format: 'csv',
        csv_header: true,
      });
      assert.ok(r.ok, JSON.stringify(r));
      const text = readFileSync(file, 'utf8');
      assert.ok(text.startsWith('id,kind,payload,at\n1,view,"payload ""1"",\n line",2024-01-01 00:00:00+00\n'));
      assert.equal((r.result as Ex).rows, 2000);
    }
  });

  void test('async: true runs the export as a job', async () => {
    const r = await env.call({ action: 'export', profile: 'ro', table: 'items', async: true });
    assert.ok(r.ok && r.job_id);
    const done = await env.rt.call('jobs', { action: 'wait', job_id: r.job_id, wait_ms: 20_000 });
    assert.ok(done.ok);
    const info = done.result as { status: string; envelope?: { ok: boolean; result: Ex } };
    assert.equal(info.status, 'ok', JSON.stringify(info));
    assert.equal(info.envelope?.result.rows, 100);
  });

  void test('cancelling an export stops the COPY on the server and drops the connection', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 150);
    const r = await env.call(
      { action: 'export', profile: 'ro', sql: "SELECT g, pg_sleep(0.001), 'marker-export-cancel' FROM generate_series(1, 100000) g" },
      { signal: ac.signal },
    );
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.code, 'CANCELLED');
    assert.ok(await eventually(() => backendsRunning(env.pg, 'marker-export-cancel') === 0), 'the COPY is no longer running');
  });

  void test('an export timeout stops the COPY on the server', async () => {
    const e = await env.fail({
      action: 'export',
      profile: 'ro',
      sql: "SELECT g, pg_sleep(0.001), 'marker-export-timeout' FROM generate_series(1, 100000) g",
      timeout_ms: 300,
    });
    assert.equal(e.code, 'TIMEOUT');
    assert.ok(await eventually(() => backendsRunning(env.pg, 'marker-export-timeout') === 0));
  });

  void test('params are refused for export (COPY takes none)', async () => {
    const e = await env.call({ action: 'export', profile: 'ro', sql: 'SELECT $1::int', params: [1] });
    assert.equal(e.ok, false);
    if (!e.ok) assert.equal(e.error.code, 'INVALID_ARGUMENT');
  });
});
