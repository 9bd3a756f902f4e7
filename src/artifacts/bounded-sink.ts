import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, promises as fsp, type WriteStream } from 'node:fs';
import { Writable } from 'node:stream';
import type { Sink, SinkResult } from '../core/define-action.js';
import { ToolError } from '../core/errors.js';
import { tempNameFor } from './atomic-file.js';
import type { Redactor } from './redactor.js';

/** Keeps the first and last bytes of a stream within a cap, with flat memory. */
export class HeadTail {
  private head: Buffer[] = [];
  private headLen = 0;
  private tail: Buffer[] = [];
  private tailLen = 0;
  total = 0;
  private readonly headCap: number;
  private readonly tailCap: number;

  constructor(readonly cap: number) {
    this.headCap = Math.ceil(cap / 2);
    this.tailCap = cap - this.headCap;
  }

  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.headLen < this.headCap) {
      const take = Math.min(chunk.length, this.headCap - this.headLen);
      this.head.push(chunk.subarray(0, take));
      this.headLen += take;
      chunk = chunk.subarray(take);
    }
    if (chunk.length === 0 || this.tailCap === 0) return;
    this.tail.push(Buffer.from(chunk.subarray(Math.max(0, chunk.length - this.tailCap))));
    this.tailLen += Math.min(chunk.length, this.tailCap);
    while (this.tailLen - (this.tail[0]?.length ?? 0) >= this.tailCap && this.tail.length > 1) {
      this.tailLen -= this.tail.shift()!.length;
    }
  }

  get truncated(): boolean {
    return this.total > this.cap;
  }

  /** The inline text: whole stream, or head + marker + tail. */
  text(): string {
    const head = Buffer.concat(this.head);
    if (!this.truncated) return Buffer.concat([head, ...this.tail]).toString('utf8');
    let tail = Buffer.concat(this.tail);
    if (tail.length > this.tailCap) tail = tail.subarray(tail.length - this.tailCap);
    const omitted = this.total - head.length - tail.length;
    return `${trimUtf8End(head)}\n…[${omitted} bytes omitted; full output in the artifact]…\n${trimUtf8Start(tail)}`;
  }
}

function trimUtf8End(b: Buffer): string {
  // drop an incomplete multi-byte sequence at the end
  let end = b.length;
  for (let i = 1; i <= 3 && i <= b.length; i++) {
    const c = b[b.length - i]!;
    if ((c & 0xc0) === 0xc0) {
      const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      if (i < need) end = b.length - i;
      break;
    }
    if ((c & 0x80) === 0) break;
  }
  return b.subarray(0, end).toString('utf8');
}

function trimUtf8Start(b: Buffer): string {
  let start = 0;
  while (start < b.length && start < 3 && (b[start]! & 0xc0) === 0x80) start++;
  return b.subarray(start).toString('utf8');
}

export interface BoundedSinkOptions {
  name: string;
  path: string;
  uri: string;
  inlineBytes: number;
  artifactMaxBytes: number;
  redactor: Redactor | undefined;
}

/**
 * A Writable into one artifact file: redacts (unless raw) while streaming, hashes what it
 * stores, keeps head+tail inline, caps the file at artifact_max_bytes. The file is written
 * under a temp name and renamed when complete, so a half-written stream is never presented
 * as a finished artifact.
 */
export class BoundedSink extends Writable implements Sink {
  readonly sinkName: string;
  private readonly opts: BoundedSinkOptions;
  private readonly tmpPath: string;
  private readonly hash: Hash = createHash('sha256');
  private readonly headTail: HeadTail;
  private file: WriteStream | undefined;
  private readonly redactor: Redactor | undefined;
  private carry = '';
  private inBytes = 0;
  private stored = 0;
  private limited = false;
  private result: Promise<SinkResult> | undefined;
  private finishedResolve!: () => void;
  private finishedReject!: (e: unknown) => void;
  private readonly finished: Promise<void>;

  constructor(opts: BoundedSinkOptions) {
    super({ highWaterMark: 64 * 1024 });
    this.opts = opts;
    this.sinkName = opts.name;
    this.tmpPath = tempNameFor(opts.path);
    this.headTail = new HeadTail(opts.inlineBytes);
    this.finished = new Promise<void>((res, rej) => {
      this.finishedResolve = res;
      this.finishedReject = rej;
    });
    this.finished.catch(() => undefined);
    this.redactor = opts.redactor;
  }

