import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Client, ClientChannel, ConnectConfig } from 'ssh2';
import type { Logger } from '../core/define-action.js';
import { isToolError, ToolError } from '../core/errors.js';
import { hostKeyAlgorithms, knownKeyTypes, verifyHostKey, type HostKeyPolicy, type HostKeyVerdict } from './ssh-host-keys.js';

/**
 * One pooled SSH connection per target (more when channels run out), reused across calls and
 * concurrent execs, closed when idle, re-established after a drop. Only src/adapters/ imports
 * ssh2; it is imported lazily so start-up stays fast.
 */

/** A target resolved from targets.json: secrets already resolved, never logged. */
export interface SshEndpoint {
  /** Target name (pool key). */
  name: string;
  host: string;
  port: number;
  username: string;
  privateKey?: Buffer | string;
  passphrase?: string;
  password?: string;
  /** ssh-agent socket path. */
  agent?: string;
  hostKey: HostKeyPolicy;
  keepaliveIntervalMs: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  jump?: SshEndpoint;
  /** Hash of everything above (secrets included, kept in memory only): a changed config gets a new connection. */
  id: string;
}

export interface PoolOptions {
  /** Channels per connection before another connection is opened (OpenSSH's MaxSessions is 10). */
  channelsPerConnection?: number;
  /** Connections per target; beyond channels × connections, calls wait for a free channel. */
  connectionsPerTarget?: number;
}

interface Conn {
  ep: SshEndpoint;
  ready: Promise<Client>;
  client: Client | undefined;
  active: number;
  cap: number;
  dead: boolean;
  /** True once a channel has been opened on it (so a failure means the connection went bad). */
  proven: boolean;
  idleTimer: NodeJS.Timeout | undefined;
  jumpLease: Lease | undefined;
  connectMs: number;
  hostKey: HostKeyVerdict | undefined;
}

export interface ChannelState {
  exit: { code: number | null; signal: string | null; core: boolean } | undefined;
  closed: boolean;
}

export interface ExecChannel {
  channel: ClientChannel;
  state: ChannelState;
  /** Resolves when the channel has closed. */
  closed: Promise<void>;
  lease: Lease;
}

export interface Lease {
  readonly client: Client;
  /** True when this lease waited for the connection to be established. */
  readonly fresh: boolean;
  readonly connectMs: number;
  readonly hostKey: HostKeyVerdict | undefined;
  release(): void;
  /** Releases and drops the connection (it failed under us). */
  discard(why: string): void;
}

let ssh2Module: Promise<typeof import('ssh2')> | undefined;
const loadSsh2 = (): Promise<typeof import('ssh2')> => (ssh2Module ??= import('ssh2'));

export class SshPool {
  private readonly conns = new Map<string, Conn[]>();
  private readonly waiters = new Map<string, Array<() => void>>();
  private readonly channelsPerConnection: number;
  private readonly connectionsPerTarget: number;
  private closed = false;

  constructor(
    private readonly log: Logger,
    opts: PoolOptions = {},
  ) {
    this.channelsPerConnection = opts.channelsPerConnection ?? 8;
    this.connectionsPerTarget = opts.connectionsPerTarget ?? 4;
  }

  /** Live connections per target (for tests and `check`). */
  stats(): Record<string, { connections: number; active: number }> {
    const out: Record<string, { connections: number; active: number }> = {};
    for (const [name, list] of this.conns) {
      const live = list.filter((c) => !c.dead);
      out[name] = { connections: live.length, active: live.reduce((n, c) => n + c.active, 0) };
    }
    return out;
  }

