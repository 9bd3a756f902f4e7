import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { ClientConfig, Pool, PoolClient } from 'pg';
import type { CallCancel, Logger } from '../core/define-action.js';
import { ToolError } from '../core/errors.js';
import type { Closeable } from '../core/services.js';
import { expandHome } from '../config/paths.js';
import type { PostgresProfile } from '../config/schemas.js';
import { StatementBatch, type BatchOptions, type BatchStep, type ParserLookup, type StepResult, type WireConnection } from './pg-batch.js';
import { isConnectionLost, toolErrorFromPg } from './pg-errors.js';

/*
 * The only place (with pg-batch) that talks to Postgres. Read-only is enforced by Postgres,
 * never by parsing SQL (DESIGN §5): every statement goes through the extended protocol inside
 * BEGIN READ ONLY … ROLLBACK with a transaction-local statement_timeout; a read_only profile
 * refuses logins that could step outside the transaction; timeout and cancel stop the
 * statement on the server with pg_cancel_backend from a separate connection.
 */

type PgModule = typeof import('pg');
let pgModule: Promise<PgModule> | undefined;
/** pg is imported on first use so start-up stays fast. */
export function loadPg(): Promise<PgModule> {
  pgModule ??= import('pg').then((m) => ((m as unknown as { default?: PgModule }).default ?? m) as PgModule);
  return pgModule;
}

type ParseUrl = (s: string) => Record<string, unknown>;
let connStringModule: Promise<ParseUrl> | undefined;
/** pg's own url parser (pg-connection-string), loaded once. */
export function loadUrlParser(): Promise<ParseUrl> {
  connStringModule ??= import('pg-connection-string').then((m) => {
    const mod = m as unknown as { parse?: ParseUrl; default?: { parse: ParseUrl } };
    return (mod.parse ?? mod.default!.parse) as ParseUrl;
  });
  return connStringModule;
}

type CopyStreams = typeof import('pg-copy-streams');
let copyModule: Promise<CopyStreams> | undefined;
function loadCopy(): Promise<CopyStreams> {
  copyModule ??= import('pg-copy-streams').then((m) => ((m as unknown as { default?: CopyStreams }).default ?? m) as CopyStreams);
  return copyModule;
}

/** A profile with its references resolved, ready to connect. */
export interface PgTarget {
  name: string;
  profile: PostgresProfile;
  config: ClientConfig;
  /** host:port/database for messages (no credentials). */
  where: string;
  /** Identity of the connection settings; a changed profile gets a new pool. */
  key: string;
}

export interface PrivilegeReport {
  user: string;
  superuser: boolean;
  roles: string[];
  dblink: string[];
  /** server_version_num */
  serverVersion: number;
  /**
   * Up to WRITES_SHOWN tables or sequences the login may write, looked up only before
   * PostgreSQL 16: there a statement can lift its own READ ONLY with RESET transaction_read_only
   * (16 refuses it); what it then writes is rolled back, but a sequence it advances or sets, and
   * the locks it holds while it runs, are not.
   */
  writes: string[];
  /**
   * The login may execute pg_logical_emit_message and wal_level is logical: a message written
   * with transactional = false is in the WAL for logical decoding consumers whatever the
   * transaction does (a READ ONLY transaction allows it).
   */
  logicalMessages: boolean;
}

const WRITES_SHOWN = 5;

/**
 * Builds the pg connection settings of a profile. `resolve` replaces secret references (and
 * registers their values with the redactor); `addSecret` registers a literal password found in
 * a url. TLS follows libpq's sslmode meanings as far as Node can: prefer behaves as disable.
 */
const targetCache = new WeakMap<PostgresProfile, { key: string; target: PgTarget; until: number }>();
const TARGET_CACHE_MS = 5000;

/**
 * buildTarget, remembered per profile (a reload makes new profile objects) and its resolved
 * references: parsing the url and reading a CA file on every call cost more than the query
 * itself. The references are resolved again at most every few seconds: a changed secret or
 * environment value makes a new target (and pool) within that time.
 */