  get bytesWritten(): number {
    return this.inBytes;
  }

  private openFile(): WriteStream {
    if (!this.file) {
      this.file = createWriteStream(this.tmpPath, { mode: 0o600, flags: 'w' });
      this.file.on('error', (e) => this.destroy(artifactWriteError(e)));
    }
    return this.file;
  }

  /** Receives redacted bytes. */
  private store(chunk: Buffer): boolean {
    this.headTail.push(chunk);
    const room = this.opts.artifactMaxBytes - this.stored;
    if (room <= 0) {
      this.limited = true;
      return true;
    }
    if (chunk.length > room) {
      chunk = chunk.subarray(0, room);
      this.limited = true;
    }
    this.stored += chunk.length;
    this.hash.update(chunk);
    return this.openFile().write(chunk);
  }

  override _write(chunk: Buffer | string, enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, enc) : chunk;
    this.inBytes += buf.length;
    let out = buf;
    if (this.redactor) {
      const pass = this.redactor.streamPass(this.carry + buf.toString('latin1'), false);
      this.carry = pass.carry;
      out = Buffer.from(pass.out, 'latin1');
    }
    const ok = out.length === 0 ? true : this.store(out);
    if (!ok && this.file) this.file.once('drain', () => cb());
    else cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (this.redactor && this.carry.length) {
      const pass = this.redactor.streamPass(this.carry, true);
      this.carry = '';
      if (pass.out.length) this.store(Buffer.from(pass.out, 'latin1'));
    }
    const file = this.openFile();
    file.end(() => {
      fsp
        .rename(this.tmpPath, this.opts.path)
        .then(() => {
          this.finishedResolve();
          cb();
        })
        .catch((e: unknown) => {
          const err = artifactWriteError(e as Error);
          this.finishedReject(err);
          cb(err);
        });
    });
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (err) this.finishedReject(err);
    const file = this.file;
    if (!file) return cb(err);
    // leave no half-written file behind under the final name; 'close' waits until the temp
    // file is closed and gone, so its space is free again (a full disk: call.json needs it)
    const remove = (): void => {
      fsp
        .rm(this.tmpPath, { force: true })
        .catch(() => undefined)
        .finally(() => cb(err));
    };
    if (file.closed) return remove();
    file.once('close', remove);
    file.destroy();
  }

  /** Abandons an unfinished stream: destroys it and resolves once its temp file is removed. */
  discard(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.once('close', () => resolve());
      if (!this.destroyed) this.destroy();
    });
  }

  done(): Promise<SinkResult> {
    if (!this.result) {
      if (!this.writableEnded && !this.destroyed) this.end();
      this.result = this.finished.then(() => ({
        name: this.opts.name,
        bytes: this.inBytes,
        stored_bytes: this.stored,
        sha256: this.hash.digest('hex'),
        inline: this.headTail.text(),
        truncated: this.headTail.truncated,
        artifact_limited: this.limited,
        uri: this.opts.uri,
      }));
    }
    return this.result;
  }

  /** Summary of what is known so far (used when the call fails before done()). */
  snapshot(): { bytes: number; inline: string } {
    const held = this.redactor && this.carry ? this.redactor.previewHeld(this.carry) : '';
    if (!held) return { bytes: this.inBytes, inline: this.headTail.text() };
    const view = new HeadTail(this.headTail.cap);
    view.push(Buffer.from(this.headTail.text(), 'utf8'));
    view.push(Buffer.from(held, 'latin1'));
    return { bytes: this.inBytes, inline: view.text() };
  }
}

function artifactWriteError(e: Error): ToolError {
  const code = (e as NodeJS.ErrnoException).code;
  const full = code === 'ENOSPC' || code === 'EFBIG' || code === 'EDQUOT';
  return new ToolError(full ? 'LIMIT_EXCEEDED' : 'INTERNAL', `writing the artifact failed: ${e.message}`, {
    hint: full ? 'the artifacts directory is out of space; free some (infra artifacts prune) and retry' : undefined,
    retryable: full,
  });
}
