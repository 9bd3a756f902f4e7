import { ToolError, type ErrorCode } from '../core/errors.js';

/** Fields of a Postgres ErrorResponse as pg exposes them. */
export interface PgServerError extends Error {
  code?: string;
  severity?: string;
  detail?: string;
  hint?: string;
  position?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  constraint?: string;
}

/** True for an error the server sent (it has a five-character SQLSTATE). */
export function isServerError(e: unknown): e is PgServerError {
  const code = (e as PgServerError)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && typeof (e as PgServerError).severity === 'string';
}

/** The socket went away (server restart, idle kill, network): the connection cannot be reused. */
export function isConnectionLost(e: unknown): boolean {
  if (isServerError(e)) return /^(08|57P0[123])/.test(e.code!);
  const err = e as NodeJS.ErrnoException;
  const msg = String(err?.message ?? '');
  return (
    ['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ETIMEDOUT', 'ENOTCONN'].includes(String(err?.code)) ||
    /Connection terminated|not queryable|Client was closed|socket hang up|write after end|This socket has been ended/i.test(msg)
  );
}

export interface PgErrorContext {
  profile: string;
  /** host:port/db for messages (never the password). */
  where: string;
  phase: 'connect' | 'query';
  action: string;
  /** The profile's statement_timeout_ms (for the hint when the server's timeout fired). */
  statementTimeoutMs?: number;
}

/** Turns anything pg throws into a ToolError with what a person needs to act. */
export function toolErrorFromPg(e: unknown, c: PgErrorContext): ToolError {
  if (e instanceof ToolError) return e;
  const msg = String((e as Error)?.message ?? e);
  const profileRef = `profiles.json: ${c.profile}`;
  if (isServerError(e)) {
    const err = e;
    const code = err.code!;
    const details: Record<string, unknown> = { sqlstate: code };
    if (err.detail) details.detail = err.detail;
    if (err.hint) details.pg_hint = err.hint;
    if (err.position) details.position = Number(err.position);
    if (err.where) details.where = err.where;
    if (err.constraint) details.constraint = err.constraint;
    const make = (kind: ErrorCode, hint: string | undefined, retryable?: boolean): ToolError =>
      new ToolError(kind, `postgres (${c.profile}): ${msg}`, {
        hint,
        details,
        ...(retryable === undefined ? {} : { retryable }),
        cause: e,
      });
    if (code === '28P01' || code.startsWith('28'))
      return make(
        'AUTH_FAILED',
        `check user and password of ${profileRef} (the password by reference, e.g. "\${env:PGPASSWORD}") and the server's pg_hba.conf for ${c.where}`,
        false,
      );
    if (code === '3D000')
      return make(
        'CONNECTION_FAILED',
        `the database in ${profileRef} does not exist on ${c.where}; fix "database" (or the url's path)`,
        false,
      );
    if (code === '53300')
      return make('CONNECTION_FAILED', `the server has no free connection slots; lower "pool_max" in ${profileRef} or retry later`, true);
    if (/^(08|57P0[123])/.test(code)) return make('CONNECTION_FAILED', `the connection to ${c.where} was lost; retry`, true);
    if (code === '25006') {
      const hint =
        c.action === 'execute'
          ? undefined
          : `${c.action} always runs inside a READ ONLY transaction, which Postgres enforces; writes go through psql execute on a profile with "mode": "read_write" in profiles.json`;
      return make('DENIED', hint, false);
    }
    if (code === '42501')
      return make('DENIED', `the login of ${profileRef} lacks this privilege in Postgres; a database administrator can GRANT it`, false);
    if (code === '57014') {
      const t = c.statementTimeoutMs ? ` (statement_timeout_ms ${c.statementTimeoutMs})` : '';
      return make(
        'TIMEOUT',
        `the server cancelled the statement at its statement timeout${t}; narrow the query, or raise "statement_timeout_ms" in ${profileRef}`,
        true,
      );
    }
    if (code === '42601' && /multiple commands/i.test(msg))
      return make(
        'INVALID_ARGUMENT',
        'send exactly one statement per call: statements go through the extended protocol, which runs one statement',
        false,
      );
    if (code === '42P01' || code === '3F000')
      return make('NOT_FOUND', `psql schema {"profile": "${c.profile}"} lists the schemas and tables`, false);
    if ((code === '25001' || code === '0A000') && /transaction block/i.test(msg) && c.action === 'execute')
      return make('INVALID_ARGUMENT', 'this statement cannot run inside a transaction block; pass "transaction": false', false);
    if (code.startsWith('42') || code.startsWith('22') || code === '0A000' || code === '2BP01' || code === '34000' || code === '26000')
      return make('INVALID_ARGUMENT', undefined, false);
    if (code === '40001' || code === '40P01' || code === '55P03') return make('UPSTREAM_ERROR', 'a concurrency conflict; retry', true);
    if (code.startsWith('54')) return make('LIMIT_EXCEEDED', undefined, false);
    if (code.startsWith('53')) return make('UPSTREAM_ERROR', 'the server is short of resources; retry later', true);
    return make('UPSTREAM_ERROR', undefined, false);
  }
  // client-side failures: mostly connecting
  const sys = String((e as NodeJS.ErrnoException)?.code ?? '');
  const fail = (kind: ErrorCode, message: string, hint: string, retryable: boolean): ToolError =>
    new ToolError(kind, message, { hint, retryable, cause: e, details: { cause: msg.slice(0, 500) } });
  if (/password must be a string|password authentication|no password supplied|SASL/i.test(msg))
    return fail(
      'AUTH_FAILED',
      `postgres (${c.profile}): authentication failed: ${msg}`,
      `set the password of ${profileRef}: "password": "\${env:NAME}" or inside the url (by reference)`,
      false,
    );
  if (sys === 'ECONNREFUSED')
    return fail(
      'CONNECTION_FAILED',
      `postgres (${c.profile}): nothing accepts connections at ${c.where}`,
      `check that the server runs and the host/port in ${profileRef}`,
      true,
    );
  if (sys === 'ENOTFOUND' || sys === 'EAI_AGAIN')
    return fail(
      'CONNECTION_FAILED',
      `postgres (${c.profile}): the host of ${c.where} does not resolve`,
      `check the host in ${profileRef}`,
      sys === 'EAI_AGAIN',
    );
  if (/timeout/i.test(msg) || sys === 'ETIMEDOUT')
    return fail(
      'CONNECTION_FAILED',
      `postgres (${c.profile}): timed out connecting to ${c.where} (or waiting for a free pooled connection)`,
      `check the network path to the server; if every pooled connection is busy, raise "pool_max" in ${profileRef}`,
      true,
    );
  if (/SSL|TLS|certificate|self.signed|UNABLE_TO_VERIFY|ERR_TLS/i.test(msg + sys))
    return fail(
      'CONNECTION_FAILED',
      `postgres (${c.profile}): TLS failed with ${c.where}: ${msg}`,
      `check "sslmode" and "ca_file" in ${profileRef} (verify-ca/verify-full need the server's CA; "require" encrypts without verifying)`,
      false,
    );
  if (isConnectionLost(e) || c.phase === 'connect')
    return fail(
      'CONNECTION_FAILED',
      `postgres (${c.profile}): connection to ${c.where} failed: ${msg}`,
      `check the server and ${profileRef}; retry`,
      true,
    );
  return new ToolError('INTERNAL', `postgres (${c.profile}): ${msg}`, { cause: e, retryable: false });
}
