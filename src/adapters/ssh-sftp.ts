import { createHash, randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { SFTPWrapper, Stats } from 'ssh2';
import { ToolError } from '../core/errors.js';
import type { Lease, SshEndpoint, SshPool } from './ssh-pool.js';

/** SFTP transfers over a pooled connection (one sftp channel per call). */

const STATUS = { NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4 } as const;

class Hasher extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly limit = Number.MAX_SAFE_INTEGER) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) return cb(new ToolError('LIMIT_EXCEEDED', `transfer exceeds ${this.limit} bytes`));
    this.hash.update(chunk);
    cb(null, chunk);
  }
}

function sftpError(e: unknown, ep: SshEndpoint, what: string, path: string): ToolError {
  if (e instanceof ToolError) return e;
  const err = e as Error & { code?: number };
  if (err.code === STATUS.NO_SUCH_FILE) return new ToolError('NOT_FOUND', `${ep.name}: ${path} does not exist (${what})`, { cause: e });
  if (err.code === STATUS.PERMISSION_DENIED) {
    return new ToolError('UPSTREAM_ERROR', `${ep.name}: permission denied on ${path} (${what})`, {
      hint: `the remote user ${ep.username} cannot ${what} it`,
      retryable: false,
      cause: e,
    });
  }
  return new ToolError('UPSTREAM_ERROR', `${ep.name}: sftp ${what} ${path} failed: ${err.message}`, { cause: e });
}

async function openSftp(pool: SshPool, ep: SshEndpoint, signal: AbortSignal): Promise<{ sftp: SFTPWrapper; lease: Lease }> {
  const { value, lease } = await pool.channel(
    ep,
    signal,
    (client) => new Promise<SFTPWrapper>((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s)))),
    (s) => s.end(),
  );
  return { sftp: value, lease };
}

const p = <T>(fn: (cb: (err: Error | null | undefined, v?: T) => void) => void): Promise<T> =>
  new Promise<T>((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));

async function statOrUndefined(sftp: SFTPWrapper, path: string): Promise<Stats | undefined> {
  try {
    return await p<Stats>((cb) => sftp.stat(path, cb));
  } catch (e) {
    if ((e as { code?: number }).code === STATUS.NO_SUCH_FILE) return undefined;
    throw e;
  }
}

async function mkdirs(sftp: SFTPWrapper, dir: string): Promise<void> {
  const parts = posix.normalize(dir).split('/');
  let cur = dir.startsWith('/') ? '/' : '';
  for (const part of parts) {
    if (!part) continue;
    cur = cur === '/' || cur === '' ? `${cur}${part}` : `${cur}/${part}`;
    const st = await statOrUndefined(sftp, cur);
    if (st) {
      if (!st.isDirectory()) throw new ToolError('INVALID_ARGUMENT', `${cur} exists and is not a directory`);
      continue;
    }
    await p<void>((cb) => sftp.mkdir(cur, cb));
  }
}

export interface UploadRequest {
  remotePath: string;
  source: Readable;
  mode?: number;
  createDirs?: boolean;
  overwrite?: boolean;
  signal: AbortSignal;
}

export interface UploadOutcome {
  remote_path: string;
  bytes: number;
  sha256: string;
  atomic: boolean;
}

/**
 * Writes to a temp name next to the target, then renames it over the target
 * (posix-rename@openssh.com), so a reader never sees a half-written file.
 */