export function cachedTarget(
  name: string,
  profile: PostgresProfile,
  resolve: (value: string, where: string) => string,
  addSecret: (value: string) => void,
  baseDir: string,
  now = Date.now(),
): PgTarget | Promise<PgTarget> {
  const hit = targetCache.get(profile);
  if (hit && hit.until > now) return hit.target;
  const where = `profiles.json: ${name}`;
  const r = (v: string | undefined, field: string): string => (v === undefined ? '' : resolve(v, `${where}.${field}`));
  const key = [
    name,
    baseDir,
    r(profile.url, 'url'),
    r(profile.host, 'host'),
    r(profile.database, 'database'),
    r(profile.user, 'user'),
    r(profile.password, 'password'),
  ].join('\0');
  if (hit && hit.key === key) {
    hit.until = now + TARGET_CACHE_MS;
    return hit.target;
  }
  return buildTarget(name, profile, resolve, addSecret, baseDir).then((target) => {
    targetCache.set(profile, { key, target, until: now + TARGET_CACHE_MS });
    return target;
  });
}

export async function buildTarget(
  name: string,
  profile: PostgresProfile,
  resolve: (value: string, where: string) => string,
  addSecret: (value: string) => void,
  baseDir: string,
): Promise<PgTarget> {
  const where = `profiles.json: ${name}`;
  const config: ClientConfig & { sslmode?: string } = {};
  if (profile.url) {
    const url = resolve(profile.url, `${where}.url`);
    const parse = await loadUrlParser();
    let parsed: Record<string, unknown>;
    try {
      parsed = parse(url);
    } catch (e) {
      throw new ToolError('CONNECTION_FAILED', `${where}.url is not a valid postgres url: ${(e as Error).message}`, {
        hint: 'use postgres://user@host:5432/database (password by reference)',
        retryable: false,
      });
    }
    if (typeof parsed.host === 'string' && parsed.host) config.host = parsed.host;
    if (parsed.port) config.port = Number(parsed.port);
    if (typeof parsed.database === 'string' && parsed.database) config.database = parsed.database;
    if (typeof parsed.user === 'string' && parsed.user) config.user = parsed.user;
    if (typeof parsed.password === 'string' && parsed.password) {
      config.password = parsed.password;
      addSecret(parsed.password);
    }
    if (typeof parsed.sslmode === 'string') config.sslmode = parsed.sslmode;
    if (typeof parsed.sslrootcert === 'string') config.ssl = { ca: readFileSync(parsed.sslrootcert, 'utf8') };
  }
  if (profile.host) config.host = resolve(profile.host, `${where}.host`);
  if (profile.port) config.port = profile.port;
  if (profile.database) config.database = resolve(profile.database, `${where}.database`);
  if (profile.user) config.user = resolve(profile.user, `${where}.user`);
  if (profile.password) config.password = resolve(profile.password, `${where}.password`);
  if (!config.host && !profile.url) {
    throw new ToolError('CONNECTION_FAILED', `${where} has neither "url" nor "host"`, {
      hint: `give the profile "url": "\${env:DATABASE_URL}" or "host", "database", "user" and "password"`,
      retryable: false,
    });
  }
  const sslmode = profile.sslmode ?? config.sslmode ?? 'disable';
  delete config.sslmode;
  let ca: string | undefined;
  if (profile.ca_file) {
    const path = expandHome(profile.ca_file, baseDir);
    try {
      ca = readFileSync(path, 'utf8');
    } catch (e) {
      throw new ToolError('CONNECTION_FAILED', `${where}.ca_file ${path} cannot be read: ${(e as Error).message}`, { retryable: false });
    }
  }
  const existingCa = typeof config.ssl === 'object' ? config.ssl.ca : undefined;
  switch (sslmode) {
    case 'disable':
    case 'prefer':
    case 'allow':
      config.ssl = false;
      break;
    case 'require':
      config.ssl = { rejectUnauthorized: false };
      break;
    case 'verify-ca':
      config.ssl = { rejectUnauthorized: true, ca: ca ?? existingCa, checkServerIdentity: () => undefined };
      break;
    default:
      config.ssl = { rejectUnauthorized: true, ca: ca ?? existingCa };
  }
  config.application_name = 'infra';
  config.keepAlive = true;
  // the session's timeout, from connect (a startup parameter): a read whose call allows the
  // profile's full timeout sends no statement for it (runReadOnly, PgSession.sessionTimeoutMs)
  config.statement_timeout = profile.statement_timeout_ms;
  const host = config.host ?? 'localhost';
  const whereStr = `${host}:${config.port ?? 5432}/${config.database ?? config.user ?? ''}`;
  const key = JSON.stringify([
    config.host,
    config.port,
    config.database,
    config.user,
    config.password,
    sslmode,
    ca ?? existingCa ?? null,
    profile.pool_max,
    profile.statement_timeout_ms,
  ]);
  return { name, profile, config, where: whereStr, key };
}

