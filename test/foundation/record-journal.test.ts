// call.json of reads waits in a record journal and is laid out when idle (docs/DECISIONS.md):
// the journal itself, the record worker using it, and a server killed before laying it out.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { journalDir, journalPath, recoverJournals, RecordJournal } from '../../src/artifacts/record-journal.js';
import { AuditStore, type AuditClose } from '../../src/audit/audit-store.js';
import { openDatabase } from '../../src/audit/db.js';
import { currentOwner } from '../../src/audit/owner.js';
import { REPO_ROOT, startStdio } from '../helpers/client.js';
import { makeProject, type TempProject } from '../helpers/project.js';

const WORKER = pathToFileURL(join(REPO_ROOT, 'dist', 'record-worker.js'));
/** An owner that is not alive: no process has pid 4194304 (past Linux's pid_max limit). */
const DEAD = { pid: 4194304, start: '1' };

function fileFor(callsDir: string, id: string) {
  const dir = join(callsDir, id);
  return { dir, path: join(dir, 'call.json'), data: JSON.stringify({ call_id: id }) };
}

describe('record journal', () => {
  let p: TempProject;
  let calls: string;
  before(() => {
    p = makeProject();
    calls = join(p.infraDir, 'artifacts', 'calls');
    mkdirSync(calls, { recursive: true });
  });
  after(() => p.cleanup());

  it('keeps records in one file until they are laid out, one on request or all, then empties it', () => {
    const j = new RecordJournal(calls, currentOwner(), 'main');
    const ids = ['c_j1_a', 'c_j1_b', 'c_j1_c'];
    assert.equal(j.append(ids.map((id) => ({ id, file: fileFor(calls, id) }))), true);
    assert.equal(j.size, 3);
    assert.ok(
      ids.every((id) => !existsSync(join(calls, id))),
      'nothing laid out yet',
    );
    assert.equal(readFileSync(j.path, 'utf8').trim().split('\n').length, 3);
    assert.equal((statSync(j.path).mode & 0o777).toString(8), '600');

    j.layOut(['c_j1_b']);
    assert.ok(existsSync(join(calls, 'c_j1_b', 'call.json')));
    assert.ok(!existsSync(join(calls, 'c_j1_a')));
    assert.equal(j.size, 2);

    j.layOut();
    for (const id of ids) assert.equal(JSON.parse(readFileSync(join(calls, id, 'call.json'), 'utf8')).call_id, id);
    assert.equal((statSync(join(calls, 'c_j1_a', 'call.json')).mode & 0o777).toString(8), '600');
    assert.equal(statSync(j.path).size, 0, 'an emptied journal holds nothing to replay');
    j.close();
    assert.ok(!existsSync(j.path), 'a closed journal with nothing left is removed');
  });

  it('a record that cannot be laid out stays in the journal and is laid out once it can be', () => {
    const errors: string[] = [];
    const j = new RecordJournal(calls, currentOwner(), 'main', { error: (m) => errors.push(m) });
    writeFileSync(join(calls, 'c_j2_a'), 'a file where the directory should be');
    j.append([{ id: 'c_j2_a', file: fileFor(calls, 'c_j2_a') }]);
    j.layOut();
    assert.equal(j.size, 1);
    assert.ok(statSync(j.path).size > 0, 'the record is still on disk in the journal');
    assert.ok(errors.some((e) => /could not be laid out/.test(e)));
    // the obstacle goes away: the next layout writes it
    rmSync(join(calls, 'c_j2_a'));
    j.layOut();
    assert.equal(j.size, 0);
    assert.ok(existsSync(join(calls, 'c_j2_a', 'call.json')));
    j.close();
  });

  it('the journals of ended processes are laid out at start; a line cut short by a crash is skipped', () => {
    const path = journalPath(calls, DEAD, 'worker');
    mkdirSync(journalDir(calls), { recursive: true });
    const good = ['c_j3_a', 'c_j3_b'].map((id) => JSON.stringify({ id, data: JSON.stringify({ call_id: id }) }));
    writeFileSync(path, `${good.join('\n')}\n{"id":"c_j3_c","data":"{\\"call_`);
    // a live process's journal is left to that process
    const mine = journalPath(calls, currentOwner(), 'worker');
    writeFileSync(mine, `${JSON.stringify({ id: 'c_j3_live', data: '{}' })}\n`);
    assert.equal(recoverJournals(calls), 2);
    assert.ok(existsSync(join(calls, 'c_j3_a', 'call.json')));
    assert.ok(existsSync(join(calls, 'c_j3_b', 'call.json')));
    assert.ok(!existsSync(join(calls, 'c_j3_c')));
    assert.ok(!existsSync(path), 'a laid-out journal is removed');
    assert.ok(existsSync(mine) && !existsSync(join(calls, 'c_j3_live')));
  });

  it("a record's held files are laid out with it, byte for byte, and recovered from the journal of a crashed process", () => {
    const binary = Buffer.from([0, 255, 10, 13, 0xc3, 0x28, 1, 2]);
    const j = new RecordJournal(calls, currentOwner(), 'main');
    const id = 'c_j5_a';
    assert.equal(j.append([{ id, file: { ...fileFor(calls, id), extra: [{ name: 'body', data: binary }] } }]), true);
    assert.ok(!existsSync(join(calls, id)), 'nothing laid out yet');
    j.layOut();
    assert.deepEqual(readFileSync(join(calls, id, 'body')), binary);
    assert.equal((statSync(join(calls, id, 'body')).mode & 0o777).toString(8), '600');
    assert.equal(JSON.parse(readFileSync(join(calls, id, 'call.json'), 'utf8')).call_id, id);
    j.close();

    // the same record in the journal of a process that died before laying it out
    const dead = journalPath(calls, DEAD, 'worker');
    mkdirSync(journalDir(calls), { recursive: true });
    const crashed = new RecordJournal(calls, DEAD, 'worker');
    assert.equal(
      crashed.append([{ id: 'c_j5_b', file: { ...fileFor(calls, 'c_j5_b'), extra: [{ name: 'plan.json', data: binary }] } }]),
      true,
    );
    assert.equal(crashed.path, dead);
    assert.equal(recoverJournals(calls), 1);
    assert.deepEqual(readFileSync(join(calls, 'c_j5_b', 'plan.json')), binary);
    assert.ok(existsSync(join(calls, 'c_j5_b', 'call.json')));
  });

  it('journal recovery refuses held file names that would leave the call directory, and skips that record', () => {
    const path = journalPath(calls, DEAD, 'main');
    mkdirSync(journalDir(calls), { recursive: true });
    const data = JSON.stringify({ call_id: 'x' });
    const b64 = Buffer.from('pwned').toString('base64');
    const lines = ['../up', '.hidden', 'a/b', 'call.json', ''].map((name, i) =>
      JSON.stringify({ id: `c_j6_${i}`, data, files: [{ name, base64: b64 }] }),
    );
    writeFileSync(path, `${lines.join('\n')}\n`);
    assert.equal(recoverJournals(calls), 0);
    for (let i = 0; i < lines.length; i++) assert.ok(!existsSync(join(calls, `c_j6_${i}`)));
    assert.ok(!existsSync(join(calls, 'up')));
  });

  it('journal recovery refuses call ids that would leave the calls directory', () => {
    const path = journalPath(calls, DEAD, 'main');
    mkdirSync(journalDir(calls), { recursive: true });
    const evil = ['../escaped', '../../escaped2', '.hidden', 'a/b', '/abs', ''].map((id) => JSON.stringify({ id, data: '{"pwned":true}' }));
    writeFileSync(path, `${evil.join('\n')}\n`);
    assert.equal(recoverJournals(calls), 0);
    assert.ok(!existsSync(join(calls, '..', 'escaped')));
    assert.ok(!existsSync(join(calls, '..', '..', 'escaped2')));
    assert.ok(!existsSync(join(calls, '.hidden')));
    assert.ok(!existsSync(join(calls, 'a')));
    assert.ok(!existsSync('/abs'));
  });

  it('journals live in artifacts/.journals; one an older version left in calls/ is laid out, and calls/ is searched once', () => {
    const q = makeProject();
    try {
      const qcalls = join(q.infraDir, 'artifacts', 'calls');
      mkdirSync(qcalls, { recursive: true });
      assert.equal(dirname(journalPath(qcalls, DEAD, 'worker')), join(q.infraDir, 'artifacts', '.journals'));
      const old = join(qcalls, `.journal-${DEAD.pid}-${DEAD.start}-worker.jsonl`);
      writeFileSync(old, `${JSON.stringify({ id: 'c_old_a', data: JSON.stringify({ call_id: 'c_old_a' }) })}\n`);
      assert.equal(recoverJournals(qcalls), 1);
      assert.ok(existsSync(join(qcalls, 'c_old_a', 'call.json')));
      assert.ok(!existsSync(old), 'the old journal is removed once laid out');
      // from now on only artifacts/.journals is read at start, not calls/ (one entry per call)
      writeFileSync(old, `${JSON.stringify({ id: 'c_old_b', data: JSON.stringify({ call_id: 'c_old_b' }) })}\n`);
      assert.equal(recoverJournals(qcalls), 0);
      assert.ok(!existsSync(join(qcalls, 'c_old_b')));
    } finally {
      q.cleanup();
    }
  });
});

