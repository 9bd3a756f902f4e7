// The record worker (DESIGN §6, docs/DECISIONS.md "Reads are recorded write-behind"): a thread
// with its own connection to infra.db that writes the call.json of read calls and commits their
// audit rows in batches, so the event loop that answers the client does neither.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { writeRecordFileSync } from '../artifacts/record-file.js';
import { AuditStore, closeWithoutRecord } from './audit-store.js';
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

const { dbPath, owner } = workerData as { dbPath: string; owner: Owner };
const post = (m: WorkerReply): void => port.postMessage(m);
/** The last batch handled, and the last flush request seen. */
let batch = 0;
let token = 0;
const db = openDatabase(dbPath);
const store = new AuditStore(db, owner, { error: (msg, fields) => post({ t: 'log', msg, fields }) }, () =>
  post({ t: 'done', upTo: batch, token }),
);

function closeCall(c: NonNullable<BatchItem['close']>): void {
  let close = c.close;
  try {
    writeRecordFileSync(c.file);
  } catch (e) {
    post({ t: 'log', msg: 'call.json could not be written', fields: { call_id: c.id, error: (e as Error).message } });
    close = closeWithoutRecord(close, e);
  }
  if (!store.close(c.id, close, { behind: true })) post({ t: 'log', msg: 'no open audit row to close', fields: { call_id: c.id } });
}

function flushAndAcknowledge(): void {
  try {
    store.flush();
    post({ t: 'done', upTo: batch, token });
  } catch {
    /* logged by the store and retried; that commit acknowledges */
  }
}

port.on('message', (m: WorkerMessage) => {
  switch (m.t) {
    case 'batch':
      for (const item of m.items) {
        if (item.open) store.open(item.open, { behind: true });
        if (item.close) closeCall(item.close);
      }
      batch = m.b;
      flushAndAcknowledge();
      break;
    case 'flush':
      token = m.token;
      flushAndAcknowledge();
      break;
    case 'stop':
      flushAndAcknowledge();
      db.close();
      port.close();
      break;
  }
});
