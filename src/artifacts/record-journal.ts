import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { ownerAlive, type Owner } from '../audit/owner.js';
import { CALL_FILE_NAME, recordBytes, writeRecordFileSync, type HeldFile, type RecordFile } from './record-file.js';

/** A call id as it may name a directory under calls/ (what artifact URIs accept, no dot first). */
const CALL_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const SPARE_FILE = '.call.json.spare';
/** Past this many records waiting, this many bytes, or this age of the oldest, they are laid out at once. */
export const JOURNAL_MAX_PENDING = 4096;
export const JOURNAL_MAX_BYTES = 16 * 1024 * 1024;
export const JOURNAL_MAX_AGE_MS = 10_000;

interface Log {
  error(msg: string, fields?: Record<string, unknown>): void;
}

export type JournalRole = 'worker' | 'main';

const JOURNAL_NAME = /^\.journal-(\d+)-(\d+)-(?:worker|main)\.jsonl$/;
/** In the journal directory once calls/ was searched for journals of older versions (kept there). */
const CALLS_SEARCHED = '.calls-searched';

/**
 * Where journals live: `artifacts/.journals/`, next to calls/, so that finding the journals of
 * ended processes at each start reads a directory of a few files, not one entry per call.
 */
export function journalDir(callsDir: string): string {
  return join(dirname(callsDir), '.journals');
}

export function journalPath(callsDir: string, owner: Owner, role: JournalRole): string {
  return join(journalDir(callsDir), `.journal-${owner.pid}-${owner.start}-${role}.jsonl`);
}

/**
 * The call.json of reads, kept in one append-only file before each is laid out as
 * `calls/<call_id>/call.json` (docs/DECISIONS.md, "call.json of reads is laid out when idle").
 * Creating a directory and a file costs the kernel far more than appending a line to an open
 * file, so a burst of reads appends its records here (one write per batch) and the files are
 * made when the server is idle, when a reader asks for one, when too many wait, and at stop. A
 * process that ends before that leaves its journal; the next start lays it out
 * (`recoverJournals`). Records are redacted before they get here.
 */
export class RecordJournal {
  private fd: number | undefined;
  private readonly pending = new Map<string, RecordFile>();
  private oldest = 0;
  private failures = 0;
  /** Bytes in the journal file (it is emptied when nothing is left to lay out). */
  private bytes = 0;
  /** Bytes the waiting records hold in memory. */
  private pendingBytes = 0;
  readonly path: string;

  /** `role`: whose journal this is in the process ('worker' for the record worker, 'main'). */
  constructor(
    readonly callsDir: string,
    owner: Owner,
    role: JournalRole,
    private readonly log?: Log,
  ) {
    this.path = journalPath(callsDir, owner, role);
  }

  get size(): number {
    return this.pending.size;
  }

  has(id: string): boolean {
    return this.pending.has(id);
  }

  /**
   * Appends records in one write. False when the journal cannot take them (the caller writes
   * those files itself): nothing of them is kept here then.
   */
  append(records: { id: string; file: RecordFile }[], now = Date.now()): boolean {
    if (records.length === 0) return true;
    let text = '';
    for (const r of records) text += `${journalLine(r.id, r.file)}\n`;
    const buf = Buffer.from(text, 'utf8');
    let off = 0;
    try {
      if (this.fd === undefined) {
        mkdirSync(this.callsDir, { recursive: true, mode: 0o700 });
        mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
        this.fd = openSync(this.path, 'a', 0o600);
      }
      while (off < buf.length) off += writeSync(this.fd, buf, off);
    } catch (e) {
      // a write cut short is taken back, so the next append starts on a line of its own
      if (off > 0 && this.fd !== undefined) {
        try {
          ftruncateSync(this.fd, this.bytes);
        } catch {
          /* recovery skips a line that is not a whole record */
        }
      }
      this.failures++;
      if (this.failures === 1 || this.failures % 100 === 0)
        this.log?.error('the record journal cannot be written; writing call.json files directly', {
          path: this.path,
          error: (e as Error).message,
        });
      return false;
    }
    this.bytes += buf.length;
    if (this.pending.size === 0) this.oldest = now;
    for (const r of records) {
      const before = this.pending.get(r.id);
      if (before) this.pendingBytes -= recordBytes(before);
      this.pending.set(r.id, r.file);
      this.pendingBytes += recordBytes(r.file);
    }
    return true;
  }

  /** Whether the records waiting should be laid out now rather than at the next idle moment. */
  due(now = Date.now()): boolean {
    return (
      this.pending.size >= JOURNAL_MAX_PENDING ||
      this.pendingBytes >= JOURNAL_MAX_BYTES ||
      (this.pending.size > 0 && now - this.oldest >= JOURNAL_MAX_AGE_MS)
    );
  }