const CANCEL_GRACE_MS = 1500;
/** A connection a call gave back waits this long for the next call before pg-pool gets it back. */
const READY_MS = 1000;
/** How long a passed read-only login check stands (PgPools.privilegeRecheckMs). */
const PRIVILEGE_RECHECK_MS = 60_000;

interface ReadyClient {
  client: PoolClient;
  at: number;
  onError: (err: Error) => void;
}

interface PoolEntry {
  key: string;
  pool: Pool;
  target: PgTarget;
  privileges?: Promise<PrivilegeReport>;
  /** The privilege check's outcome once known (so a call need not wait a turn for it). */
  privilegeReport?: PrivilegeReport;
  /**
   * performance.now() until which that outcome stands: a passed check for
   * PgPools.privilegeRecheckMs, a refusal not at all (the next call checks again, so a login a
   * human fixed in place is taken at once).
   */
  privilegesOkUntil?: number;
  typeNames: Map<number, string>;
  /**
   * Connections given back by calls, most recent last, still checked out of pg-pool: the next
   * call takes one at once, where pg-pool's checkout costs a timer, a tick and events per call.
   */
  ready: ReadyClient[];
}

/**
 * One pg pool per profile (replaced when the profile's settings change), the per-pool
 * privilege check, type names, and cancellation. Reach it through
 * `services.shared('pg-pools', …)`; close() ends every pool.
 */
export class PgPools implements Closeable {
  private readonly entries = new Map<string, PoolEntry>();
  private parserLookup: ParserLookup | undefined;
  private closed = false;
  private sweeper: NodeJS.Timeout | undefined;

  /**
   * How long a passed login check stands. Privileges change under a running server (a GRANT, a
   * new table, a role made superuser); after this long the next read checks again.
   */
  privilegeRecheckMs = PRIVILEGE_RECHECK_MS;

  constructor(private readonly log: Logger) {}

  private async entryFor(target: PgTarget): Promise<PoolEntry> {
    const existing = this.entries.get(target.name);
    if (existing && existing.key === target.key) return existing;
    const pg = await loadPg();
    this.parserLookup ??= makeParserLookup(pg);
    const again = this.entries.get(target.name);
    if (again && again.key === target.key) return again;
    if (again) {
      this.entries.delete(target.name);
      this.returnReady(again, 0);
      void again.pool.end().catch(() => undefined);
    }
    const pool = new pg.Pool({
      ...target.config,
      max: target.profile.pool_max,
      idleTimeoutMillis: 60_000,
      connectionTimeoutMillis: 10_000,
      allowExitOnIdle: true,
    });
    // an idle pooled connection that dies emits here; pg-pool drops it and connects anew next time
    pool.on('error', (err) => this.log.warn('postgres connection lost; it will be replaced', { profile: target.name, error: err.message }));
    const entry: PoolEntry = { key: target.key, pool, target, typeNames: new Map(), ready: [] };
    this.entries.set(target.name, entry);
    return entry;
  }