describe('record worker with a journal', () => {
  let p: TempProject;
  before(() => {
    p = makeProject();
  });
  after(() => p.cleanup());

  const closing = (): AuditClose => ({ status: 'ok', ended_at: new Date().toISOString(), duration_ms: 1, summary: 'got k' });

  it('commits rows at once, lays out a call.json when it is asked for, and all of them when idle', async () => {
    const dbPath = join(p.infraDir, 'j.db');
    const calls = join(p.infraDir, 'artifacts', 'calls');
    const store = new AuditStore(openDatabase(dbPath), currentOwner());
    store.recordIn(calls);
    assert.equal(store.startWorker(dbPath, WORKER), true);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 200; i++) {
        const id = `c_jw_${String(i).padStart(3, '0')}`;
        ids.push(id);
        store.open({ id, started_at: new Date().toISOString(), tool: 'state', action: 'get', args: '{}' }, { behind: true });
        store.closeWithRecord(id, () => ({ close: closing(), file: fileFor(calls, id) }));
      }
      await store.settle();
      const db = new Database(dbPath, { readonly: true });
      const n = (db.prepare(`SELECT count(*) AS n FROM audit WHERE status = 'ok'`).get() as { n: number }).n;
      db.close();
      assert.equal(n, 200, 'every row is committed');
      const journal = journalPath(calls, currentOwner(), 'worker');
      assert.ok(existsSync(journal) && statSync(journal).size > 0, 'the records wait in the journal');

      await store.recorded('c_jw_123');
      assert.ok(existsSync(join(calls, 'c_jw_123', 'call.json')), 'asked for: laid out');

      // nobody asks: 100 ms after the last batch the worker lays out the rest (slow file systems
      // take a while for 200 directories, so wait for it up to 20 s)
      const until = Date.now() + 20_000;
      while (Date.now() < until && (statSync(journal).size > 0 || !ids.every((id) => existsSync(join(calls, id, 'call.json')))))
        await new Promise((r) => setTimeout(r, 50));
      for (const id of ids) assert.ok(existsSync(join(calls, id, 'call.json')), `${id} laid out when idle`);
      assert.equal(statSync(journal).size, 0);
      await store.shutdown();
      assert.ok(!existsSync(journal));
    } finally {
      await store.shutdown();
    }
  });

  it('listing artifact://calls/ lays out every call.json first', async () => {
    const q = makeProject();
    const s = await startStdio({ env: { MCP_PROFILES_DIR: q.infraDir } });
    try {
      await s.call('state', { action: 'set', key: 'k', value: 1 });
      const got: string[] = [];
      for (let i = 0; i < 30; i++) got.push((await s.call('state', { action: 'get', key: 'k' })).call_id as string);
      const list = await s.call('artifacts', { action: 'list', uri: 'artifact://calls/', limit: 500 });
      assert.equal(list.ok, true, JSON.stringify(list));
      const names = JSON.stringify(list.result);
      for (const id of got) assert.ok(names.includes(id), `${id} listed`);
      for (const id of got) assert.ok(existsSync(join(q.infraDir, 'artifacts', 'calls', id, 'call.json')));
    } finally {
      await s.close();
      q.cleanup();
    }
  });
});

