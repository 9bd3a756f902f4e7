import { sha256Hex } from '../core/hash.js';
import stringify from 'safe-stable-stringify';
import type { Database } from './db.js';
import { ownerAlive, type Owner } from './owner.js';
import { encodeTime } from '../core/ids.js';
import { invalid } from '../core/errors.js';
import { writeRecordFileSync, type RecordFile } from '../artifacts/record-file.js';
import { RecordWorkerClient, type BatchItem } from './recorder.js';
import { RecordJournal } from '../artifacts/record-journal.js';

export type AuditStatus = 'running' | 'ok' | 'error' | 'denied' | 'invalid' | 'timeout' | 'cancelled' | 'interrupted';

export interface AuditOpen {
  id: string;
  parent_id?: string | undefined;
  started_at: string;
  tool: string;
  action?: string | undefined;
  target?: string | undefined;
  args: string;
  artifact?: string | undefined;
  client_name?: string | undefined;
  client_version?: string | undefined;
}

export interface AuditClose {
  status: Exclude<AuditStatus, 'running'>;
  ended_at: string;
  duration_ms: number;
  error_code?: string | undefined;
  summary?: string | undefined;
  artifact?: string | undefined;
  bytes?: number | undefined;
  target?: string | undefined;
}

export interface AuditRow {
  id: string;
  seq: number | null;
  parent_id: string | null;
  owner_pid: number;
  owner_start: string;
  started_at: string;
  ended_at: string | null;
  duration_ms: number | null;
  tool: string;
  action: string | null;
  target: string | null;
  status: AuditStatus;
  error_code: string | null;
  args: string | null;
  summary: string | null;
  artifact: string | null;
  bytes: number | null;
  client_name: string | null;
  client_version: string | null;
  prev_hash: string | null;
  hash: string | null;
  artifact_pruned: number;
}

export interface AuditFilter {
  tool?: string | undefined;
  action?: string | undefined;
  status?: string | undefined;
  parent_id?: string | undefined;
  target?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  query?: string | undefined;
  limit?: number | undefined;
  /** Rows started strictly before this call id (keyset pagination). */
  before?: string | undefined;
}

/** The fields of a closed row covered by its hash, in canonical JSON with the previous hash. */
export function rowHash(row: Omit<AuditRow, 'hash' | 'artifact_pruned'>): string {
  const canonical = stringify({
    id: row.id,
    seq: row.seq,
    parent_id: row.parent_id,
    owner: `${row.owner_pid}:${row.owner_start}`,
    started_at: row.started_at,
    ended_at: row.ended_at,
    duration_ms: row.duration_ms,
    tool: row.tool,
    action: row.action,
    target: row.target,
    status: row.status,
    error_code: row.error_code,
    args: row.args,
    summary: row.summary,
    artifact: row.artifact,
    bytes: row.bytes,
    client_name: row.client_name,
    client_version: row.client_version,
    prev_hash: row.prev_hash,
  });
  return sha256Hex(canonical ?? '');
}

/** The smallest call id started at or after an ISO time. */
function idBoundAt(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw invalid(`not an ISO-8601 time: ${JSON.stringify(iso)}`, 'use e.g. 2026-11-21T10:00:00Z');
  return `c_${encodeTime(Math.max(0, ms))}`;
}

const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/** How long a write-behind row may wait in memory before its batch is committed. */
export const FLUSH_DELAY_MS = 2;
/** No read recorded for this long: this thread's record journal is laid out. */
const IDLE_LAYOUT_MS = 100;
/** A batch this big is committed at once, whatever the delay. */
const FLUSH_MAX_ROWS = 256;

/**
 * The SQLite audit index (DESIGN §4). A row is inserted `running` before the handler starts;
 * at close it takes the next chain position and its hash inside BEGIN IMMEDIATE, so several
 * infra processes sharing one infra.db keep one chain.
 *
 * Read calls are recorded write-behind (docs/DECISIONS.md, "Reads are recorded write-behind"):
 * their open and close wait in memory at most FLUSH_DELAY_MS and are committed in one batch
 * transaction; a read that ends before its batch commits is inserted already closed. Calls with
 * an effect are written through, as before. Every read of the index commits the batch first, so
 * nothing this process recorded is ever missing from what it reports.
 */
