// Reads are recorded write-behind (docs/DECISIONS.md): the audit batch, the record worker, its
// failure, and what a client sees right after a reply.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { AuditStore, type AuditClose } from '../../src/audit/audit-store.js';
import { openDatabase } from '../../src/audit/db.js';
import { currentOwner } from '../../src/audit/owner.js';
import { createRuntime } from '../../src/exec/runtime.js';
import { REPO_ROOT, startStdio, type StdioSession } from '../helpers/client.js';
import { makeProject, type TempProject } from '../helpers/project.js';

const WORKER = pathToFileURL(join(REPO_ROOT, 'dist', 'record-worker.js'));

function opened(id: string) {
  return { id, started_at: new Date().toISOString(), tool: 'state', action: 'get', args: '{}', artifact: `artifact://calls/${id}/` };
}

function closing(status: AuditClose['status'] = 'ok'): AuditClose {
  return { status, ended_at: new Date().toISOString(), duration_ms: 1, summary: 'got k' };
}

function rows(dbPath: string): { id: string; status: string; seq: number | null }[] {
  const db = new Database(dbPath, { readonly: true });
  try {
    return db.prepare('SELECT id, status, seq FROM audit ORDER BY id').all() as { id: string; status: string; seq: number | null }[];
  } finally {
    db.close();
  }
}

describe('audit write-behind batch', () => {
  let p: TempProject;
  let dbPath: string;
  let store: AuditStore;
  before(() => {
    p = makeProject();
    dbPath = join(p.infraDir, 'infra.db');
    store = new AuditStore(openDatabase(dbPath), currentOwner());
  });
  after(() => p.cleanup());

  it('an open and close that meet in one batch become one closed row; nothing is on disk before the batch commits', async () => {
    store.open(opened('c_wb_a'), { behind: true });
    store.close('c_wb_a', closing(), { behind: true });
    assert.deepEqual(
      rows(dbPath).map((r) => r.id),
      [],
      'another connection sees nothing before the batch commits',
    );
    await store.settle();
    const r = rows(dbPath);
    assert.deepEqual(
      r.map((x) => [x.id, x.status]),
      [['c_wb_a', 'ok']],
    );
    assert.equal(r[0]!.seq, 1);
  });

  it('a batch commits by itself within milliseconds', async () => {
    store.open(opened('c_wb_b'), { behind: true });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(rows(dbPath).find((x) => x.id === 'c_wb_b')?.status, 'running', 'the open is committed while the call runs');
    store.close('c_wb_b', closing('timeout'), { behind: true });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(rows(dbPath).find((x) => x.id === 'c_wb_b')?.status, 'timeout', 'the close followed');
  });

  it('write-through and write-behind closes share one chain that verifies; reads of the index commit the batch first', async () => {
    store.open(opened('c_wb_c'));
    store.open(opened('c_wb_d'), { behind: true });
    store.close('c_wb_d', closing(), { behind: true });
    store.close('c_wb_c', closing('error'));
    store.open(opened('c_wb_e'), { behind: true });
    assert.equal(store.get('c_wb_e')?.status, 'running', 'get sees a queued open');
    store.close('c_wb_e', closing(), { behind: true });
    assert.equal(store.list({ limit: 10 })[0]?.id, 'c_wb_e');
    const v = await store.verify();
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(v.rows, 5);
  });

  it('a batch replayed after it was already committed (a record worker that ended before acknowledging) changes nothing', async () => {
    const other = new AuditStore(openDatabase(dbPath), currentOwner());
    other.open(opened('c_wb_f'), { behind: true });
    other.close('c_wb_f', closing(), { behind: true });
    other.open(opened('c_wb_g'), { behind: true });
    await other.settle();
    // the same items again, as a replay would send them
    store.open(opened('c_wb_f'), { behind: true });
    store.close('c_wb_f', closing(), { behind: true });
    store.open(opened('c_wb_g'), { behind: true });
    store.close('c_wb_g', closing(), { behind: true });
    await store.settle();
    const r = rows(dbPath).filter((x) => x.id === 'c_wb_f' || x.id === 'c_wb_g');
    assert.deepEqual(
      r.map((x) => [x.id, x.status]),
      [
        ['c_wb_f', 'ok'],
        ['c_wb_g', 'ok'],
      ],
    );
    const v = await store.verify();
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(v.rows, 7);
  });
});

