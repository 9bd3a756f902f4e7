import { createReadStream, mkdirSync, promises as fsp, realpathSync, statfsSync } from 'node:fs';
import { join, sep } from 'node:path';
import type { SinkOptions } from '../core/define-action.js';
import { invalid, notFound, ToolError } from '../core/errors.js';
import { writeFileAtomic, writeFileAtomicSync } from './atomic-file.js';
import { BoundedSink } from './bounded-sink.js';
import { CALL_FILE_NAME, type HeldFile, type RecordFile } from './record-file.js';
import { sha256Hex } from '../core/hash.js';
import { SpareDirs, writeIntoSpare } from './spare-dirs.js';
import type { Redactor } from './redactor.js';
import { callUri, parseArtifactUri, runUri } from './uri.js';

const SYNC_WRITE_MAX = 256 * 1024;
/** Below this much free space a call's record is written before its reply (DESIGN §6). */
export const LOW_SPACE_BYTES = 64 * 1024 * 1024;
const ROOMY_BYTES = 1024 * 1024 * 1024;

export interface ArtifactEntry {
  name: string;
  uri: string;
  type: 'file' | 'dir';
  bytes?: number;
  modified?: string;
}

export interface ReadResult {
  uri: string;
  /** Total size of the file in bytes. */
  bytes: number;
  offset: number;
  /** Bytes returned (before redaction). */
  returned: number;
  truncated: boolean;
  encoding: 'utf8' | 'base64';
  content: string;
}

/**
 * The file-backed artifact store under one root (DESIGN §4). Every path it touches is built
 * from validated segments and checked against the root's realpath.
 */
export class ArtifactStore {
  private readonly madeDirs = new Set<string>();
  /** call.json goes into this pre-created file when the call's directory came from a spare. */
  private readonly spareFiles = new Map<string, string>();
  private spares: SpareDirs | undefined;
  private rootReal: string | undefined;

  constructor(
    readonly root: string,
    private readonly redactor: Redactor,
    private readonly limits: () => { artifact_max_bytes: number; inline_max_bytes: number },
  ) {}

  private ensureDir(dir: string): void {
    if (this.madeDirs.has(dir)) return;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.madeDirs.add(dir);
    if (this.madeDirs.size > 10000) this.madeDirs.clear();
  }

  callDir(callId: string): string {
    const dir = join(this.root, 'calls', callId);
    if (this.madeDirs.has(dir)) return dir;
    this.spares ??= new SpareDirs(join(this.root, 'calls'));
    const taken = this.spares.take(dir);
    if (taken) {
      this.madeDirs.add(dir);
      if (taken.spareFile) this.spareFiles.set(callId, taken.spareFile);
      if (this.madeDirs.size > 10000) this.madeDirs.clear();
      return dir;
    }
    this.ensureDir(dir);
    return dir;
  }

  /**
   * Whether the artifacts file system has room to spare (statfs, a few µs). When it does not,
   * calls write call.json before replying, so a full disk fails the call instead of its record.
   */
  hasRoom(now = Date.now()): boolean {
    // plenty of room (a GiB and more) is taken as still there for a second
    if (now < this.roomyUntil) return true;
    try {
      const st = statfsSync(this.realRoot());
      const free = st.bavail * st.bsize;
      if (free >= ROOMY_BYTES) this.roomyUntil = now + 1000;
      return free >= LOW_SPACE_BYTES;
    } catch {
      return false;
    }
  }

  private roomyUntil = 0;

  /**
   * call.json of a call recorded after its reply (DESIGN §6, docs/DECISIONS.md): redacted here,
   * written by the record worker (or on the main thread right after the reply). Takes the spare file of a directory the
   * call already made, so nothing is left behind.
   */
  recordFile(callId: string, data: string, extra?: HeldFile[]): RecordFile {
    const dir = join(this.root, 'calls', callId);
    const spareFile = this.spareFiles.get(callId);
    this.spareFiles.delete(callId);
    return { dir, path: join(dir, 'call.json'), spareFile, data: this.redactor.redact(data), ...(extra?.length ? { extra } : {}) };
  }

  /**
   * A small file of a call as writeCallFile would store it (name checked, redacted unless raw),
   * not written: it goes out with the call's call.json (recordFile), the way a read's record does.
   */
  holdCallFile(
    callId: string,
    name: string,
    data: string | Buffer,
    raw = false,
  ): HeldFile & { uri: string; bytes: number; sha256: string } {
    const out = this.storedForm(name, data, raw);
    const buf = typeof out === 'string' ? Buffer.from(out, 'utf8') : out;
    return { name, data: buf, uri: callUri(callId, name), bytes: buf.length, sha256: sha256Hex(buf) };
  }