  /** A channel slot on a ready connection to `ep`, connecting if needed. */
  async lease(ep: SshEndpoint, signal: AbortSignal): Promise<Lease> {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      if (this.closed) throw new ToolError('CANCELLED', 'the ssh pool is closed (server stopping)');
      const list = this.listFor(ep.name);
      for (const c of list) if (c.ep.id !== ep.id && !c.dead && c.active === 0) this.drop(c, 'target configuration changed');
      const alive = list.filter((c) => !c.dead && c.ep.id === ep.id);
      let conn = alive.find((c) => c.active < c.cap);
      if (!conn && alive.length < this.connectionsPerTarget) conn = this.open(ep);
      if (!conn) {
        await this.waitForSlot(ep.name, signal);
        continue;
      }
      conn.active++;
      if (conn.idleTimer) clearTimeout(conn.idleTimer);
      conn.idleTimer = undefined;
      const fresh = conn.client === undefined;
      let client: Client;
      try {
        client = await raceAbort(conn.ready, signal);
      } catch (e) {
        this.releaseConn(conn);
        throw e;
      }
      if (conn.dead) {
        // dropped between ready and now: try again on another connection
        this.releaseConn(conn);
        continue;
      }
      let released = false;
      const c = conn;
      return {
        client,
        fresh,
        connectMs: conn.connectMs,
        hostKey: conn.hostKey,
        release: () => {
          if (released) return;
          released = true;
          this.releaseConn(c);
        },
        discard: (why: string) => {
          if (released) return;
          released = true;
          this.drop(c, why);
          this.releaseConn(c);
        },
      };
    }
  }

  /**
   * Opens a channel with `open` on a pooled connection. A pooled connection that cannot open a
   * channel in time (wedged, or dropped without us noticing) is dropped and the call retried
   * once on a fresh connection; a channel refused for MaxSessions lowers that connection's cap.
   */
  async channel<T>(
    ep: SshEndpoint,
    signal: AbortSignal,
    open: (client: Client) => Promise<T>,
    cleanupLate: (value: T) => void,
  ): Promise<{ value: T; lease: Lease }> {
    let reconnects = 0;
    let capRetries = 0;
    for (;;) {
      const lease = await this.lease(ep, signal);
      const conn = this.connOf(ep.name, lease.client);
      try {
        const value = await withTimeout(
          () => open(lease.client),
          ep.connectTimeoutMs,
          signal,
          cleanupLate,
          () => new ToolError('CONNECTION_FAILED', `${ep.name}: no answer to a channel open within ${ep.connectTimeoutMs} ms`),
        );
        if (conn) conn.proven = true;
        return { value, lease };
      } catch (e) {
        if (signal.aborted) {
          lease.release();
          throw signal.reason;
        }
        const msg = (e as Error).message ?? String(e);
        if (/Channel open failure/i.test(msg) && conn && conn.active > 1 && capRetries < 8) {
          // the server's MaxSessions is lower than our channel count: stay below it
          capRetries++;
          conn.cap = Math.max(1, conn.active - 1);
          this.log.debug('ssh channel refused; lowering per-connection channel cap', { target: ep.name, cap: conn.cap });
          lease.release();
          continue;
        }
        lease.discard(`channel open failed: ${msg}`);
        if (!lease.fresh && reconnects === 0) {
          reconnects++;
          this.log.info('ssh pooled connection failed; reconnecting once', { target: ep.name, error: msg });
          continue;
        }
        if (isToolError(e)) throw e;
        throw new ToolError('CONNECTION_FAILED', `${ep.name}: could not open a channel: ${msg}`, { cause: e });
      }
    }
  }

  /**
   * Opens an exec channel. Exit status and close are tracked from the moment the channel exists:
   * a fast command's exit-status, EOF and close can arrive in the same read as the exec reply
   * (typically through a jump host), before any later listener could be attached.
   */
  async exec(ep: SshEndpoint, command: string, opts: { pty?: boolean }, signal: AbortSignal): Promise<ExecChannel> {
    const { value, lease } = await this.channel(
      ep,
      signal,
      (client) =>
        new Promise<Omit<ExecChannel, 'lease'>>((resolve, reject) => {
          const cb = (err: Error | undefined, ch: ClientChannel): void => {
            if (err) return reject(err);
            const state: ChannelState = { exit: undefined, closed: false };
            ch.on('error', (e: Error) => this.log.debug('ssh channel error', { target: ep.name, error: e.message }));
            ch.on('exit', (code: number | null, sig?: string, core?: boolean) => {
              state.exit = {
                code: typeof code === 'number' ? code : null,
                signal: sig ? (sig.startsWith('SIG') ? sig : `SIG${sig}`) : null,
                core: !!core,
              };
            });
            const closed = new Promise<void>((r) => ch.once('close', () => ((state.closed = true), r())));
            resolve({ channel: ch, state, closed });
          };
          if (opts.pty) client.exec(command, { pty: { term: 'xterm', cols: 200, rows: 50 } }, cb);
          else client.exec(command, cb);
        }),
      (x) => x.channel.close(),
    );
    return { ...value, lease };
  }

  private connOf(name: string, client: Client): Conn | undefined {
    return this.conns.get(name)?.find((c) => c.client === client);
  }

  private listFor(name: string): Conn[] {
    let list = this.conns.get(name);
    if (!list) {
      list = [];
      this.conns.set(name, list);
    }
    return list;
  }

  private waitForSlot(name: string, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const q = this.waiters.get(name) ?? [];
      this.waiters.set(name, q);
      const wake = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        const i = q.indexOf(wake);
        if (i >= 0) q.splice(i, 1);
        reject(signal.reason);
      };
      q.push(wake);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private wake(name: string): void {
    const q = this.waiters.get(name);
    const w = q?.shift();
    if (w) w();
  }

  private wakeAll(name: string): void {
    const q = this.waiters.get(name);
    if (!q) return;
    for (const w of q.splice(0)) w();
  }

  private releaseConn(c: Conn): void {
    c.active = Math.max(0, c.active - 1);
    if (!c.dead && c.active === 0) {
      if (c.idleTimer) clearTimeout(c.idleTimer);
      c.idleTimer = setTimeout(() => {
        if (c.active === 0) this.drop(c, 'idle');
      }, c.ep.idleTimeoutMs);
      c.idleTimer.unref();
    }
    this.wake(c.ep.name);
  }

  private drop(c: Conn, why: string): void {
    if (c.dead) return;
    c.dead = true;
    if (c.idleTimer) clearTimeout(c.idleTimer);
    this.log.debug('ssh connection closed', { target: c.ep.name, why });
    const list = this.conns.get(c.ep.name);
    if (list) {
      const i = list.indexOf(c);
      if (i >= 0) list.splice(i, 1);
    }
    try {
      c.client?.end();
    } catch {
      /* already closed */
    }
    // end() waits for the server; a wedged server never answers, so do not wait long
    const client = c.client;
    if (client) setTimeout(() => client.destroy(), 1000).unref();
    const jl = c.jumpLease;
    c.jumpLease = undefined;
    jl?.release();
    this.wakeAll(c.ep.name);
  }

  private open(ep: SshEndpoint): Conn {
    const conn: Conn = {
      ep,
      ready: Promise.resolve(undefined as unknown as Client),
      client: undefined,
      active: 0,
      cap: this.channelsPerConnection,
      dead: false,
      proven: false,
      idleTimer: undefined,
      jumpLease: undefined,
      connectMs: 0,
      hostKey: undefined,
    };
    const started = Date.now();
    conn.ready = this.connect(ep, conn).then(
      (client) => {
        conn.client = client;
        conn.connectMs = Date.now() - started;
        if (conn.dead) client.destroy();
        return client;
      },
      (e: unknown) => {
        this.drop(conn, 'connect failed');
        throw e;
      },
    );
    conn.ready.catch(() => undefined);
    this.listFor(ep.name).push(conn);
    return conn;
  }

  /**
   * A connection outside the pool (for `check`): handshake, host key, auth, one `true` exec,
   * then closed. Jump hosts still come from the pool.
   */
  async probe(
    ep: SshEndpoint,
    signal: AbortSignal,
  ): Promise<{ connectMs: number; latencyMs: number; hostKey: HostKeyVerdict | undefined }> {
    const holder: { hostKey?: HostKeyVerdict } = {};
    const started = Date.now();
    const client = await raceAbort(this.connect(ep, undefined, holder), signal);
    const connectMs = Date.now() - started;
    try {
      const t0 = Date.now();
      await withTimeout(
        () =>
          new Promise<void>((resolve, reject) =>
            client.exec('true', (err, ch) => {
              if (err) return reject(err);
              ch.resume();
              ch.stderr.resume();
              ch.once('close', () => resolve());
            }),
          ),
        ep.connectTimeoutMs,
        signal,
        () => undefined,
        () => new ToolError('CONNECTION_FAILED', `${ep.name}: connected, but a command did not complete within ${ep.connectTimeoutMs} ms`),
      );
      return { connectMs, latencyMs: Date.now() - t0, hostKey: holder.hostKey };
    } finally {
      client.end();
      setTimeout(() => client.destroy(), 1000).unref();
    }
  }

  /**
   * The host key a target presents and how it compares with known_hosts or the pin, without
   * authenticating (for `infra ssh trust`). The handshake is abandoned right after the key.
   */
  async hostKeyOf(ep: SshEndpoint, signal: AbortSignal): Promise<HostKeyVerdict> {
    const holder: { hostKey?: HostKeyVerdict; reject?: boolean } = { reject: true };
    try {
      const client = await raceAbort(this.connect(ep, undefined, holder), signal);
      client.destroy();
    } catch (e) {
      if (!holder.hostKey) throw e;
    }
    if (!holder.hostKey) throw new ToolError('CONNECTION_FAILED', `${ep.name}: the server presented no host key`);
    return holder.hostKey;
  }

  private async connect(
    ep: SshEndpoint,
    conn: Conn | undefined,
    holder: { hostKey?: HostKeyVerdict; reject?: boolean } = {},
  ): Promise<Client> {
    // the import (~70 ms cold) overlaps the TCP connect or the jump's forward
    const ssh2 = loadSsh2();
    ssh2.catch(() => undefined);
    let sock: Duplex;
    let sockCleanup: (() => void) | undefined;
    if (ep.jump) {
      const jumpSignal = AbortSignal.timeout(ep.jump.connectTimeoutMs + ep.connectTimeoutMs);
      const jl = await this.lease(ep.jump, jumpSignal);
      if (conn) conn.jumpLease = jl;
      else sockCleanup = () => jl.release();
      try {
        sock = await withTimeout(
          () =>
            new Promise<ClientChannel>((resolve, reject) =>
              jl.client.forwardOut('127.0.0.1', 0, ep.host, ep.port, (err, ch) => (err ? reject(err) : resolve(ch))),
            ),
          ep.connectTimeoutMs,
          jumpSignal,
          (ch) => ch.close(),
          () =>
            new ToolError(
              'CONNECTION_FAILED',
              `${ep.name}: jump host ${ep.jump!.name} did not open a forward within ${ep.connectTimeoutMs} ms`,
            ),
        );
      } catch (e) {
        if (conn) conn.jumpLease = undefined;
        jl.release();
        if (isToolError(e)) throw e;
        throw new ToolError(
          'CONNECTION_FAILED',
          `${ep.name}: jump host ${ep.jump.name} could not reach ${ep.host}:${ep.port}: ${(e as Error).message}`,
          {
            hint: `check that ${ep.jump.name} can reach ${ep.host}:${ep.port} and that its sshd allows TCP forwarding (AllowTcpForwarding)`,
            cause: e,
          },
        );
      }
    } else {
      const s = netConnect({ host: ep.host, port: ep.port });
      // ssh2 leaves Nagle on: ~40 ms per small exec round trip (DESIGN §6)
      s.setNoDelay(true);
      s.setKeepAlive(true, 15_000);
      sock = s;
    }
    let earlyError: Error | undefined;
    const onEarlyError = (e: Error): void => void (earlyError ??= e);
    sock.on('error', onEarlyError);
    let Client: typeof import('ssh2').Client;
    try {
      ({ Client } = await ssh2);
    } catch (e) {
      sock.destroy();
      sockCleanup?.();
      throw e;
    }
    sock.removeListener('error', onEarlyError);
    if (earlyError) {
      sock.destroy();
      sockCleanup?.();
      throw mapConnectError(Object.assign(earlyError, { level: 'client-socket' }), undefined, ep);
    }
    const client = new Client();
    let verdict: HostKeyVerdict | undefined;
    const cfg: ConnectConfig = {
      sock,
      username: ep.username,
      readyTimeout: ep.connectTimeoutMs,
      keepaliveInterval: ep.keepaliveIntervalMs,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer): boolean => {
        verdict = verifyHostKey(ep.hostKey, ep.host, ep.port, key);
        holder.hostKey = verdict;
        if (conn) conn.hostKey = verdict;
        return holder.reject ? false : verdict.ok;
      },
      algorithms: { serverHostKey: hostKeyAlgorithms(knownKeyTypes(ep.hostKey, ep.host, ep.port)) as never },
    };
    if (ep.privateKey !== undefined) cfg.privateKey = ep.privateKey;
    if (ep.passphrase !== undefined) cfg.passphrase = ep.passphrase;
    /** A keyboard-interactive prompt infra did not answer (reported if authentication fails). */
    let unanswered: string | undefined;
    if (ep.password !== undefined) {
      cfg.password = ep.password;
      // hosts that check passwords through PAM ask for them by keyboard-interactive only
      cfg.tryKeyboard = true;
      const password = ep.password;
      let rounds = 0;
      client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) => {
        const r = answerPrompts(prompts, password, ++rounds);
        unanswered ??= r.unanswered;
        finish(r.answers);
      });
    }
    if (ep.agent !== undefined) cfg.agent = ep.agent;
    return new Promise<Client>((resolve, reject) => {
      let settled = false;
      const fail = (e: unknown): void => {
        if (settled) return;
        settled = true;
        sock.destroy();
        client.destroy();
        sockCleanup?.();
        reject(mapConnectError(e, verdict, ep, unanswered));
      };
      client.once('ready', () => {
        if (settled) return;
        settled = true;
        client.removeListener('error', fail);
        client.on('error', (e: Error) => {
          this.log.debug('ssh connection error', { target: ep.name, error: e.message });
          if (conn) this.drop(conn, `error: ${e.message}`);
        });
        client.on('close', () => {
          if (conn) this.drop(conn, 'closed by the server or the network');
          sockCleanup?.();
        });
        resolve(client);
      });
      client.on('error', fail);
      client.once('close', () => fail(new Error('connection closed during the handshake')));
      try {
        client.connect(cfg);
      } catch (e) {
        fail(e);
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const list of this.conns.values()) for (const c of [...list]) this.drop(c, 'pool closed');
    for (const name of this.waiters.keys()) this.wakeAll(name);
  }
}