export class AuditStore {
  private readonly insertStmt;
  private readonly insertQueuedStmt;
  private readonly insertClosedStmt;
  private readonly selectRow;
  private readonly headStmt;
  private readonly closeStmt;
  private readonly headUpdate;
  private readonly closeTx;
  private readonly flushTx;
  private readonly openRows = new Map<string, AuditRow>();
  /** Write-behind opens not yet committed (insertion order). */
  private readonly queuedOpens = new Map<string, AuditRow>();
  /** Write-behind closes not yet committed, in close order (the chain order). */
  private queuedCloses: { id: string; close: AuditClose }[] = [];
  /** Recordings still being written (call.json first, then the row's close), by call id. */
  private readonly recording = new Map<string, Promise<void>>();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushFailures = 0;
  private closed = false;
  private worker: RecordWorkerClient | undefined;
  /** Where this thread keeps call.json of reads until idle (no record worker); see recordIn. */
  private journal: RecordJournal | undefined;
  private callsDir: string | undefined;
  private layOutTimer: NodeJS.Timeout | undefined;
  private lastRecordAt = 0;

  constructor(
    private readonly db: Database,
    private readonly owner: Owner,
    private readonly log?: { error(msg: string, fields?: Record<string, unknown>): void },
    /** Called after each committed write-behind batch (the record worker acknowledges with it). */
    private readonly onFlush?: () => void,
  ) {
    this.insertStmt = db.prepare(
      `INSERT INTO audit (id, parent_id, owner_pid, owner_start, started_at, tool, action, target, status, args, artifact, client_name, client_version)
       VALUES (@id, @parent_id, @owner_pid, @owner_start, @started_at, @tool, @action, @target, 'running', @args, @artifact, @client_name, @client_version)`,
    );
    // write-behind rows may come back (a record worker's unacknowledged batch, replayed here
    // after it ended): inserting one twice is a no-op, and a closed one is closed in place
    this.insertQueuedStmt = db.prepare(
      `INSERT OR IGNORE INTO audit (id, parent_id, owner_pid, owner_start, started_at, tool, action, target, status, args, artifact, client_name, client_version)
       VALUES (@id, @parent_id, @owner_pid, @owner_start, @started_at, @tool, @action, @target, 'running', @args, @artifact, @client_name, @client_version)`,
    );
    this.insertClosedStmt = db.prepare(
      `INSERT OR IGNORE INTO audit (id, seq, parent_id, owner_pid, owner_start, started_at, ended_at, duration_ms, tool, action, target, status,
         error_code, args, summary, artifact, bytes, client_name, client_version, prev_hash, hash)
       VALUES (@id, @seq, @parent_id, @owner_pid, @owner_start, @started_at, @ended_at, @duration_ms, @tool, @action, @target, @status,
         @error_code, @args, @summary, @artifact, @bytes, @client_name, @client_version, @prev_hash, @hash)`,
    );
    this.selectRow = db.prepare('SELECT * FROM audit WHERE id = ?');
    this.headStmt = db.prepare('SELECT seq, hash FROM chain_head WHERE id = 1');
    this.closeStmt = db.prepare(
      `UPDATE audit SET seq = @seq, ended_at = @ended_at, duration_ms = @duration_ms, status = @status, error_code = @error_code,
         summary = @summary, artifact = @artifact, bytes = @bytes, target = @target, prev_hash = @prev_hash, hash = @hash
       WHERE id = @id AND status = 'running'`,
    );
    this.headUpdate = db.prepare('UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1');
    this.closeTx = db.transaction((id: string, close: AuditClose) => {
      const head = this.headStmt.get() as { seq: number; hash: string };
      const next = this.closeOne(id, close, head);
      if (!next) return false;
      this.headUpdate.run(next.seq, next.hash);
      return true;
    });
    this.flushTx = db.transaction((opens: AuditRow[], closes: { id: string; close: AuditClose }[]) => {
      const closing = new Set(closes.map((c) => c.id));
      for (const row of opens) if (!closing.has(row.id)) this.insertQueuedStmt.run(openParams(row));
      let head = this.headStmt.get() as { seq: number; hash: string };
      const start = head.seq;
      for (const { id, close } of closes) head = this.closeOne(id, close, head) ?? head;
      if (head.seq !== start) this.headUpdate.run(head.seq, head.hash);
    });
  }

