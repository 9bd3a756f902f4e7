import { randomBytes } from 'node:crypto';
import { Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { ClientChannel } from 'ssh2';
import type { Logger } from '../core/define-action.js';
import { ToolError } from '../core/errors.js';
import { withTimeout, type SshEndpoint, type SshPool } from './ssh-pool.js';

/**
 * Remote command execution over a pooled connection. sshd drops `env` that AcceptEnv does not
 * list and has no cwd, so both are applied by a small POSIX prologue before the command
 * (DESIGN §5). sshd makes the session's shell a session and process-group leader (setsid), so
 * the prologue reports `$$` — the group id — and a timeout or cancel can stop the whole group:
 * a signal on the channel, then `kill -TERM/-KILL -<pgid>` over a second channel.
 */

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Single-quotes one word for a POSIX shell. */
export function shQuote(s: string): string {
  if (s.includes('\0')) throw new ToolError('INVALID_ARGUMENT', 'NUL bytes cannot be passed to a remote shell');
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command sent to sshd. It runs in the login shell (as `ssh host cmd` would), the prologue
 * on lines of its own so that a syntax error in the command cannot stop the pid report, cd or env.
 */
export function buildRemoteCommand(command: string, opts: { cwd?: string; env?: Record<string, string>; token: string }): string {
  const lines = [`printf '%s%s\\n' ${shQuote(opts.token)} "$$"`];
  if (opts.cwd !== undefined) lines.push(`cd ${shQuote(opts.cwd)} || exit 1`);
  const env = Object.entries(opts.env ?? {});
  for (const [k] of env)
    if (!ENV_NAME.test(k)) throw new ToolError('INVALID_ARGUMENT', `env name ${JSON.stringify(k)} is not a valid variable name`);
  if (env.length) lines.push(`export ${env.map(([k, v]) => `${k}=${shQuote(v)}`).join(' ')}`);
  lines.push(command);
  return lines.join('\n');
}

/** Strips the prologue's `<token><pid>` first line from stdout and reports the pid. */
class PidLineStripper extends Transform {
  private buf: Buffer | undefined = Buffer.alloc(0);

  constructor(
    private readonly token: string,
    private readonly onPid: (pid: number) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.buf === undefined) return cb(null, chunk);
    this.buf = Buffer.concat([this.buf, chunk]);
    const prefix = this.buf.subarray(0, Math.min(this.buf.length, this.token.length)).toString('latin1');
    if (!this.token.startsWith(prefix)) return this.passAll(cb);
    const nl = this.buf.indexOf(0x0a);
    if (nl < 0) {
      if (this.buf.length > this.token.length + 24) return this.passAll(cb);
      return cb();
    }
    const line = this.buf.subarray(0, nl).toString('latin1').replace(/\r$/, '');
    const m = /^(\d+)$/.exec(line.slice(this.token.length));
    if (!line.startsWith(this.token) || !m) return this.passAll(cb);
    this.onPid(Number(m[1]));
    const rest = this.buf.subarray(nl + 1);
    this.buf = undefined;
    cb(null, rest.length ? rest : undefined);
  }

  private passAll(cb: TransformCallback): void {
    const b = this.buf;
    this.buf = undefined;
    cb(null, b && b.length ? b : undefined);
  }

  override _flush(cb: TransformCallback): void {
    const b = this.buf;
    this.buf = undefined;
    cb(null, b && b.length ? b : undefined);
  }
}

export interface ExecRequest {
  command: string;
  cwd?: string;
  env?: Record<string, string>;
  pty?: boolean;
  /** Streamed to the remote stdin; EOF after it when `stdinEof` (default true). */
  stdin?: Readable | Buffer;
  stdinEof?: boolean;
  stdout: Writable;
  stderr: Writable;
  signal: AbortSignal;
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  log: Logger;
}

export interface ExecOutcome {
  exit_code: number | null;
  signal: string | null;
  core_dumped?: boolean;
  /** Remote pid (= process group id) of the command's shell. */
  pid: number | undefined;
}

export async function sshExec(pool: SshPool, ep: SshEndpoint, req: ExecRequest): Promise<ExecOutcome> {
  const token = `__INFRA_PGID_${randomBytes(6).toString('hex')}__=`;
  const remote = buildRemoteCommand(req.command, { cwd: req.cwd, env: req.env, token });
  const { channel, state, closed: closedP, lease } = await pool.exec(ep, remote, { pty: req.pty }, req.signal);
  let pid: number | undefined;
  let pidWaiter: (() => void) | undefined;

  const strip = new PidLineStripper(token, (p) => {
    pid = p;
    pidWaiter?.();
  });
  channel.pipe(strip).pipe(req.stdout);
  channel.stderr.pipe(req.stderr);
  if (req.onOutput) {
    strip.on('data', (c: Buffer) => req.onOutput!('stdout', c));
    channel.stderr.on('data', (c: Buffer) => req.onOutput!('stderr', c));
  }
  const outputDone = Promise.all([finished(strip).catch(() => undefined), finished(channel.stderr).catch(() => undefined)]);

  // stdin
  const eof = req.stdinEof !== false;
  if (req.stdin === undefined) {
    if (eof) channel.end();
  } else if (Buffer.isBuffer(req.stdin)) {
    if (eof) channel.end(req.stdin);
    else channel.write(req.stdin);
  } else {
    const src = req.stdin;
    src.on('error', (e) => req.log.warn('ssh stdin source failed', { target: ep.name, error: e.message }));
    src.pipe(channel, { end: eof });
    channel.once('close', () => src.unpipe(channel));
  }

  const aborted = new Promise<void>((resolve) => {
    if (req.signal.aborted) resolve();
    else req.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  try {
    await Promise.race([closedP, aborted]);
    if (!state.closed && req.signal.aborted) {
      await stopRemote(
        pool,
        ep,
        channel,
        () => pid,
        (w) => (pidWaiter = w),
        () => state.exit !== undefined,
        req.log,
      );
      throw req.signal.reason;
    }
    await outputDone;
  } finally {
    lease.release();
  }
  const exit = state.exit;
  if (!exit) {
    throw new ToolError('CONNECTION_FAILED', `${ep.name}: the connection was lost before the command reported its exit status`, {
      hint: 'the remote command may still be running or may have finished; check before running it again',
      retryable: false,
    });
  }
  return { exit_code: exit.code, signal: exit.signal, ...(exit.core ? { core_dumped: true } : {}), pid };
}

/**
 * Stops the remote command's process group: TERM on the channel, then TERM, a short wait and
 * KILL for the group over a second channel, so a `sleep 1000` started by the command is gone too.
 * Bounded: a wedged connection cannot hold the caller.
 */
async function stopRemote(
  pool: SshPool,
  ep: SshEndpoint,
  channel: ClientChannel,
  getPid: () => number | undefined,
  setPidWaiter: (w: () => void) => void,
  exited: () => boolean,
  log: Logger,
): Promise<void> {
  try {
    channel.signal('TERM');
  } catch {
    /* channel gone */
  }
  if (getPid() === undefined && !exited()) {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 1000);
      setPidWaiter(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
  const pid = getPid();
  if (pid !== undefined && pid > 1) {
    const script =
      `kill -TERM -${pid} 2>/dev/null || kill -TERM ${pid} 2>/dev/null; i=0; ` +
      `while kill -0 -${pid} 2>/dev/null && [ $i -lt 10 ]; do sleep 0.1; i=$((i+1)); done; ` +
      `kill -KILL -${pid} 2>/dev/null; exit 0`;
    const signal = AbortSignal.timeout(2500);
    try {
      const { channel: k, closed, lease } = await pool.exec(ep, script, {}, signal);
      try {
        k.resume();
        k.stderr.resume();
        k.end();
        await withTimeout(
          () => closed,
          2500,
          signal,
          () => undefined,
          () => new Error('kill did not finish'),
        );
      } finally {
        lease.release();
      }
    } catch (e) {
      log.warn('could not kill the remote process group', { target: ep.name, pid, error: (e as Error).message });
    }
  }
  try {
    channel.close();
  } catch {
    /* gone */
  }
}