  /**
   * A session's connection, healthy and idle, back from a call (see PoolEntry.ready). When
   * calls are waiting in pg-pool for a connection (all of pool_max out), pg-pool gets it.
   */
  private keep(entry: PoolEntry, client: PoolClient): void {
    if (this.closed || this.entries.get(entry.target.name) !== entry || entry.pool.waitingCount > 0) {
      client.release();
      return;
    }
    const item: ReadyClient = {
      client,
      at: Date.now(),
      onError: (err) => {
        const i = entry.ready.indexOf(item);
        if (i >= 0) entry.ready.splice(i, 1);
        this.log.warn('postgres connection lost; it will be replaced', { profile: entry.target.name, error: err.message });
        client.release(err);
      },
    };
    client.on('error', item.onError);
    entry.ready.push(item);
    this.sweeper ??= setInterval(() => {
      let left = 0;
      for (const e of this.entries.values()) left += this.returnReady(e, READY_MS);
      if (left === 0) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
      }
    }, READY_MS).unref();
  }

  /** Gives pg-pool back the ready connections idle longer than `olderThanMs`; returns how many stay. */
  private returnReady(entry: PoolEntry, olderThanMs: number): number {
    const cutoff = Date.now() - olderThanMs;
    const stay: ReadyClient[] = [];
    for (const r of entry.ready) {
      if (r.at > cutoff) {
        stay.push(r);
        continue;
      }
      r.client.off('error', r.onError);
      r.client.release();
    }
    entry.ready = stay;
    return stay.length;
  }

  /**
   * A session at once, without a turn of the event loop, when a ready connection is there and
   * nothing needs checking first; undefined sends the caller to session().
   */
  readySession(target: PgTarget, opts: { checkPrivileges: boolean }): PgSession | undefined {
    const entry = this.entries.get(target.name);
    if (!entry || entry.key !== target.key || this.closed) return undefined;
    if (opts.checkPrivileges && !(performance.now() < (entry.privilegesOkUntil ?? 0))) return undefined;
    const client = this.takeReady(entry);
    if (!client) return undefined;
    const session = this.sessionOf(entry, client);
    if (session.transactionStatus() === 'I') return session;
    session.release(true);
    return undefined;
  }

  /** The most recently given back ready connection, if any, out of the list. */
  private takeReady(entry: PoolEntry): PoolClient | undefined {
    const item = entry.ready.pop();
    item?.client.off('error', item.onError);
    return item?.client;
  }

  private sessionOf(entry: PoolEntry, client: PoolClient): PgSession {
    return new PgSession(entry, client, this.parserLookup!, this.log, (c) => this.keep(entry, c));
  }

  /**
   * Checks out a connection (a fresh one replaces a lost one). The wait honours `cancel`.
   * `checkPrivileges` runs the read-only login check (again after privilegeRecheckMs, and after a refusal).
   */
  async session(target: PgTarget, cancel: CallCancel, opts: { checkPrivileges: boolean; action: string }): Promise<PgSession> {
    if (this.closed) throw new ToolError('INTERNAL', 'the postgres pools are closed');
    const known = this.entries.get(target.name);
    const entry = known && known.key === target.key ? known : await this.entryFor(target);
    const errCtx = { profile: target.name, where: target.where, phase: 'connect' as const, action: opts.action };
    const client =
      this.takeReady(entry) ??
      (await abortable(entry.pool.connect(), cancel, (c) => c.release(true)).catch((e: unknown) => {
        if (cancel.aborted) throw cancel.reason;
        throw toolErrorFromPg(e, errCtx);
      }));
    const session = this.sessionOf(entry, client);
    try {
      if (session.transactionStatus() !== 'I') {
        // never start a READ ONLY transaction on a connection already inside one: BEGIN would
        // only warn and the statement would run in the old (maybe writable) transaction
        session.release(true);
        return this.session(target, cancel, opts);
      }
      if (opts.checkPrivileges) {
        // a refusal, or a pass older than privilegeRecheckMs, is checked again
        if (entry.privilegeReport && !(performance.now() < (entry.privilegesOkUntil ?? 0))) {
          entry.privilegeReport = undefined;
          entry.privileges = undefined;
        }
        entry.privileges ??= session.checkPrivileges(cancel).then((r) => {
          entry.privilegesOkUntil = riskyPrivileges(r).length === 0 ? performance.now() + this.privilegeRecheckMs : 0;
          return r;
        });
        let report: PrivilegeReport;
        try {
          report = entry.privilegeReport ?? (await entry.privileges);
          entry.privilegeReport = report;
        } catch (e) {
          entry.privileges = undefined;
          throw e;
        }
        const risky = riskyPrivileges(report);
        if (risky.length > 0) {
          throw new ToolError(
            'DENIED',
            `profile ${target.name} is read_only but its login ${JSON.stringify(report.user)} ${risky.join(', ')}, which can act outside a READ ONLY transaction (COPY … TO PROGRAM, server files, dblink, signalling other backends)`,
            {
              hint:
                `point the profile at a least-privilege login, e.g.  CREATE ROLE infra_ro LOGIN PASSWORD '…';  GRANT pg_read_all_data TO infra_ro;  ` +
                `(PostgreSQL 14+; older: GRANT CONNECT, USAGE and SELECT per schema)${privilegeRemedies(report)}. A human who accepts the risk can set "allow_superuser": true for ${target.name} in profiles.json`,
              retryable: false,
              details: {
                user: report.user,
                superuser: report.superuser,
                roles: report.roles,
                dblink: report.dblink,
                writes: report.writes,
                logical_messages: report.logicalMessages,
              },
            },
          );
        }
      }
      return session;
    } catch (e) {
      session.release(session.broken || !(e instanceof ToolError && e.code === 'DENIED'));
      throw e;
    }
  }

  /** The names of these type oids when all are known already (see typeNames). */
  knownTypeNames(session: PgSession, oids: number[]): Map<number, string> | undefined {
    const names = session.entry.typeNames;
    for (const o of oids) if (!names.has(o)) return undefined;
    return names;
  }

  /** Names of type oids (format_type), cached per pool; unknown ones are looked up once. */
  async typeNames(session: PgSession, oids: number[], cancel: CallCancel): Promise<Map<number, string>> {
    const names = session.entry.typeNames;
    const missing = [...new Set(oids)].filter((o) => !names.has(o));
    if (missing.length > 0) {
      const [, , r] = await session.run(
        [
          { text: 'BEGIN READ ONLY' },
          { text: "SELECT set_config('statement_timeout', '5000', true)" },
          {
            text: 'SELECT t.oid::int8, format_type(t.oid, NULL) FROM pg_catalog.pg_type t WHERE t.oid = ANY($1::oid[])',
            values: [missing],
            rows: { keep: missing.length },
          },
          { text: 'ROLLBACK' },
        ],
        cancel,
      );
      for (const row of r?.rows ?? []) names.set(Number(row[0]), String(row[1]));
      for (const o of missing) if (!names.has(o)) names.set(o, String(o));
    }
    return names;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    const all = [...this.entries.values()];
    for (const e of all) this.returnReady(e, 0);
    this.entries.clear();
    await Promise.allSettled(all.map((e) => e.pool.end()));
  }
}