  /**
   * Closes one row at the chain position after `head`: a row still queued for insertion is
   * inserted closed, any other is updated. Returns the new head, or undefined when the row is
   * unknown or already closed.
   */
  private closeOne(
    id: string,
    close: AuditClose,
    head: { seq: number; hash: string },
    stored = false,
  ): { seq: number; hash: string } | undefined {
    const queued = stored ? undefined : this.queuedOpens.get(id);
    // this process's own open rows are known; rows of ended processes are read back
    const row = queued ?? this.openRows.get(id) ?? (this.selectRow.get(id) as AuditRow | undefined);
    if (!row || row.status !== 'running') return undefined;
    const closed: AuditRow = {
      ...row,
      seq: head.seq + 1,
      ended_at: close.ended_at,
      duration_ms: close.duration_ms,
      status: close.status,
      error_code: close.error_code ?? null,
      summary: close.summary ?? null,
      artifact: close.artifact ?? row.artifact,
      bytes: close.bytes ?? null,
      target: close.target ?? row.target,
      prev_hash: head.hash,
    };
    closed.hash = rowHash(closed);
    if (queued) {
      const { artifact_pruned: _p, ...fields } = closed;
      // a queued row is inserted closed, unless it is there already (a replayed batch): then
      // the stored row is closed in place like any other, or left alone when it is closed too
      if (this.insertClosedStmt.run(fields).changes === 0) return this.closeOne(id, close, head, true);
    } else {
      const changed = this.closeStmt.run({
        id,
        seq: closed.seq,
        ended_at: closed.ended_at,
        duration_ms: closed.duration_ms,
        status: closed.status,
        error_code: closed.error_code,
        summary: closed.summary,
        artifact: closed.artifact,
        bytes: closed.bytes,
        target: closed.target,
        prev_hash: closed.prev_hash,
        hash: closed.hash,
      }).changes;
      if (changed === 0) return undefined;
    }
    return { seq: closed.seq!, hash: closed.hash };
  }

  /**
   * Records a call's `running` row. Written through (committed before this returns) unless
   * `behind`, when it joins the next batch, at most FLUSH_DELAY_MS away.
   */
  open(row: AuditOpen, opts: { behind?: boolean } = {}): void {
    if (opts.behind && !this.closed && this.worker?.alive) {
      this.worker.open(row);
      return;
    }
    const full: AuditRow = {
      id: row.id,
      seq: null,
      parent_id: row.parent_id ?? null,
      owner_pid: this.owner.pid,
      owner_start: this.owner.start,
      started_at: row.started_at,
      ended_at: null,
      duration_ms: null,
      tool: row.tool,
      action: row.action ?? null,
      target: row.target ?? null,
      status: 'running',
      error_code: null,
      args: row.args,
      summary: null,
      artifact: row.artifact ?? null,
      bytes: null,
      client_name: row.client_name ?? null,
      client_version: row.client_version ?? null,
      prev_hash: null,
      hash: null,
      artifact_pruned: 0,
    };
    if (opts.behind && !this.closed) {
      this.queuedOpens.set(row.id, full);
      this.scheduleFlush();
      return;
    }
    this.insertStmt.run(openParams(full));
    this.openRows.set(row.id, full);
  }

  /**
   * Closes a row at the next chain position. Written through unless `behind`; a written-through
   * close commits the queued batch first, so the chain keeps the order calls ended in.
   * Returns false when the row is unknown or already closed.
   */
  close(id: string, close: AuditClose, opts: { behind?: boolean } = {}): boolean {
    if (opts.behind && !this.closed) {
      this.queuedCloses.push({ id, close });
      this.scheduleFlush();
      return true;
    }
    this.flush();
    const done = this.closeTx.immediate(id, close) as boolean;
    this.openRows.delete(id);
    return done;
  }

  /**
   * Starts the record worker (src/audit/record-worker.ts), which takes the write-behind rows and
   * call.json files from now on; without it they are committed on this thread. False when it
   * cannot run here.
   */
  startWorker(dbPath: string, entry?: URL): boolean {
    const log = this.log ?? { error: () => undefined };
    this.worker = RecordWorkerClient.start(dbPath, this.owner, log, (items) => this.replay(items), entry, this.callsDir);
    return this.worker !== undefined;
  }

  /**
   * call.json of reads goes to a record journal in `callsDir` and is laid out when idle
   * (src/artifacts/record-journal.ts). Call before startWorker. Without it each is written at once.
   */
  recordIn(callsDir: string): void {
    this.callsDir = callsDir;
  }