  /**
   * Lays out the given records (all when `ids` is undefined; at most `limit`) as call.json files. One that cannot
   * be written stays in the journal, is logged and is tried again next time. When none is left
   * the journal is emptied.
   */
  layOut(ids?: Iterable<string>, limit = Infinity): void {
    const chosen = (ids === undefined ? [...this.pending.keys()] : [...ids].filter((id) => this.pending.has(id))).slice(0, limit);
    for (const id of chosen) {
      const file = this.pending.get(id)!;
      try {
        writeRecordFileSync(file);
        this.pending.delete(id);
        this.pendingBytes -= recordBytes(file);
      } catch (e) {
        this.log?.error('call.json could not be laid out; it stays in the record journal', {
          call_id: id,
          error: (e as Error).message,
        });
      }
    }
    if (this.pending.size === 0) this.pendingBytes = 0;
    if (this.pending.size === 0 && this.fd !== undefined) {
      try {
        ftruncateSync(this.fd, 0);
        this.bytes = 0;
      } catch {
        /* emptied at the next layout, or laid out again (idempotent) at the next start */
      }
    }
  }

  /** Lays out everything and removes the journal when nothing is left in it (stop). */
  close(): void {
    this.layOut();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    if (this.pending.size === 0) rmSync(this.path, { force: true });
  }
}

/**
 * Lays out the journals that ended processes left (a crash or SIGKILL before their records were
 * laid out), then removes them. Returns how many call.json files were written. The first time
 * for a project, calls/ itself is searched too: the journals of versions that kept them there.
 */
export function recoverJournals(callsDir: string, log?: Log): number {
  if (!existsSync(callsDir)) return 0;
  const dir = journalDir(callsDir);
  let written = 0;
  const recover = (where: string): void => {
    for (const name of readdirSync(where)) {
      const m = JOURNAL_NAME.exec(name);
      if (!m || ownerAlive({ pid: Number(m[1]), start: m[2]! })) continue;
      written += layOutJournal(join(where, name), callsDir, log);
    }
  };
  if (existsSync(dir)) recover(dir);
  if (!existsSync(join(dir, CALLS_SEARCHED))) {
    recover(callsDir);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(join(dir, CALLS_SEARCHED), '', { mode: 0o600 });
    } catch (e) {
      log?.error('the record journal directory could not be made; calls/ will be searched again', { error: (e as Error).message });
    }
  }
  return written;
}

/**
 * Lays out every record of one journal whose call.json is missing, then removes the journal
 * (kept when a file could not be written, for the next try). A line that is not a whole record
 * (the write a crash cut short) or names no plain call id is ignored.
 */
export function layOutJournal(path: string, callsDir: string, log?: Log): number {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return 0;
  }
  let written = 0;
  let failed = false;
  for (const line of text.split('\n')) {
    let rec: { id?: unknown; data?: unknown; files?: unknown };
    try {
      rec = JSON.parse(line) as { id?: unknown; data?: unknown; files?: unknown };
    } catch {
      continue;
    }
    if (!rec || typeof rec.id !== 'string' || typeof rec.data !== 'string' || !CALL_ID.test(rec.id)) continue;
    const extra = heldFilesOf(rec.files);
    if (extra === undefined) continue;
    const dir = join(callsDir, rec.id);
    const file: RecordFile = { dir, path: join(dir, 'call.json'), data: rec.data, ...(extra.length ? { extra } : {}) };
    if (existsSync(file.path)) continue;
    if (existsSync(join(dir, SPARE_FILE))) file.spareFile = join(dir, SPARE_FILE);
    try {
      writeRecordFileSync(file);
      written++;
    } catch (e) {
      failed = true;
      log?.error('call.json from a record journal could not be laid out', { call_id: rec.id, error: (e as Error).message });
    }
  }
  if (!failed) rmSync(path, { force: true });
  return written;
}

/** One journal line: the call id, its call.json, and its held files (base64). */
function journalLine(id: string, f: RecordFile): string {
  if (!f.extra?.length) return JSON.stringify({ id, data: f.data });
  const files = f.extra.map((x) => ({
    name: x.name,
    base64: Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength).toString('base64'),
  }));
  return JSON.stringify({ id, data: f.data, files });
}

/** The held files of a journal line; undefined when they are malformed (the line is skipped). */
function heldFilesOf(files: unknown): HeldFile[] | undefined {
  if (files === undefined) return [];
  if (!Array.isArray(files)) return undefined;
  const out: HeldFile[] = [];
  for (const f of files as { name?: unknown; base64?: unknown }[]) {
    if (!f || typeof f.name !== 'string' || typeof f.base64 !== 'string' || !CALL_FILE_NAME.test(f.name) || f.name === 'call.json')
      return undefined;
    out.push({ name: f.name, data: Buffer.from(f.base64, 'base64') });
  }
  return out;
}