function riskyPrivileges(r: PrivilegeReport): string[] {
  const out: string[] = [];
  if (r.superuser) out.push('is a superuser');
  if (r.roles.length) out.push(`is a member of ${r.roles.join(', ')}`);
  if (r.dblink.length) out.push(`may execute ${r.dblink.join(', ')}`);
  if (r.writes.length)
    out.push(
      `may write ${r.writes.join(', ')}${r.writes.length >= WRITES_SHOWN ? ' and more' : ''} on PostgreSQL ${Math.floor(r.serverVersion / 10000)}, where a statement can lift its own READ ONLY with RESET transaction_read_only (a sequence it advances and the locks it takes outlast the ROLLBACK; PostgreSQL 16 refuses the RESET)`,
    );
  if (r.logicalMessages) out.push('may execute pg_logical_emit_message with wal_level = logical (its messages outlast the ROLLBACK)');
  return out;
}

/** What to do about each finding of riskyPrivileges. */
function privilegeRemedies(r: PrivilegeReport): string {
  const out: string[] = [];
  if (r.writes.length) out.push('a login without write grants or ownership (PostgreSQL 16+ closes the RESET hole)');
  if (r.logicalMessages)
    out.push('REVOKE EXECUTE ON FUNCTION pg_logical_emit_message FROM PUBLIC (each overload), as a superuser, if nothing relies on it');
  return out.length ? `; also: ${out.join('; ')}` : '';
}

/** Resolves with the value unless the call is aborted first; a late value is handed to `discard`. */
function abortable<T>(p: Promise<T>, cancel: CallCancel, discard: (v: T) => void): Promise<T> {
  if (cancel.aborted) {
    p.then(discard, () => undefined);
    return Promise.reject(cancel.reason);
  }
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const off = cancel.onAbort(() => {
      if (done) return;
      done = true;
      reject(cancel.reason);
    });
    p.then(
      (v) => {
        off();
        if (done) discard(v);
        else {
          done = true;
          resolve(v);
        }
      },
      (e: unknown) => {
        off();
        if (!done) {
          done = true;
          reject(e);
        }
      },
    );
  });
}