  /** Records on this thread what an ended record worker had not committed. */
  private replay(items: BatchItem[]): void {
    for (const item of items) {
      try {
        if (item.open) this.open(item.open, { behind: true });
        if (item.close) this.record(item.close.id, item.close.close, item.close.file);
      } catch (e) {
        this.log?.error('a record the worker left could not be replayed', { error: (e as Error).message });
      }
    }
  }

  /**
   * Closes a write-behind row after the reply: `build` makes its close and call.json in the
   * check phase of this turn of the event loop (after the reply was written), then the record
   * worker journals and commits them, or this thread does when there is no worker (see record).
   * A call.json that can be neither journaled nor written is named in the row.
   */
  closeWithRecord(id: string, build: () => { close: AuditClose; file: RecordFile }): void {
    this.track(
      id,
      new Promise<void>((resolve) => {
        setImmediate(() => {
          try {
            const { close, file } = build();
            this.record(id, close, file);
          } catch (e) {
            this.log?.error('the record of a call could not be built', { call_id: id, error: (e as Error).message });
          }
          resolve();
        });
      }),
    );
  }

  /** Hands a close and its call.json to the record worker, or records both on this thread. */
  private record(id: string, close: AuditClose, file: RecordFile): void {
    if (!this.closed && this.worker?.alive) {
      this.worker.close(id, close, file);
      return;
    }
    let c = close;
    if (!this.closed && this.callsDir && this.journalFor(this.callsDir).append([{ id, file }])) {
      this.lastRecordAt = Date.now();
      if (this.journal!.due()) this.journal!.layOut();
      else this.scheduleLayOut();
    } else {
      c = writeRecordOrSay(id, file, close, this.log);
    }
    try {
      if (!this.close(id, c, { behind: true })) this.log?.error('no open audit row to close', { call_id: id });
    } catch (e) {
      this.log?.error('audit row could not be closed', { call_id: id, error: (e as Error).message });
    }
  }

  private journalFor(callsDir: string): RecordJournal {
    return (this.journal ??= new RecordJournal(callsDir, this.owner, 'main', this.log));
  }

  /** Lays out this thread's journal once no call has been recorded for IDLE_LAYOUT_MS. */
  private scheduleLayOut(): void {
    if (this.layOutTimer) return;
    const check = (): void => {
      const quiet = Date.now() - this.lastRecordAt;
      if (quiet < IDLE_LAYOUT_MS && !this.journal?.due()) {
        this.layOutTimer = setTimeout(check, IDLE_LAYOUT_MS - quiet);
        this.layOutTimer.unref();
        return;
      }
      this.layOutTimer = undefined;
      this.journal?.layOut();
    };
    this.layOutTimer = setTimeout(check, IDLE_LAYOUT_MS);
    this.layOutTimer.unref();
  }