/** Keyboard-interactive rounds answered with the password; later ones (a re-prompt after a wrong password) get none. */
const KBD_MAX_ROUNDS = 2;

/**
 * Answers to one keyboard-interactive round: the password for hidden prompts that ask for a
 * password, nothing for anything else (a one-time code, a question, a visible prompt), which
 * is named in `unanswered` so that the failure can say what the server wanted.
 */
export function answerPrompts(
  prompts: { prompt: string; echo?: boolean }[],
  password: string,
  round: number,
): { answers: string[]; unanswered?: string } {
  let unanswered: string | undefined;
  const answers = prompts.map((p) => {
    const text = p.prompt.trim();
    // a password prompt past the rounds is a re-prompt after a wrong password, not an unknown question
    if (!p.echo && PASSWORD_PROMPT.test(text) && !OTP_PROMPT.test(text)) return round <= KBD_MAX_ROUNDS ? password : '';
    unanswered ??= text.slice(0, 200);
    return '';
  });
  return unanswered === undefined ? { answers } : { answers, unanswered };
}

/** "Password:" and PAM's translations of it (sshd prompts in the server's locale). */
const PASSWORD_PROMPT =
  /\bpassword\b|\bpasswort\b|mot de passe|contraseña|\bsenha\b|wachtwoord|lösenord|\bhasło\b|пароль|パスワード|密码|密碼|암호/i;