const RISKY_ROLES = ['pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files', 'pg_signal_backend'];
const DBLINK_FUNCTIONS = ['dblink_exec', 'dblink', 'dblink_connect', 'dblink_connect_u', 'dblink_send_query'];

interface ClientInternals {
  processID?: number;
  secretKey?: number;
  connection: WireConnection & { stream: { destroy?: () => void } };
  getTransactionStatus?: () => string | null;
}

/**
 * Connections that ran an execute. A write commits, so a `SET statement_timeout` in it outlives
 * the call; such a connection's session timeout is no longer the one it was opened with.
 */
const writtenClients = new WeakSet<object>();

/** One checked-out connection. */
export class PgSession {
  broken = false;
  private released = false;
  /** The tail of the last batch (options.settleAfter) while it still runs on the server. */
  private tail: Promise<boolean> | undefined;

  constructor(
    readonly entry: PoolEntry,
    private readonly client: PoolClient,
    private readonly lookup: ParserLookup,
    private readonly log: Logger,
    /** Takes a healthy, idle connection back for the next call (PgPools.keep). */
    private readonly keep: (client: PoolClient) => void,
  ) {
    // a checked-out client has no pool listener: a connection that dies while it is out (also
    // before its batch tail has ended) is reported here, not thrown
    client.on('error', this.onClientError);
  }

  private readonly onClientError = (err: Error): void => {
    this.broken = true;
    this.log.warn('postgres connection lost; it will be replaced', { profile: this.entry.target.name, error: err.message });
  };

  get pid(): number | undefined {
    return (this.client as unknown as ClientInternals).processID;
  }

  get target(): PgTarget {
    return this.entry.target;
  }

  /**
   * The statement_timeout the session is known to run with: the one sent at connect. A read
   * cannot change it for later calls (it ends in ROLLBACK, which undoes a SET or set_config of
   * the session too); an execute can, and after one the connection gives undefined for good.
   */
  get sessionTimeoutMs(): number | undefined {
    const t = this.entry.target.config.statement_timeout;
    return writtenClients.has(this.client) || typeof t !== 'number' ? undefined : t;
  }

  /** Before an execute: the session's settings may change and stay (see sessionTimeoutMs). */
  markWritten(): void {
    writtenClients.add(this.client);
  }

  /** 'I' idle, 'T' in a transaction, 'E' in a failed transaction (from the last ReadyForQuery). */
  transactionStatus(): string {
    const c = this.client as unknown as ClientInternals & { _txStatus?: string | null };
    return c.getTransactionStatus?.() ?? c._txStatus ?? 'I';
  }

  /**
   * Runs one batch (one round trip). On abort the statement is cancelled on the server and
   * the session is marked broken (released destroyed); the abort reason is thrown. With
   * `settleAfter` the results come back before the batch's tail has run (see release).
   */
  async run(steps: BatchStep[], cancel: CallCancel, action = 'query', opts: BatchOptions = {}): Promise<StepResult[]> {
    if (cancel.aborted) throw cancel.reason;
    const batch = new StatementBatch(steps, this.lookup, opts);
    if (opts.settleAfter !== undefined) this.tail = batch.finished;
    const stop = this.onAbort(cancel, batch.promise);
    try {
      this.client.query(batch as never);
      return await batch.promise;
    } catch (e) {
      if (cancel.aborted) {
        this.broken = true;
        throw cancel.reason;
      }
      if (isConnectionLost(e)) this.broken = true;
      throw toolErrorFromPg(e, {
        profile: this.target.name,
        where: this.target.where,
        phase: 'query',
        action,
        statementTimeoutMs: this.target.profile.statement_timeout_ms,
      });
    } finally {
      stop();
    }
  }

  /** Simple-protocol text we wrote ourselves (ROLLBACK); never user text. */
  async simple(text: string): Promise<void> {
    await this.client.query(text);
  }