  /** Commits the write-behind batch now (every read of the index calls this first). */
  flush(): void {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.queuedOpens.size === 0 && this.queuedCloses.length === 0) return;
    const opens = [...this.queuedOpens.values()];
    const closes = this.queuedCloses;
    try {
      this.flushTx.immediate(opens, closes);
    } catch (e) {
      // nothing of the batch was committed (one transaction): keep it and try again
      this.flushFailures++;
      if (this.flushFailures === 1 || this.flushFailures % 100 === 0)
        this.log?.error('audit batch could not be committed; retrying', { rows: opens.length, error: (e as Error).message });
      if (!this.closed) this.scheduleFlush(Math.min(1000, 10 * this.flushFailures));
      throw e;
    }
    this.flushFailures = 0;
    this.onFlush?.();
    const closing = new Set(closes.map((c) => c.id));
    for (const row of opens) if (!closing.has(row.id)) this.openRows.set(row.id, row);
    for (const id of closing) this.openRows.delete(id);
    this.queuedOpens.clear();
    this.queuedCloses = [];
  }

  private scheduleFlush(delay = FLUSH_DELAY_MS): void {
    if (this.queuedOpens.size + this.queuedCloses.length >= FLUSH_MAX_ROWS) {
      this.tryFlush();
      return;
    }
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.tryFlush();
    }, delay);
  }

  private tryFlush(): void {
    try {
      this.flush();
    } catch {
      /* logged and rescheduled by flush */
    }
  }

  /** Tracks a call's recording (call.json, then its close) until it is done. */
  track(id: string, recording: Promise<void>): void {
    const p = recording.finally(() => {
      if (this.recording.get(id) === p) this.recording.delete(id);
    });
    this.recording.set(id, p);
  }

  /** Resolves once the call's record (call.json and audit row) is committed. */
  async recorded(id: string): Promise<void> {
    const p = this.recording.get(id);
    if (p) await p.catch(() => undefined);
    if (this.worker) await this.worker.recorded(id);
    this.flush();
    if (this.journal?.has(id)) this.journal.layOut([id]);
  }

  /**
   * Resolves once every recording started so far is committed (before reads and at shutdown);
   * with `files`, once every call.json is laid out too.
   */
  async settle(opts: { files?: boolean } = {}): Promise<void> {
    while (this.recording.size > 0) await Promise.allSettled([...this.recording.values()]);
    if (this.worker) await this.worker.flush(opts.files ? 'all' : undefined);
    this.flush();
    if (opts.files) this.journal?.layOut();
  }

  /** Settles, commits, lays out every call.json, and writes everything through from now on (shutdown). */
  async shutdown(): Promise<void> {
    await this.settle();
    this.closed = true;
    if (this.layOutTimer) clearTimeout(this.layOutTimer);
    this.layOutTimer = undefined;
    await this.worker?.stop();
    this.flush();
    this.journal?.close();
  }

  /**
   * Marks rows left `running` by owners that are no longer alive as `interrupted`, in the
   * chain. Returns how many were closed.
   */
  recoverInterrupted(now = new Date()): number {
    this.flush();
    const rows = this.db
      .prepare(`SELECT id, owner_pid, owner_start, started_at FROM audit WHERE status = 'running' ORDER BY started_at, id`)
      .all() as Pick<AuditRow, 'id' | 'owner_pid' | 'owner_start' | 'started_at'>[];
    let n = 0;
    const alive = new Map<string, boolean>();
    for (const r of rows) {
      const key = `${r.owner_pid}:${r.owner_start}`;
      if (!alive.has(key)) alive.set(key, ownerAlive({ pid: r.owner_pid, start: r.owner_start }));
      if (alive.get(key)) continue;
      const ended = now.toISOString();
      if (
        this.close(r.id, {
          status: 'interrupted',
          ended_at: ended,
          duration_ms: Math.max(0, now.getTime() - Date.parse(r.started_at)),
          error_code: 'INTERNAL',
          summary: `the infra process (pid ${r.owner_pid}) ended before this call finished`,
        })
      )
        n++;
    }
    return n;
  }

  get(id: string): AuditRow | undefined {
    this.flush();
    return this.selectRow.get(id) as AuditRow | undefined;
  }

  list(f: AuditFilter): AuditRow[] {
    this.flush();
    const where: string[] = [];
    const params: Record<string, unknown> = {};
    if (f.tool) {
      where.push('tool = @tool');
      params.tool = f.tool;
    }
    if (f.action) {
      where.push('action = @action');
      params.action = f.action;
    }
    if (f.status) {
      where.push('status = @status');
      params.status = f.status;
    }
    if (f.parent_id) {
      where.push('parent_id = @parent_id');
      params.parent_id = f.parent_id;
    }
    if (f.target) {
      where.push('target = @target');
      params.target = f.target;
    }
    // call ids are ULIDs that encode their start time: a time range is an id range (indexed)
    if (f.since) {
      where.push('id >= @since');
      params.since = idBoundAt(f.since);
    }
    if (f.until) {
      where.push('id < @until');
      params.until = idBoundAt(f.until);
    }
    if (f.before) {
      where.push('id < @before');
      params.before = f.before;
    }
    if (f.query) {
      where.push(
        `(tool LIKE @q ESCAPE '\\' OR action LIKE @q ESCAPE '\\' OR target LIKE @q ESCAPE '\\' OR summary LIKE @q ESCAPE '\\' OR args LIKE @q ESCAPE '\\')`,
      );
      params.q = `%${f.query.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    }
    const limit = Math.min(Math.max(f.limit ?? 50, 1), 1000);
    // call ids are ULIDs: ordering by id is ordering by start time, and uses the primary key
    const sql = `SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ${limit}`;
    return this.db.prepare(sql).all(params) as AuditRow[];
  }

  stats(since?: string): {
    total: number;
    by_status: Record<string, number>;
    by_tool: { tool: string; action: string | null; calls: number; errors: number; avg_ms: number; max_ms: number }[];
  } {
    this.flush();
    const cond = since ? 'WHERE id >= @since' : '';
    const params = since ? { since: idBoundAt(since) } : {};
    const byStatus = this.db.prepare(`SELECT status, COUNT(*) n FROM audit ${cond} GROUP BY status`).all(params) as {
      status: string;
      n: number;
    }[];
    const byTool = this.db
      .prepare(
        `SELECT tool, action, COUNT(*) calls, SUM(CASE WHEN status NOT IN ('ok','running') THEN 1 ELSE 0 END) errors,
                CAST(AVG(duration_ms) AS INTEGER) avg_ms, MAX(duration_ms) max_ms
         FROM audit ${cond} GROUP BY tool, action ORDER BY calls DESC LIMIT 200`,
      )
      .all(params) as { tool: string; action: string | null; calls: number; errors: number; avg_ms: number; max_ms: number }[];
    const by_status: Record<string, number> = {};
    let total = 0;
    for (const r of byStatus) {
      by_status[r.status] = r.n;
      total += r.n;
    }
    return { total, by_status, by_tool: byTool };
  }

  /**
   * Walks the hash chain in chunks, yielding to the event loop between them so other calls
   * keep being served.
   */
  async verify(chunk = 5000): Promise<{
    ok: boolean;
    rows: number;
    running: number;
    head_seq: number;
    first_bad?: { seq: number; id: string; reason: string };
  }> {
    await this.settle();
    const stmt = this.db.prepare('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?');
    let prevSeq = 0;
    let prevHash = '';
    let rows = 0;
    for (;;) {
      const batch = stmt.all(prevSeq, chunk) as AuditRow[];
      for (const r of batch) {
        const seq = r.seq!;
        if (seq !== prevSeq + 1) return this.bad(rows, seq, r.id, `gap in the chain: expected seq ${prevSeq + 1}, found ${seq}`);
        if ((r.prev_hash ?? '') !== prevHash) return this.bad(rows, seq, r.id, 'prev_hash does not match the previous row');
        if (rowHash(r) !== r.hash) return this.bad(rows, seq, r.id, 'row contents do not match its hash');
        prevSeq = seq;
        prevHash = r.hash!;
        rows++;
      }
      if (batch.length < chunk) break;
      await yieldToLoop();
    }
    const head = this.headStmt.get() as { seq: number; hash: string };
    const running = (this.db.prepare(`SELECT COUNT(*) n FROM audit WHERE status = 'running'`).get() as { n: number }).n;
    if (head.seq !== prevSeq || head.hash !== prevHash) {
      return {
        ok: false,
        rows,
        running,
        head_seq: head.seq,
        first_bad: { seq: head.seq, id: '', reason: 'chain head does not match the last row' },
      };
    }
    return { ok: true, rows, running, head_seq: head.seq };
  }

  private bad(rows: number, seq: number, id: string, reason: string) {
    const head = this.headStmt.get() as { seq: number };
    return { ok: false, rows, running: 0, head_seq: head.seq, first_bad: { seq, id, reason } };
  }

  markPruned(callIds: string[]): void {
    this.flush();
    const stmt = this.db.prepare('UPDATE audit SET artifact_pruned = 1 WHERE id = ?');
    this.db.transaction(() => {
      for (const id of callIds) stmt.run(id);
    })();
  }

  count(): number {
    this.flush();
    return (this.db.prepare('SELECT COUNT(*) n FROM audit').get() as { n: number }).n;
  }
}

function openParams(row: AuditRow): Record<string, unknown> {
  return {
    id: row.id,
    parent_id: row.parent_id,
    owner_pid: row.owner_pid,
    owner_start: row.owner_start,
    started_at: row.started_at,
    tool: row.tool,
    action: row.action,
    target: row.target,
    args: row.args,
    artifact: row.artifact,
    client_name: row.client_name,
    client_version: row.client_version,
  };
}

/** The close of a call whose call.json could not be written says so in its summary. */
/** Writes a call's call.json now; when it cannot be, the close returned names that in the row. */
export function writeRecordOrSay(
  id: string,
  file: RecordFile,
  close: AuditClose,
  log?: { error(msg: string, fields?: Record<string, unknown>): void },
): AuditClose {
  try {
    writeRecordFileSync(file);
    return close;
  } catch (e) {
    log?.error('call.json could not be written', { call_id: id, error: (e as Error).message });
    return closeWithoutRecord(close, e);
  }
}

export function closeWithoutRecord(close: AuditClose, e: unknown): AuditClose {
  return { ...close, summary: `call.json not written (${(e as Error)?.message ?? String(e)}); ${close.summary ?? ''}`.slice(0, 2000) };
}