  /** Set by the runtime: resolves once a call's record (call.json included) is written. */
  waitRecorded: (callId: string) => Promise<void> = () => Promise.resolve();
  /** Set by the runtime: resolves once every call's record is written (listing calls/). */
  waitAllRecorded: () => Promise<void> = () => Promise.resolve();

  /** Leaves no spare directories behind. */
  close(): Promise<void> {
    return this.spares?.close() ?? Promise.resolve();
  }

  runDir(runbook: string, runId: string): string {
    const dir = join(this.root, 'runs', runbook, runId);
    this.ensureDir(dir);
    return dir;
  }

  /** A call file's name checked and its contents as stored: redacted unless raw. */
  private storedForm(name: string, data: string | Buffer, raw: boolean): string | Buffer {
    this.checkName(name);
    return raw ? data : typeof data === 'string' ? this.redactor.redact(data) : this.redactor.redactBuffer(data);
  }

  private checkName(name: string): void {
    if (!CALL_FILE_NAME.test(name)) throw invalid(`artifact file name ${JSON.stringify(name)} is not allowed`);
  }

  sink(callId: string, name: string, inlineDefault: number, opts: SinkOptions = {}): BoundedSink {
    this.checkName(name);
    const limits = this.limits();
    return new BoundedSink({
      name,
      path: join(this.callDir(callId), name),
      uri: callUri(callId, name),
      inlineBytes: opts.inlineBytes ?? inlineDefault,
      artifactMaxBytes: limits.artifact_max_bytes,
      redactor: opts.raw ? undefined : this.redactor,
    });
  }

  async writeCallFile(
    callId: string,
    name: string,
    data: string | Buffer,
    raw = false,
  ): Promise<{ uri: string; bytes: number; path: string; sha256: string }> {
    const out = this.storedForm(name, data, raw);
    const path = join(this.callDir(callId), name);
    // small files: synchronous writes beat a thread-pool round trip per syscall (DESIGN §6)
    const spare = name === 'call.json' ? this.spareFiles.get(callId) : undefined;
    if (spare) {
      this.spareFiles.delete(callId);
      writeIntoSpare(spare, path, out);
    } else if (Buffer.byteLength(out) <= SYNC_WRITE_MAX) writeFileAtomicSync(path, out);
    else await writeFileAtomic(path, out);
    return { uri: callUri(callId, name), bytes: Buffer.byteLength(out), path, sha256: sha256Hex(out) };
  }

  async writeRunFile(runbook: string, runId: string, name: string, data: string): Promise<string> {
    this.checkName(name);
    const path = join(this.runDir(runbook, runId), name);
    await writeFileAtomic(path, this.redactor.redact(data));
    return runUri(runbook, runId, name);
  }

  private realRoot(): string {
    if (!this.rootReal) {
      mkdirSync(this.root, { recursive: true, mode: 0o700 });
      this.rootReal = realpathSync(this.root);
    }
    return this.rootReal;
  }

  /** Maps a URI to a path inside the root; refuses symlinks and anything outside. */
  async resolve(uri: string): Promise<{ path: string; type: 'file' | 'dir' }> {
    const segs = parseArtifactUri(uri);
    // a call answered a moment ago may still be writing its call.json
    if (segs[0] === 'calls') await (segs[1] === undefined ? this.waitAllRecorded() : this.waitRecorded(segs[1]));
    const root = this.realRoot();
    const path = join(root, ...segs);
    let st;
    try {
      st = await fsp.lstat(path);
    } catch {
      throw notFound(`no artifact at ${uri}`, 'list artifacts with artifacts {action:"list"}; old ones may have been pruned');
    }
    if (st.isSymbolicLink()) throw invalid(`${uri} is a symlink, which artifact reads refuse`);
    const real = await fsp.realpath(path);
    if (real !== root && !real.startsWith(root + sep)) throw invalid(`${uri} resolves outside the artifacts root`);
    return { path: real, type: st.isDirectory() ? 'dir' : 'file' };
  }