  /**
   * COPY … TO STDOUT as a stream. `text` must already have been parsed alone through the
   * extended protocol (pg-copy-streams sends it as a simple query).
   */
  async copyOut(text: string, cancel: CallCancel): Promise<{ stream: Readable; rowCount: () => number; done: () => void }> {
    const { to } = await loadCopy();
    const stream = to(text, { highWaterMark: 1 << 16 });
    const finished = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', reject);
    });
    finished.catch(() => undefined);
    const stop = this.onAbort(cancel, finished);
    this.client.query(stream);
    return { stream, rowCount: () => stream.rowCount, done: stop };
  }

  /** Wraps an error raised while streaming COPY output. */
  wrapError(e: unknown, cancel: CallCancel, action: string): unknown {
    if (cancel.aborted) {
      this.broken = true;
      return cancel.reason;
    }
    if (isConnectionLost(e)) this.broken = true;
    return toolErrorFromPg(e, {
      profile: this.target.name,
      where: this.target.where,
      phase: 'query',
      action,
      statementTimeoutMs: this.target.profile.statement_timeout_ms,
    });
  }

  private onAbort(cancel: CallCancel, work: Promise<unknown>): () => void {
    return cancel.onAbort(() => {
      this.broken = true;
      void this.cancelOnServer(work);
    });
  }

  /**
   * Stops the running statement on the server: pg_cancel_backend from a separate connection
   * (the protocol cancel request if that connection fails), then pg_terminate_backend if the
   * statement has not ended within a grace period. The session is then destroyed.
   */
  async cancelOnServer(work: Promise<unknown>): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    const ended = work.then(
      () => true,
      () => true,
    );
    const signalBackend = async (fn: 'pg_cancel_backend' | 'pg_terminate_backend'): Promise<boolean> => {
      const pg = await loadPg();
      const side = new pg.Client({ ...this.target.config, connectionTimeoutMillis: 5000, application_name: 'infra-cancel' });
      side.on('error', () => undefined);
      try {
        await side.connect();
        const r = await side.query(`SELECT ${fn}($1)`, [pid]);
        return r.rows[0]?.[fn] === true;
      } finally {
        void side.end().catch(() => undefined);
      }
    };
    try {
      await signalBackend('pg_cancel_backend');
    } catch (e) {
      this.log.warn('pg_cancel_backend failed; sending the protocol cancel request', {
        profile: this.target.name,
        error: (e as Error).message,
      });
      await this.protocolCancel().catch(() => undefined);
    }
    const inTime = await Promise.race([ended, new Promise<boolean>((r) => setTimeout(() => r(false), CANCEL_GRACE_MS).unref())]);
    if (!inTime) {
      this.log.warn('the cancelled statement did not stop; terminating its backend', { profile: this.target.name, pid });
      await signalBackend('pg_terminate_backend').catch(() => undefined);
    }
    this.release(true);
  }

  private async protocolCancel(): Promise<void> {
    const pg = await loadPg();
    const internals = this.client as unknown as ClientInternals;
    const Conn = (
      pg as unknown as {
        Connection: new () => {
          connect(port: number, host: string): void;
          on(ev: string, f: () => void): void;
          cancel(pid: number, key: number): void;
          end(): void;
        };
      }
    ).Connection;
    const con = new Conn();
    con.on('error', () => undefined);
    con.on('connect', () => con.cancel(internals.processID!, internals.secretKey!));
    con.connect(this.target.config.port ?? 5432, this.target.config.host ?? 'localhost');
  }

  async checkPrivileges(cancel: CallCancel): Promise<PrivilegeReport> {
    const [, r] = await this.run(
      [
        { text: 'BEGIN READ ONLY' },
        {
          text: `SELECT session_user::text,
                        (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = session_user),
                        ARRAY(SELECT r.rolname::text FROM pg_catalog.pg_roles r WHERE r.rolname = ANY($1::text[]) AND pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER') ORDER BY 1),
                        ARRAY(SELECT DISTINCT p.proname::text FROM pg_catalog.pg_proc p WHERE p.proname = ANY($2::text[]) AND pg_catalog.has_function_privilege(session_user, p.oid, 'EXECUTE') ORDER BY 1),
                        pg_catalog.current_setting('server_version_num')::int,
                        CASE WHEN pg_catalog.current_setting('server_version_num')::int < 160000 THEN ARRAY(
                          SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
                            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                             AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_(catalog|toast|temp_|toast_temp_)'
                             AND CASE WHEN c.relkind = 'S' THEN pg_catalog.has_sequence_privilege(session_user, c.oid, 'USAGE, UPDATE')
                                      ELSE pg_catalog.has_table_privilege(session_user, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') END
                           LIMIT $3) ELSE '{}' END,
                        pg_catalog.current_setting('wal_level') = 'logical' AND EXISTS (
                          SELECT 1 FROM pg_catalog.pg_proc p WHERE p.proname = 'pg_logical_emit_message'
                             AND pg_catalog.has_function_privilege(session_user, p.oid, 'EXECUTE'))`,
          values: [RISKY_ROLES, DBLINK_FUNCTIONS, WRITES_SHOWN],
          rows: { keep: 1 },
        },
        { text: 'ROLLBACK' },
      ],
      cancel,
      'privilege check',
    );
    const row = r?.rows[0] ?? [];
    return {
      user: String(row[0]),
      superuser: row[1] === true,
      roles: (row[2] as string[]) ?? [],
      dblink: (row[3] as string[]) ?? [],
      serverVersion: Number(row[4]),
      writes: (row[5] as string[]) ?? [],
      logicalMessages: row[6] === true,
    };
  }

  /**
   * Back to the pool, or destroyed when broken (`destroy`): a lost connection is replaced. A
   * batch tail still running on the server (ROLLBACK, unlock) does not hold the connection back:
   * pg sends the next batch on it only after the tail's ReadyForQuery, so a call that follows at
   * once reuses it instead of opening another. A tail that fails ends the connection (whoever
   * has it by then retries a read on a new one), so no connection outlives a failed cleanup.
   */
  release(destroy = false): void {
    if (this.released) return;
    this.released = true;
    const tail = this.tail;
    this.tail = undefined;
    if (tail)
      void tail.then((ok) => {
        if (ok) return;
        this.log.warn('the cleanup after a read failed; closing its postgres connection', { profile: this.entry.target.name });
        (this.client as unknown as ClientInternals).connection.stream.destroy?.();
      });
    const kill = destroy || this.broken || this.transactionStatus() !== 'I';
    this.client.off('error', this.onClientError);
    try {
      if (kill) this.client.release(true);
      else this.keep(this.client);
    } catch {
      /* already released */
    }
  }
}