export async function sftpUpload(pool: SshPool, ep: SshEndpoint, req: UploadRequest): Promise<UploadOutcome> {
  const { sftp, lease } = await openSftp(pool, ep, req.signal);
  const onAbort = (): void => sftp.end();
  req.signal.addEventListener('abort', onAbort, { once: true });
  const dir = posix.dirname(req.remotePath);
  const tmp = posix.join(dir, `.${posix.basename(req.remotePath)}.infra-${randomBytes(4).toString('hex')}.tmp`);
  let wroteTmp = false;
  try {
    if (req.createDirs) await mkdirs(sftp, dir).catch((e) => Promise.reject(sftpError(e, ep, 'create directory', dir)));
    const existing = await statOrUndefined(sftp, req.remotePath).catch((e) => Promise.reject(sftpError(e, ep, 'stat', req.remotePath)));
    if (existing?.isDirectory())
      throw new ToolError('INVALID_ARGUMENT', `${ep.name}: ${req.remotePath} is a directory`, {
        hint: 'give the full path of the file to write',
      });
    if (existing && req.overwrite === false) {
      throw new ToolError('INVALID_ARGUMENT', `${ep.name}: ${req.remotePath} exists and overwrite is false`);
    }
    const mode = req.mode ?? (existing ? existing.mode & 0o7777 : 0o644);
    const hasher = new Hasher();
    wroteTmp = true;
    await pipeline(req.source, hasher, sftp.createWriteStream(tmp, { mode }) as unknown as Writable, { signal: req.signal }).catch((e) =>
      Promise.reject(req.signal.aborted ? req.signal.reason : sftpError(e, ep, 'write', req.remotePath)),
    );
    await p<void>((cb) => sftp.chmod(tmp, mode, cb)).catch(() => undefined);
    let atomic = true;
    try {
      await p<void>((cb) => sftp.ext_openssh_rename(tmp, req.remotePath, cb));
    } catch {
      // no posix-rename extension: plain SFTP rename refuses to replace an existing file
      atomic = false;
      if (existing) await p<void>((cb) => sftp.unlink(req.remotePath, cb)).catch(() => undefined);
      await p<void>((cb) => sftp.rename(tmp, req.remotePath, cb)).catch((e) =>
        Promise.reject(sftpError(e, ep, 'rename into place', req.remotePath)),
      );
    }
    wroteTmp = false;
    return { remote_path: req.remotePath, bytes: hasher.bytes, sha256: hasher.hash.digest('hex'), atomic };
  } catch (e) {
    if (req.signal.aborted) throw req.signal.reason;
    throw sftpError(e, ep, 'write', req.remotePath);
  } finally {
    req.signal.removeEventListener('abort', onAbort);
    if (wroteTmp && !req.signal.aborted) await p<void>((cb) => sftp.unlink(tmp, cb)).catch(() => undefined);
    sftp.end();
    lease.release();
  }
}

export interface DownloadRequest {
  remotePath: string;
  dest: Writable;
  signal: AbortSignal;
  maxBytes?: number;
}

export interface DownloadOutcome {
  remote_path: string;
  bytes: number;
  sha256: string;
  mode: string;
  mtime: string;
}

export async function sftpDownload(pool: SshPool, ep: SshEndpoint, req: DownloadRequest): Promise<DownloadOutcome> {
  const { sftp, lease } = await openSftp(pool, ep, req.signal);
  const onAbort = (): void => sftp.end();
  req.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const st = await p<Stats>((cb) => sftp.stat(req.remotePath, cb)).catch((e) => Promise.reject(sftpError(e, ep, 'read', req.remotePath)));
    if (st.isDirectory())
      throw new ToolError('INVALID_ARGUMENT', `${ep.name}: ${req.remotePath} is a directory`, {
        hint: 'download one file at a time (or tar it with exec first)',
      });
    if (req.maxBytes !== undefined && st.size > req.maxBytes) {
      throw new ToolError('LIMIT_EXCEEDED', `${ep.name}: ${req.remotePath} is ${st.size} bytes, over the ${req.maxBytes}-byte bound`, {
        hint: 'raise limits.artifact_max_bytes in policy.json',
      });
    }
    const hasher = new Hasher(req.maxBytes);
    await pipeline(sftp.createReadStream(req.remotePath) as unknown as Readable, hasher, req.dest, { signal: req.signal }).catch((e) =>
      Promise.reject(req.signal.aborted ? req.signal.reason : sftpError(e, ep, 'read', req.remotePath)),
    );
    return {
      remote_path: req.remotePath,
      bytes: hasher.bytes,
      sha256: hasher.hash.digest('hex'),
      mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
      mtime: new Date(st.mtime * 1000).toISOString(),
    };
  } finally {
    req.signal.removeEventListener('abort', onAbort);
    sftp.end();
    lease.release();
  }
}
