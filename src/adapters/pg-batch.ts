import { EventEmitter } from 'node:events';

/**
 * One extended-protocol round trip: every step is its own Parse/Bind/Execute (so a step holds
 * exactly one statement: Postgres refuses "select 1; drop table t" at Parse), and one Sync ends
 * the batch. When a step fails the server skips every later step up to the Sync, so a batch
 * `BEGIN READ ONLY; set timeout; <user statement>; ROLLBACK` never runs the user statement
 * outside its transaction, and costs one round trip.
 *
 * This is a pg "Submittable": the pg Client hands it the wire connection and forwards every
 * backend message of the batch to the handle* methods below.
 */

export interface BatchStep {
  text: string;
  values?: unknown[] | undefined;
  /**
   * Describe the portal and keep up to `keep` decoded rows (later rows are counted, not
   * kept). `fetch` limits the Execute (0 = all rows): the server stops and reports the portal
   * suspended, so a huge result is never produced.
   */
  rows?: { keep: number; fetch?: number } | undefined;
  /** Parse and describe only; never executed. Must come after every executed step. */
  parseOnly?: boolean | undefined;
}

export interface FieldInfo {
  name: string;
  dataTypeID: number;
  dataTypeModifier: number;
  tableID: number;
}

export interface StepResult {
  /** Command tag word(s): SELECT, INSERT, UPDATE, CREATE TABLE … */
  command: string | undefined;
  /** The count from the command tag; null when the tag has none or the portal was suspended. */
  rowCount: number | null;
  fields: FieldInfo[];
  rows: unknown[][];
  /** Rows the server sent for this step (kept or not). */
  seen: number;
  /** The Execute row limit was reached: more rows exist. */
  suspended: boolean;
  empty: boolean;
}

export type ParserLookup = (oid: number) => (text: string) => unknown;

/** The parts of pg's wire connection a Submittable uses (not in @types/pg). */
export interface WireConnection {
  parse(msg: { text: string; name?: string; types?: number[] }): void;
  bind(msg: {
    portal?: string;
    statement?: string;
    values?: unknown[];
    binary?: boolean;
    valueMapper?: (v: unknown, i: number) => unknown;
  }): void;
  describe(msg: { type: 'S' | 'P'; name?: string }): void;
  execute(msg: { portal?: string; rows?: number }): void;
  flush(): void;
  sync(): void;
  sendCopyFail(msg: string): void;
  stream: { cork?: () => void; uncork?: () => void };
}

interface RowDescriptionMsg {
  fields: { name: string; tableID: number; dataTypeID: number; dataTypeModifier: number }[];
}

/** Thrown for an error the server sent; carries the index of the failing step. */
export interface BatchError extends Error {
  step?: number;
}

export interface BatchOptions {
  /**
   * Resolve `promise` once the first `settleAfter` steps are done: the batch asks the server to
   * flush its output there (a Flush message between the steps, all sent in one write), so the
   * results arrive while the server still runs the rest (the batch's own tail: ROLLBACK and
   * cleanup); `finished` says when that ended. When a step fails the server skips the rest up
   * to the Sync, the tail included, as in any batch.
   */
  settleAfter?: number | undefined;
}

export class StatementBatch extends EventEmitter {
  readonly results: StepResult[];
  /** pg reads these off a submittable. */
  readonly text: string;
  name: undefined;
  private readonly execCount: number;
  private current = 0;
  private parsers: ((t: string) => unknown)[] = [];
  private settled = false;
  private resolveFn!: (r: StepResult[]) => void;
  private rejectFn!: (e: unknown) => void;
  readonly promise: Promise<StepResult[]>;
  /**
   * Settles when nothing of the batch is left to wait for: at its ReadyForQuery, or when a step
   * fails. False only when the tail failed after `promise` had resolved (the caller, who already
   * has its results, never hears of that error otherwise). Never rejects.
   */
  readonly finished: Promise<boolean>;
  private finish!: (ok: boolean) => void;
  /** Steps whose results settle `promise` (options.settleAfter); a Flush follows them. */
  private readonly headCount: number;
  copyBytes = 0;

  constructor(
    private readonly steps: BatchStep[],
    private readonly lookup: ParserLookup,
    opts: BatchOptions = {},
  ) {
    super();
    let seenParseOnly = false;
    let exec = 0;
    for (const s of steps) {
      if (s.parseOnly) seenParseOnly = true;
      else if (seenParseOnly) throw new Error('parse-only steps must come after executed steps');
      else exec++;
    }
    this.execCount = exec;
    const split = opts.settleAfter;
    if (split !== undefined && (split < 1 || split >= steps.length || seenParseOnly))
      throw new Error('settleAfter must leave steps on both sides and the batch must have no parse-only step');
    this.headCount = split ?? steps.length;
    this.text = steps.map((s) => s.text).join(';\n');
    this.results = steps.map(() => ({ command: undefined, rowCount: null, fields: [], rows: [], seen: 0, suspended: false, empty: false }));
    this.promise = new Promise<StepResult[]>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    // nobody may be listening yet when the connection dies; the caller awaits `promise`
    this.promise.catch(() => undefined);
    this.finished = new Promise<boolean>((resolve) => {
      this.finish = resolve;
    });
  }