describe('a server killed before its journal was laid out', () => {
  it('loses no call.json: the next start lays out what the journal holds', { timeout: 120_000 }, async () => {
    const q = makeProject();
    const calls = join(q.infraDir, 'artifacts', 'calls');
    const committedReads = (): string[] => {
      const db = new Database(join(q.infraDir, 'infra.db'), { readonly: true });
      try {
        return (db.prepare(`SELECT id FROM audit WHERE tool = 'state' AND action = 'get' AND status = 'ok'`).all() as { id: string }[]).map(
          (r) => r.id,
        );
      } finally {
        db.close();
      }
    };
    try {
      // a burst of reads, killed once their rows are committed but (the journal is laid out only
      // after 100 ms idle) before their files are; on a loaded machine the layout may win the
      // race, then the burst is tried again
      let missing: string[] = [];
      let pid = 0;
      for (let attempt = 0; attempt < 5 && missing.length === 0; attempt++) {
        const s = await startStdio({ env: { MCP_PROFILES_DIR: q.infraDir } });
        await s.call('state', { action: 'set', key: 'k', value: 1 });
        const before = committedReads().length;
        for (let i = 0; i < 100; i++) await s.call('state', { action: 'get', key: 'k' });
        const until = Date.now() + 10_000;
        while (Date.now() < until && committedReads().length < before + 90) await new Promise((r) => setTimeout(r, 2));
        process.kill(s.pid, 'SIGKILL');
        pid = s.pid;
        await s.close();
        missing = committedReads().filter((id) => !existsSync(join(calls, id, 'call.json')));
      }
      assert.ok(missing.length > 0, 'a kill came before the journal was laid out (else this test proves nothing)');

      const again = await startStdio({ env: { MCP_PROFILES_DIR: q.infraDir } });
      await again.call('state', { action: 'get', key: 'k' });
      await again.close();
      const ids = committedReads();
      const still = ids.filter((id) => !existsSync(join(calls, id, 'call.json')));
      assert.deepEqual(still, [], `every committed row has its call.json after the restart (${ids.length} rows)`);
      assert.ok(!readdirSync(journalDir(calls)).some((n) => n.startsWith(`.journal-${pid}-`)), 'the dead journal is gone');
    } finally {
      q.cleanup();
    }
  });
});
