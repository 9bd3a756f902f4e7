// The record worker (DESIGN §6, docs/DECISIONS.md "Reads are recorded write-behind"): a thread
// with its own connection to infra.db that writes the call.json of read calls and commits their
// audit rows in batches, so the event loop that answers the client does neither.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { RecordJournal } from '../artifacts/record-journal.js';
import { AuditStore, writeRecordOrSay } from './audit-store.js';
import { openDatabase } from './db.js';
import type { Owner } from './owner.js';
import type { BatchItem, WorkerMessage, WorkerReply } from './recorder.js';

const port = parentPort!;

// Recording is background work: on Linux this thread runs at a lower priority (nice 10), so on
// a busy machine the thread answering the client comes first. /proc/thread-self names this
// thread's id; setpriority on a thread id changes that thread alone.
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isInteger(tid) && tid > 0) setPriority(tid, 10);
} catch {
  /* not Linux, or not permitted: normal priority */
}

const { dbPath, owner, callsDir } = workerData as { dbPath: string; owner: Owner; callsDir?: string };
const post = (m: WorkerReply): void => port.postMessage(m);
const log = { error: (msg: string, fields?: Record<string, unknown>) => post({ t: 'log', msg, fields }) };
/** The last batch handled, the last flush request seen, the last batch whose files are all laid out. */
let batch = 0;
let token = 0;
let laid = 0;
const db = openDatabase(dbPath);
const store = new AuditStore(db, owner, log, () => post({ t: 'done', upTo: batch, token, laid }));
/** call.json of reads waits here until the server is idle (src/artifacts/record-journal.ts). */
const journal = callsDir ? new RecordJournal(callsDir, owner, 'worker', log) : undefined;
/** No batch for this long: the server is idle, and the journal's records are laid out. */
const IDLE_MS = 100;
let idleTimer: NodeJS.Timeout | undefined;

function closeCall(c: NonNullable<BatchItem['close']>, journaled: boolean): void {
  const close = journaled ? c.close : writeRecordOrSay(c.id, c.file, c.close, log);
  if (!store.close(c.id, close, { behind: true })) log.error('no open audit row to close', { call_id: c.id });
}

/** Lays out the given records, or all (then every batch so far counts as laid out: a record
 * that could not be written stays in the journal, logged, for the next try). */
function layOut(ids?: string[]): void {
  journal?.layOut(ids);
  if (ids === undefined) laid = batch;
}

/**
 * Lays out the whole journal a slice at a time, so that batches arriving meanwhile are still
 * committed within milliseconds (a layout of thousands of files takes seconds on some disks).
 */
let slicing = false;
const SLICE = 32;
function layOutInSlices(): void {
  if (slicing || !journal) return;
  slicing = true;
  const step = (): void => {
    const before = journal.size;
    journal.layOut(undefined, SLICE);
    // (a record that cannot be written stays in the journal, logged, for the next idle moment)
    if (journal.size > 0 && journal.size < before) {
      setImmediate(step);
      return;
    }
    // a slice that laid out nothing: try the rest once in one go
    if (journal.size > 0) journal.layOut();
    slicing = false;
    laid = batch;
    post({ t: 'done', upTo: batch, token, laid });
  };
  setImmediate(step);
}

function flushAndAcknowledge(): void {
  try {
    store.flush();
    post({ t: 'done', upTo: batch, token, laid });
  } catch {
    /* logged by the store and retried; that commit acknowledges */
  }
}

port.on('message', (m: WorkerMessage) => {
  switch (m.t) {
    case 'batch': {
      // the records go to the journal before their rows commit: a row never names a record
      // that is nowhere on disk
      const closes = m.items.flatMap((i) => (i.close ? [{ id: i.close.id, file: i.close.file }] : []));
      const journaled = journal?.append(closes) ?? false;
      for (const item of m.items) {
        if (item.open) store.open(item.open, { behind: true });
        if (item.close) closeCall(item.close, journaled);
      }
      batch = m.b;
      if (!journal || journal.size === 0) laid = batch;
      flushAndAcknowledge();
      if (journal && journal.size > 0) {
        if (journal.due()) layOutInSlices();
        if (idleTimer) clearTimeout(idleTimer);
        idleTimer = setTimeout(() => {
          idleTimer = undefined;
          layOutInSlices();
        }, IDLE_MS);
      }
      break;
    }
    case 'flush':
      token = m.token;
      if (m.files === 'all') layOut();
      else if (m.files) layOut(m.files);
      flushAndAcknowledge();
      break;
    case 'stop':
      if (idleTimer) clearTimeout(idleTimer);
      flushAndAcknowledge();
      journal?.close();
      db.close();
      port.close();
      break;
  }
});