const OTP_PROMPT = /verification|one[- ]time|\botp\b|token|passcode|\bcode\b/i;

/** What went wrong while connecting, as the error code a person can act on. */
export function mapConnectError(e: unknown, verdict: HostKeyVerdict | undefined, ep: SshEndpoint, unanswered?: string): ToolError {
  if (isToolError(e)) return e;
  const err = e as Error & { level?: string; code?: string };
  const msg = err?.message ?? String(e);
  const where = `${ep.name} (${ep.username}@${ep.host}:${ep.port}${ep.jump ? ` via ${ep.jump.name}` : ''})`;
  if (verdict && !verdict.ok) {
    const what = verdict.revoked
      ? `is marked @revoked in known_hosts`
      : verdict.reason === 'unknown'
        ? `is not known (${ep.hostKey.kind === 'pin' ? 'no pin' : 'no known_hosts entry'})`
        : ep.hostKey.kind === 'pin'
          ? 'does not match the pinned host_key_sha256'
          : 'differs from the one in known_hosts';
    return new ToolError('HOST_KEY_MISMATCH', `host key of ${where} ${what}; connection refused`, {
      hint:
        `the server presented ${verdict.keyType} ${verdict.fingerprint}. ` +
        (verdict.reason === 'changed'
          ? 'A changed key can mean a reinstalled host or a man-in-the-middle: verify it out of band before trusting it. '
          : '') +
        `A human can pin it with \`infra ssh trust ${ep.name}\` (or set "host_key_sha256": "${verdict.fingerprint}" for ${ep.name} in targets.json)`,
      retryable: false,
      details: {
        reason: verdict.reason,
        fingerprint: verdict.fingerprint,
        key_type: verdict.keyType,
        target: ep.name,
        ...(verdict.revoked ? { revoked: true } : {}),
      },
      cause: e,
    });
  }
  if (/parse privateKey|passphrase|Encrypted private/i.test(msg)) {
    return new ToolError('AUTH_FAILED', `${where}: cannot use the private key: ${msg}`, {
      hint: 'check key_file / private_key, and give the key passphrase by reference ("passphrase": "${env:NAME}") if the key is encrypted',
      retryable: false,
      cause: e,
    });
  }
  if (err.level === 'client-authentication') {
    const methods = [
      ep.privateKey !== undefined && 'publickey',
      ep.password !== undefined && 'password, keyboard-interactive',
      ep.agent !== undefined && 'agent',
    ].filter(Boolean);
    if (unanswered !== undefined) {
      return new ToolError(
        'AUTH_FAILED',
        `authentication failed for ${where}: the server asked ${JSON.stringify(unanswered)} (keyboard-interactive), which infra does not answer`,
        {
          hint: 'infra answers password prompts only, never one-time codes or questions; use a key (key_file, private_key or agent) for this host',
          retryable: false,
          cause: e,
        },
      );
    }
    return new ToolError('AUTH_FAILED', `authentication failed for ${where} (tried: ${methods.join(', ') || 'none'})`, {
      hint: "check the username, that the key is in the server's authorized_keys, or the password the reference resolves to",
      retryable: false,
      cause: e,
    });
  }
  if (err.level === 'client-timeout') {
    return new ToolError('CONNECTION_FAILED', `${where}: no SSH handshake within ${ep.connectTimeoutMs} ms`, {
      hint: 'the host may be down, firewalled or overloaded; connect_timeout_ms in targets.json sets the wait',
      cause: e,
    });
  }
  return new ToolError('CONNECTION_FAILED', `${where}: ${err.code ? `${err.code}: ` : ''}${msg}`, {
    hint: err.code === 'ECONNREFUSED' ? 'nothing listens on that port: is sshd running?' : 'check host, port and the network path',
    cause: e,
  });
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Runs `fn` bounded by `ms` and `signal`; a value arriving too late is handed to `late` to clean up. */
export function withTimeout<T>(
  fn: () => Promise<T>,
  ms: number,
  signal: AbortSignal,
  late: (v: T) => void,
  onTimeout: () => Error,
): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      if (done) return;
      finish();
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      if (done) return;
      finish();
      reject(onTimeout());
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
    let p: Promise<T>;
    try {
      p = fn();
    } catch (e) {
      finish();
      reject(e);
      return;
    }
    p.then(
      (v) => {
        if (done) return late(v);
        finish();
        resolve(v);
      },
      (e: unknown) => {
        if (done) return;
        finish();
        reject(e);
      },
    );
  });
}