  async listDir(uri: string): Promise<ArtifactEntry[]> {
    const { path, type } = await this.resolve(uri);
    if (type !== 'dir') throw invalid(`${uri} is a file, not a directory`);
    const base = uri.endsWith('/') ? uri : `${uri}/`;
    const names = (await fsp.readdir(path, { withFileTypes: true })).filter((d) => !d.name.startsWith('.'));
    const out: ArtifactEntry[] = [];
    for (const d of names) {
      if (d.isSymbolicLink()) continue;
      const st = await fsp.stat(join(path, d.name)).catch(() => undefined);
      if (!st) continue;
      out.push({
        name: d.name,
        uri: d.isDirectory() ? `${base}${d.name}/` : `${base}${d.name}`,
        type: d.isDirectory() ? 'dir' : 'file',
        bytes: d.isDirectory() ? undefined : st.size,
        modified: st.mtime.toISOString(),
      });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Reads a slice of an artifact file, redacted. `tail` reads the last `maxBytes`. Binary
   * content (invalid UTF-8) comes back base64.
   */
  async read(uri: string, opts: { offset?: number; maxBytes: number; tail?: boolean }): Promise<ReadResult> {
    const { path, type } = await this.resolve(uri);
    if (type === 'dir') throw invalid(`${uri} is a directory`, 'use action "list" with this uri to see its files');
    const st = await fsp.stat(path);
    const size = st.size;
    let offset = opts.tail ? Math.max(0, size - opts.maxBytes) : (opts.offset ?? 0);
    if (offset < 0) offset = 0;
    const len = Math.max(0, Math.min(opts.maxBytes, size - offset));
    const fh = await fsp.open(path, 'r');
    let buf: Buffer;
    try {
      buf = Buffer.alloc(len);
      let read = 0;
      while (read < len) {
        const r = await fh.read(buf, read, len - read, offset + read);
        if (r.bytesRead === 0) break;
        read += r.bytesRead;
      }
      buf = buf.subarray(0, read);
    } finally {
      await fh.close();
    }
    const redacted = this.redactor.redactBuffer(buf);
    const text = redacted.toString('utf8');
    const binary = looksBinary(buf);
    return {
      uri,
      bytes: size,
      offset,
      returned: buf.length,
      truncated: offset > 0 || offset + buf.length < size,
      encoding: binary ? 'base64' : 'utf8',
      content: binary ? redacted.toString('base64') : text,
    };
  }

  /** Streams a whole artifact file (for stdin_ref / body_ref), bounded by `maxBytes`. */
  async openStream(uri: string, maxBytes = Number.MAX_SAFE_INTEGER): Promise<{ stream: NodeJS.ReadableStream; bytes: number }> {
    const { path, type } = await this.resolve(uri);
    if (type === 'dir') throw invalid(`${uri} is a directory, not a file`);
    const st = await fsp.stat(path);
    if (st.size > maxBytes) {
      throw new ToolError('LIMIT_EXCEEDED', `${uri} is ${st.size} bytes, over the ${maxBytes}-byte bound`);
    }
    return { stream: createReadStream(path), bytes: st.size };
  }

  /** Reads a whole artifact as text up to a bound (templates), failing clearly past it. */
  async readAll(uri: string, maxBytes: number): Promise<Buffer> {
    const { path, type } = await this.resolve(uri);
    if (type === 'dir') throw invalid(`${uri} is a directory, not a file`);
    const st = await fsp.stat(path);
    if (st.size > maxBytes) {
      throw new ToolError('LIMIT_EXCEEDED', `${uri} is ${st.size} bytes, over the ${maxBytes}-byte template bound`, {
        hint: 'raise limits.template_max_bytes in policy.json, or pass the artifact by reference (stdin_ref / body_ref)',
      });
    }
    return fsp.readFile(path);
  }

  /** Deletes call and run directories older than `days`; returns the call ids removed. */
  async prune(days: number, now = Date.now()): Promise<{ calls: string[]; runs: number }> {
    const cutoff = now - days * 86400_000;
    const calls: string[] = [];
    let runs = 0;
    const callsDir = join(this.root, 'calls');
    for (const d of await fsp.readdir(callsDir).catch(() => [] as string[])) {
      if (d.startsWith('.')) continue;
      const p = join(callsDir, d);
      const st = await fsp.lstat(p).catch(() => undefined);
      if (st && st.isDirectory() && st.mtimeMs < cutoff) {
        await fsp.rm(p, { recursive: true, force: true });
        calls.push(d);
      }
    }
    const runsDir = join(this.root, 'runs');
    for (const rb of await fsp.readdir(runsDir).catch(() => [] as string[])) {
      for (const id of await fsp.readdir(join(runsDir, rb)).catch(() => [] as string[])) {
        const p = join(runsDir, rb, id);
        const st = await fsp.lstat(p).catch(() => undefined);
        if (st && st.isDirectory() && st.mtimeMs < cutoff) {
          await fsp.rm(p, { recursive: true, force: true });
          runs++;
        }
      }
    }
    this.madeDirs.clear();
    return { calls, runs };
  }
}

function looksBinary(buf: Buffer): boolean {
  const n = Math.min(buf.length, 4096);
  for (let i = 0; i < n; i++) if (buf[i] === 0) return true;
  return !isValidUtf8(buf.subarray(0, n));
}

function isValidUtf8(buf: Buffer): boolean {
  let start = 0;
  // a slice may begin inside a multi-byte character
  while (start < 3 && start < buf.length && (buf[start]! & 0xc0) === 0x80) start++;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(start), { stream: true });
    return true;
  } catch {
    return false;
  }
}