/**
 * Text-format parsers: pg's, except values whose JS form loses information or misleads in
 * JSON: timestamps/dates/times/intervals and bytea stay as Postgres prints them; int8 becomes a
 * number only when it is exact.
 */
function makeParserLookup(pg: PgModule): ParserLookup {
  const raw = (t: string): string => t;
  const int8 = (t: string): number | string => {
    const n = Number(t);
    return Number.isSafeInteger(n) ? n : t;
  };
  const overrides = new Map<number, (t: string) => unknown>([
    [20, int8],
    [17, raw],
    [1082, raw],
    [1083, raw],
    [1114, raw],
    [1184, raw],
    [1186, raw],
    [1266, raw],
  ]);
  // pg-types 2 has arrayParser.create(…).parse(); later versions make it a function
  const ap = pg.types.arrayParser as unknown as
    ((s: string, f: (x: string) => unknown) => unknown[]) | { create(s: string, f: (x: string) => unknown): { parse(): unknown[] } };
  const parseArray = (t: string, f: (x: string) => unknown): unknown[] => (typeof ap === 'function' ? ap(t, f) : ap.create(t, f).parse());
  for (const oid of [1001, 1182, 1183, 1115, 1185, 1187, 1270]) overrides.set(oid, (t: string) => parseArray(t, raw));
  overrides.set(1016, (t: string) => parseArray(t, int8));
  const cache = new Map<number, (t: string) => unknown>();
  return (oid: number) => {
    let f = cache.get(oid);
    if (!f) {
      f = overrides.get(oid) ?? (pg.types.getTypeParser(oid, 'text') as (t: string) => unknown);
      cache.set(oid, f);
    }
    return f;
  };
}