  submit(connection: WireConnection): void {
    connection.stream.cork?.();
    try {
      for (let i = 0; i < this.steps.length; i++) {
        const step = this.steps[i]!;
        connection.parse({ text: step.text, name: '', types: [] });
        if (step.parseOnly) {
          connection.describe({ type: 'S', name: '' });
          continue;
        }
        connection.bind({ portal: '', statement: '', values: (step.values ?? []).map(toWireValue), binary: false });
        if (step.rows) connection.describe({ type: 'P', name: '' });
        connection.execute({ portal: '', rows: step.rows?.fetch ?? 0 });
        if (i + 1 === this.headCount && this.headCount < this.steps.length) connection.flush();
      }
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
  }

  /** A step ended; when it was the last of the head (options.settleAfter), the results are in. */
  private stepDone(): void {
    this.current++;
    if (this.current === this.headCount && this.headCount < this.steps.length && !this.settled) {
      this.settled = true;
      this.resolveFn(this.results);
    }
  }

  private step(): StepResult | undefined {
    return this.current < this.execCount ? this.results[this.current] : undefined;
  }

  handleRowDescription(msg: RowDescriptionMsg): void {
    const r = this.step();
    if (!r) return; // a parse-only step's description
    r.fields = msg.fields.map((f) => ({
      name: f.name,
      dataTypeID: f.dataTypeID,
      dataTypeModifier: f.dataTypeModifier,
      tableID: f.tableID,
    }));
    this.parsers = r.fields.map((f) => this.lookup(f.dataTypeID));
  }

  handleDataRow(msg: { fields: (string | null)[] }): void {
    const r = this.step();
    if (!r) return;
    r.seen++;
    const keep = this.steps[this.current]?.rows?.keep ?? 0;
    if (r.rows.length >= keep) return;
    const row = new Array<unknown>(msg.fields.length);
    for (let i = 0; i < msg.fields.length; i++) {
      const v = msg.fields[i];
      row[i] = v === null || v === undefined ? null : (this.parsers[i] ?? String)(v);
    }
    r.rows.push(row);
  }

  handleCommandComplete(msg: { text: string }): void {
    const r = this.step();
    if (r) {
      // "SELECT 3", "INSERT 0 3" (oid, count), "CREATE TABLE": the count is the last number
      const text = msg.text;
      let end = text.length;
      let count: number | null = null;
      for (let sp = text.lastIndexOf(' '); sp > 0 && isDigits(text, sp + 1, end); sp = text.lastIndexOf(' ', sp - 1)) {
        if (count === null) count = Number(text.slice(sp + 1, end));
        end = sp;
      }
      r.command = text.slice(0, end);
      r.rowCount = count;
    }
    this.stepDone();
  }

  handlePortalSuspended(): void {
    const r = this.step();
    if (r) r.suspended = true;
    this.stepDone();
  }

  handleEmptyQuery(): void {
    const r = this.step();
    if (r) r.empty = true;
    this.stepDone();
  }

  handleCopyInResponse(connection: WireConnection): void {
    connection.sendCopyFail('COPY FROM STDIN is not available through infra (no data source); load data with INSERT through execute');
  }

  handleCopyData(msg: { chunk?: Buffer }): void {
    this.copyBytes += msg.chunk?.length ?? 0;
  }

  /**
   * pg hands the error to the batch and forgets it: the ReadyForQuery that follows is not
   * passed on, so the batch is finished here.
   */
  handleError(err: BatchError): void {
    this.finish(!this.settled);
    if (this.settled) return;
    this.settled = true;
    if (err && typeof err === 'object') err.step = Math.min(this.current, this.steps.length - 1);
    this.rejectFn(err);
  }

  handleReadyForQuery(): void {
    this.finish(true);
    if (this.settled) return;
    this.settled = true;
    this.resolveFn(this.results);
  }
}

function isDigits(s: string, from: number, to: number): boolean {
  if (from >= to) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** JSON values from tool arguments → Postgres text parameters. */
export function toWireValue(v: unknown): string | null | Buffer {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Buffer.isBuffer(v)) return v;
  if (Array.isArray(v)) return arrayLiteral(v);
  return JSON.stringify(v);
}

function arrayLiteral(a: unknown[]): string {
  const items = a.map((v) => {
    if (v === null || v === undefined) return 'NULL';
    if (Array.isArray(v)) return arrayLiteral(v);
    const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  });
  return `{${items.join(',')}}`;
}