describe('record worker', () => {
  let p: TempProject;
  before(() => {
    p = makeProject();
  });
  after(() => p.cleanup());

  function callFile(id: string) {
    const dir = join(p.infraDir, 'artifacts', 'calls', id);
    return { dir, path: join(dir, 'call.json'), data: JSON.stringify({ call_id: id }) };
  }

  it('writes call.json and commits the rows on its own thread; settle waits for both', async () => {
    assert.ok(existsSync(WORKER), 'dist/record-worker.js is built (npm test builds first)');
    const dbPath = join(p.infraDir, 'w1.db');
    const store = new AuditStore(openDatabase(dbPath), currentOwner());
    assert.equal(store.startWorker(dbPath, WORKER), true);
    for (let i = 0; i < 300; i++) {
      const id = `c_w1_${String(i).padStart(3, '0')}`;
      store.open(opened(id), { behind: true });
      store.closeWithRecord(id, () => ({ close: closing(), file: callFile(id) }));
    }
    await store.settle();
    const r = rows(dbPath);
    assert.equal(r.length, 300);
    assert.ok(r.every((x) => x.status === 'ok'));
    assert.equal(JSON.parse(readFileSync(callFile('c_w1_299').path, 'utf8')).call_id, 'c_w1_299');
    assert.equal((await store.verify()).ok, true);
    await store.shutdown();
  });

  it('a worker that fails loses nothing: its batches are recorded on the main thread', async () => {
    const dbPath = join(p.infraDir, 'w2.db');
    const broken = join(p.root, 'broken-worker.mjs');
    writeFileSync(broken, "throw new Error('this worker cannot start');\n");
    const errors: string[] = [];
    const store = new AuditStore(openDatabase(dbPath), currentOwner(), { error: (m) => errors.push(m) });
    assert.equal(store.startWorker(dbPath, pathToFileURL(broken)), true);
    for (let i = 0; i < 20; i++) {
      const id = `c_w2_${String(i).padStart(2, '0')}`;
      store.open(opened(id), { behind: true });
      store.closeWithRecord(id, () => ({ close: closing(), file: callFile(id) }));
    }
    // the batch went to a worker that dies on start; wait for its end, then for the replay
    await new Promise((r) => setTimeout(r, 500));
    await store.settle();
    const r = rows(dbPath);
    assert.equal(r.length, 20, errors.join('; '));
    assert.ok(r.every((x) => x.status === 'ok'));
    assert.ok(existsSync(callFile('c_w2_19').path));
    assert.ok(
      errors.some((e) => /record worker ended/.test(e)),
      errors.join('; '),
    );
    // later calls go straight to the main thread
    store.open(opened('c_w2_99'), { behind: true });
    store.closeWithRecord('c_w2_99', () => ({ close: closing(), file: callFile('c_w2_99') }));
    await store.recorded('c_w2_99');
    assert.equal(store.get('c_w2_99')?.status, 'ok');
    await store.shutdown();
  });

  it('a call.json that cannot be written is named in the row, which still closes', async () => {
    const dbPath = join(p.infraDir, 'w3.db');
    const store = new AuditStore(openDatabase(dbPath), currentOwner());
    assert.equal(store.startWorker(dbPath, WORKER), true);
    // a file where the call's directory should be
    const f = callFile('c_w3_a');
    mkdirSync(join(p.infraDir, 'artifacts', 'calls'), { recursive: true });
    writeFileSync(f.dir, 'not a directory');
    store.open(opened('c_w3_a'), { behind: true });
    store.closeWithRecord('c_w3_a', () => ({ close: closing(), file: f }));
    await store.recorded('c_w3_a');
    const row = store.get('c_w3_a');
    assert.equal(row?.status, 'ok');
    assert.match(row?.summary ?? '', /^call\.json not written/);
    await store.shutdown();
  });
});

describe('reads answered before they are recorded', () => {
  let p: TempProject;
  let s: StdioSession;
  before(async () => {
    p = makeProject();
    s = await startStdio({ env: { MCP_PROFILES_DIR: p.infraDir } });
  });
  after(async () => {
    await s.close();
    p.cleanup();
  });

  it('what the client asks right after a read sees its row and call.json', async () => {
    await s.call('state', { action: 'set', key: 'k', value: 1 });
    for (let i = 0; i < 20; i++) {
      const get = await s.call('state', { action: 'get', key: 'k' });
      const id = get.call_id as string;
      const row = await s.call('audit', { action: 'get', id });
      assert.equal((row.result as { row: { status: string } }).row.status, 'ok');
      const file = await s.call('artifacts', { action: 'get', uri: `artifact://calls/${id}/call.json` });
      assert.equal(file.ok, true, JSON.stringify(file));
    }
  });

  it('a call with an effect is committed, call.json included, before its reply', async () => {
    for (let i = 0; i < 20; i++) {
      const set = await s.call('state', { action: 'set', key: `w${i}`, value: i });
      const id = set.call_id as string;
      // read straight from disk, without asking the server anything
      assert.equal(rows(join(p.infraDir, 'infra.db')).find((r) => r.id === id)?.status, 'ok');
      assert.ok(existsSync(join(p.infraDir, 'artifacts', 'calls', id, 'call.json')));
    }
  });

  it('the in-process runtime (CLI) returns a read only once it is recorded', async () => {
    const q = makeProject();
    const rt = await createRuntime({ projectDir: q.infraDir, env: { INFRA_LOG_LEVEL: 'error' } });
    try {
      await rt.call('state', { action: 'set', key: 'k', value: 1 });
      const get = await rt.call('state', { action: 'get', key: 'k' });
      assert.equal(rows(join(q.infraDir, 'infra.db')).find((r) => r.id === get.call_id)?.status, 'ok');
      assert.ok(existsSync(join(q.infraDir, 'artifacts', 'calls', get.call_id, 'call.json')));
    } finally {
      await rt.close();
      q.cleanup();
    }
  });
});
