import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { RecordFile } from '../artifacts/record-file.js';
import { journalPath, layOutJournal } from '../artifacts/record-journal.js';
import type { AuditClose, AuditOpen } from './audit-store.js';
import type { Owner } from './owner.js';

/** A call's open, its close (with its call.json), or both. */
export interface BatchItem {
  open?: AuditOpen | undefined;
  close?: { id: string; close: AuditClose; file: RecordFile } | undefined;
}

/** `files`: also lay out these calls' call.json from the journal (or all of them) first. */
export type WorkerMessage =
  { t: 'batch'; b: number; items: BatchItem[] } | { t: 'flush'; token: number; files?: string[] | 'all' | undefined } | { t: 'stop' };

/**
 * `upTo`: every batch up to this number is committed; `laid`: the call.json files of every batch
 * up to this number are laid out; `token`: every flush request up to it is answered.
 */
export type WorkerReply =
  { t: 'done'; upTo: number; token: number; laid: number } | { t: 'log'; msg: string; fields?: Record<string, unknown> | undefined };

/** How long opens and closes gather before they go to the worker together. */
export const SEND_DELAY_MS = 5;
const SEND_MAX_ITEMS = 128;

interface Log {
  error(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * The worker's entry next to this module: dist/record-worker.js beside the bundle. Running from
 * the TypeScript sources (tsx) or inside the single-file binary there is none, and read calls
 * are recorded on the main thread.
 */
function workerEntry(): URL | undefined {
  let base: string | undefined;
  try {
    base = import.meta.url;
  } catch {
    return undefined;
  }
  if (typeof base !== 'string' || !base.startsWith('file:')) return undefined;
  const u = new URL('./record-worker.js', base);
  return existsSync(fileURLToPath(u)) ? u : undefined;
}

/**
 * The main thread's side of the record worker (src/audit/record-worker.ts). Opens and closes
 * gather for SEND_DELAY_MS and go out as one numbered batch; the worker handles batches in
 * order and acknowledges the last one each commit covered. Batches not yet acknowledged are
 * kept: if the worker ends, `replay` gets them back to record on the main thread, so a worker
 * that fails loses nothing.
 */
export class RecordWorkerClient {
  private batch = 0;
  private token = 0;
  private outbox: BatchItem[] = [];
  private readonly openItems = new Map<string, BatchItem>();
  private readonly unacked = new Map<number, BatchItem[]>();
  /** Calls whose close is not yet committed, or whose call.json is not yet laid out: the batch it went out in (Infinity: not sent). */
  private readonly pending = new Map<string, number>();
  private readonly waiters = new Map<number, () => void>();
  private sendTimer: NodeJS.Timeout | undefined;
  private failed = false;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly worker: Worker,
    private readonly log: Log,
    private readonly replay: (items: BatchItem[]) => void,
    /** The worker's record journal, laid out here if the worker ends. */
    private readonly journal: { path: string; callsDir: string } | undefined,
  ) {
    worker.unref();
    worker.on('message', (m: WorkerReply) => {
      if (m.t === 'log') this.log.error(`record worker: ${m.msg}`, m.fields);
      else this.acknowledge(m.upTo, m.laid, m.token);
    });
    this.exited = new Promise((resolve) => {
      worker.once('exit', () => {
        this.fail('the record worker exited');
        resolve();
      });
    });
    worker.on('error', (e) => this.fail(e.message));
  }

  /** Starts the worker; undefined when it cannot run here (no worker file next to the bundle). */
  static start(
    dbPath: string,
    owner: Owner,
    log: Log,
    replay: (items: BatchItem[]) => void,
    entry: URL | undefined = workerEntry(),
    callsDir?: string,
  ): RecordWorkerClient | undefined {
    if (!entry) return undefined;
    try {
      return new RecordWorkerClient(
        new Worker(entry, { workerData: { dbPath, owner, callsDir }, stdout: false, stderr: false }),
        log,
        replay,
        callsDir === undefined ? undefined : { path: journalPath(callsDir, owner, 'worker'), callsDir },
      );
    } catch (e) {
      log.error('record worker could not start; recording on the main thread', { error: (e as Error).message });
      return undefined;
    }
  }

  get alive(): boolean {
    return !this.failed;
  }

  open(row: AuditOpen): void {
    const item: BatchItem = { open: row };
    this.outbox.push(item);
    this.openItems.set(row.id, item);
    this.schedule();
  }

  /** A call that ends before its open went out sends both as one item. */
  close(id: string, close: AuditClose, file: RecordFile): void {
    this.pending.set(id, Infinity);
    const item = this.openItems.get(id);
    if (item) item.close = { id, close, file };
    else this.outbox.push({ close: { id, close, file } });
    this.schedule();
  }

  /** Resolves once the call's row is committed and its call.json laid out (at once when done). */
  recorded(id: string): Promise<void> {
    return this.pending.has(id) ? this.flush([id]) : Promise.resolve();
  }

  /**
   * Sends what gathered and resolves once everything sent so far is committed, and the
   * call.json of `files` (or of every call, 'all') is laid out.
   */
  flush(files?: string[] | 'all'): Promise<void> {
    this.send();
    if (this.failed) return Promise.resolve();
    const token = ++this.token;
    return new Promise<void>((resolve) => {
      this.waiters.set(token, resolve);
      this.worker.postMessage({ t: 'flush', token, files } satisfies WorkerMessage);
    });
  }

  /** Commits what is left and ends the worker (and its connection). */
  async stop(): Promise<void> {
    this.send();
    if (this.failed) return;
    this.worker.postMessage({ t: 'stop' } satisfies WorkerMessage);
    const timer = setTimeout(() => void this.worker.terminate(), 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  private schedule(): void {
    if (this.outbox.length >= SEND_MAX_ITEMS) this.send();
    else this.sendTimer ??= setTimeout(this.send, SEND_DELAY_MS);
  }

  private readonly send = (): void => {
    if (this.sendTimer) clearTimeout(this.sendTimer);
    this.sendTimer = undefined;
    if (this.outbox.length === 0) return;
    const items = this.outbox;
    this.outbox = [];
    this.openItems.clear();
    if (this.failed) {
      this.replay(items);
      return;
    }
    const b = ++this.batch;
    for (const item of items) if (item.close) this.pending.set(item.close.id, b);
    this.unacked.set(b, items);
    this.worker.postMessage({ t: 'batch', b, items } satisfies WorkerMessage);
  };

  /** Batches up to `upTo` are committed (no replay needed), their files laid out up to `laid`. */
  private acknowledge(upTo: number, laid: number, token: number): void {
    for (const b of this.unacked.keys()) {
      if (b > upTo) break;
      this.unacked.delete(b);
    }
    const done = Math.min(upTo, laid);
    for (const [id, b] of this.pending) {
      if (b > done) break;
      this.pending.delete(id);
    }
    for (const [t, resolve] of this.waiters) {
      if (t > token) break;
      this.waiters.delete(t);
      resolve();
    }
  }

  private fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    if (this.sendTimer) clearTimeout(this.sendTimer);
    this.sendTimer = undefined;
    const items = [...this.unacked.values()].flat().concat(this.outbox);
    this.unacked.clear();
    this.outbox = [];
    this.openItems.clear();
    this.pending.clear();
    // records the worker had journaled but not laid out (their rows are committed)
    if (this.journal) layOutJournal(this.journal.path, this.journal.callsDir, this.log);
    if (items.length > 0) {
      this.log.error('record worker ended; recording its unfinished batches on the main thread', { reason, items: items.length });
      this.replay(items);
    }
    for (const resolve of this.waiters.values()) resolve();
    this.waiters.clear();
  }
}
