import { once } from 'node:events';
import { z } from 'zod';
import type { ActionContext } from '../../core/define-action.js';
import { ToolError } from '../../core/errors.js';
import { noNul, setOwn } from '../../core/json-values.js';
import type { Services } from '../../core/services.js';
import type { PostgresProfile } from '../../config/schemas.js';
import { cachedTarget, PgPools, type PgSession, type PgTarget } from '../../adapters/pg-pools.js';
import type { BatchStep, FieldInfo, StepResult } from '../../adapters/pg-batch.js';

/** Fields shared by several actions: one definition each, so the merged listing stays exact. */
export const profileArgs = {
  profile: z.string().min(1).max(128).optional().describe('Name of a postgres profile in profiles.json (optional when only one exists)'),
  profile_name: z.string().min(1).max(128).optional().describe('Same as profile (the spelling of the seed documents)'),
};
/**
 * Postgres cannot take a NUL byte in statement text, and the protocol ends the text at one: the
 * bytes after it would be read as the statement's parameter types, so the server could run a
 * prefix of what was sent (or drop the connection).
 */
export const sqlArg = z
  .string()
  .min(1)
  .max(1_000_000)
  .refine(noNul, 'must not contain a NUL byte (Postgres cannot take one in statement text)')
  .describe('Exactly one SQL statement; $1, $2 … take their values from params');
export const paramsArg = z
  .array(z.unknown())
  .max(10_000)
  .optional()
  .describe('Values for $1, $2 … (JSON; arrays become Postgres arrays, objects JSON)');
export const tableArg = z
  .string()
  .min(1)
  .max(300)
  .refine(noNul, 'must not contain a NUL byte')
  .describe('A table, view or materialized view: name or schema.name, quoted as in SQL when needed ("My Table")');

export interface ProfileArgs {
  profile?: string | undefined;
  profile_name?: string | undefined;
}

export interface PickedProfile {
  name: string;
  profile: PostgresProfile;
}

export function postgresProfiles(services: Pick<Services, 'config'>): Record<string, PostgresProfile> {
  const out: Record<string, PostgresProfile> = {};
  for (const [name, p] of Object.entries(services.config.profiles)) if (p.type === 'postgres') out[name] = p;
  return out;
}

/**
 * The profile a call names (`profile` or the seed's `profile_name`), or the only postgres
 * profile when none is named; checked against policy psql.allow_profiles.
 */
export function pickProfile(services: Pick<Services, 'config'>, args: ProfileArgs): PickedProfile {
  if (args.profile && args.profile_name && args.profile !== args.profile_name) {
    throw new ToolError(
      'INVALID_ARGUMENT',
      `profile ${JSON.stringify(args.profile)} and profile_name ${JSON.stringify(args.profile_name)} disagree`,
      {
        hint: 'pass one of them',
      },
    );
  }
  const key = args.profile ?? args.profile_name ?? '';
  const known = pickCache.get(services.config)?.get(key);
  if (known) return known;
  const all = postgresProfiles(services);
  const names = Object.keys(all);
  const profilesIssue = services.config.issues.find((i) => i.file.endsWith('profiles.json'));
  const issueHint = profilesIssue ? `; profiles.json has a problem: ${profilesIssue.message}` : '';
  let name = args.profile ?? args.profile_name;
  if (name === undefined) {
    if (names.length === 1) name = names[0]!;
    else if (names.length === 0)
      throw new ToolError('NOT_FOUND', 'no postgres profile is configured', {
        hint: `add one to profiles.json, e.g. { "app-db": { "type": "postgres", "url": "\${env:DATABASE_URL}", "mode": "read_only" } }${issueHint}`,
      });
    else
      throw new ToolError('INVALID_ARGUMENT', 'several postgres profiles exist: name one with "profile"', {
        hint: `profiles: ${names.join(', ')}`,
      });
  }
  const profile = all[name];
  if (!profile) {
    const other = services.config.profiles[name];
    if (other)
      throw new ToolError('INVALID_ARGUMENT', `profile ${JSON.stringify(name)} is an ${other.type} profile, not postgres`, {
        hint: `postgres profiles: ${names.join(', ') || 'none'}`,
      });
    throw new ToolError('NOT_FOUND', `no postgres profile named ${JSON.stringify(name)}`, {
      hint: `postgres profiles: ${names.join(', ') || 'none (add one to profiles.json)'}${issueHint}`,
    });
  }
  const allow = services.config.policy.psql.allow_profiles;
  if (allow && !allow.some((pattern) => globMatch(pattern, name!))) {
    throw new ToolError('DENIED', `policy.json does not allow the postgres profile ${JSON.stringify(name)}`, {
      hint: `a human can add it to "psql": { "allow_profiles": [...] } in policy.json (now: ${allow.join(', ') || 'none'})`,
    });
  }
  const pick = { name, profile };
  let byKey = pickCache.get(services.config);
  if (!byKey) pickCache.set(services.config, (byKey = new Map()));
  byKey.set(key, pick);
  return pick;
}

/** Profiles picked without error, per loaded config (a reload makes a new one) and name asked for. */
const pickCache = new WeakMap<object, Map<string, PickedProfile>>();

function globMatch(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name;
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(name);
}

export function pools(services: Services): PgPools {
  return services.shared('pg-pools', () => new PgPools(services.log));
}

/** The profile's connection target: at once when it is cached (see cachedTarget). */
export function targetFor(services: Services, picked: PickedProfile): PgTarget | Promise<PgTarget> {
  return cachedTarget(
    picked.name,
    picked.profile,
    (v, where) => services.secrets.resolve(v, where),
    (v) => services.redactor.addSecret(v),
    services.project.root,
  );
}

/** Read actions refuse a risky login on a read_only profile (or anywhere under INFRA_READ_ONLY). */
export function needsPrivilegeCheck(services: Services, profile: PostgresProfile): boolean {
  if (profile.allow_superuser) return false;
  return profile.mode === 'read_only' || services.flags.readOnly;
}

/**
 * Runs `fn` on a pooled connection of the named profile. Read actions are retried once on a
 * fresh connection when the pooled one turns out to be lost (they changed nothing).
 */
export async function withSession<T>(
  ctx: ActionContext,
  args: ProfileArgs,
  opts: { read: boolean },
  fn: (s: PgSession, picked: PickedProfile) => Promise<T>,
): Promise<T> {
  const picked = pickProfile(ctx.services, args);
  const t = targetFor(ctx.services, picked);
  const target = t instanceof Promise ? await t : t;
  const p = pools(ctx.services);
  for (let attempt = 0; ; attempt++) {
    const sessionOpts = { checkPrivileges: opts.read && needsPrivilegeCheck(ctx.services, picked.profile), action: ctx.action };
    const s = p.readySession(target, sessionOpts) ?? (await p.session(target, ctx.cancel, sessionOpts));
    try {
      return await fn(s, picked);
    } catch (e) {
      const retry =
        opts.read && attempt === 0 && s.broken && !ctx.cancel.aborted && e instanceof ToolError && e.code === 'CONNECTION_FAILED';
      if (!retry) throw e;
      ctx.log.info('postgres connection lost; retrying on a new one', { profile: picked.name });
    } finally {
      s.release();
    }
  }
}

/** statement_timeout for this call: the profile's, and never past the call's deadline. */
export function statementTimeout(ctx: ActionContext, profile: PostgresProfile): number {
  return Math.max(1, Math.min(profile.statement_timeout_ms, ctx.deadline - Date.now() + 250));
}

/**
 * BEGIN READ ONLY; [statement_timeout]; SAVEPOINT; <inner steps>; ROLLBACK; release session
 * advisory locks — one round trip to the results. When a step fails the server skips the rest,
 * and the transaction is rolled back here.
 *
 * The steps before the user's statement are utility statements, which Postgres neither plans
 * nor takes a snapshot for. The timeout is the session's (sent at connect, undone by every
 * read's ROLLBACK) unless this call needs another one (a shorter deadline, or a connection an
 * execute ran on): then a SET LOCAL. The SAVEPOINT makes the user's statement run in a
 * subtransaction, where Postgres refuses `SET TRANSACTION READ WRITE`, `SET transaction_read_only`
 * and set_config of it whatever ran before (not `RESET transaction_read_only` before PostgreSQL
 * 16: the login check covers that, PgSession.checkPrivileges).
 *
 * The results come back as soon as the inner steps are done (a Flush after them); ROLLBACK and
 * the unlock run on the server meanwhile, and the connection goes back to the pool at once: pg
 * sends its next batch only after them (PgSession.release). Nothing of the call is visible
 * outside the transaction either way: it was read-only, and a session lock the statement took
 * is held a round trip longer at most.
 */
export async function runReadOnly(s: PgSession, ctx: ActionContext, timeoutMs: number, inner: BatchStep[]): Promise<StepResult[]> {
  const { steps, head } = readOnlyBatch(timeoutMs, s.sessionTimeoutMs, inner);
  try {
    const results = await s.run(steps, ctx.cancel, ctx.action, { settleAfter: head + inner.length });
    return results.slice(head, head + inner.length);
  } catch (e) {
    await cleanup(s);
    throw e;
  }
}

/** runReadOnly's steps; `head` counts the steps before `inner`. */
export function readOnlyBatch(
  timeoutMs: number,
  sessionTimeoutMs: number | undefined,
  inner: BatchStep[],
): { steps: BatchStep[]; head: number } {
  const head: BatchStep[] = [{ text: 'BEGIN READ ONLY' }];
  if (timeoutMs !== sessionTimeoutMs) head.push({ text: `SET LOCAL statement_timeout = ${Math.max(1, Math.floor(timeoutMs))}` });
  head.push({ text: 'SAVEPOINT infra_read' });
  const steps: BatchStep[] = [
    ...head,
    ...inner,
    { text: 'ROLLBACK' },
    // session-level advisory locks survive ROLLBACK; a pooled connection must not keep one
    { text: 'SELECT pg_advisory_unlock_all()' },
  ];
  return { steps, head: head.length };
}

/** After a failed batch: end the transaction; a connection that cannot is destroyed. */
export async function cleanup(s: PgSession): Promise<void> {
  if (s.broken) return;
  try {
    await s.simple('ROLLBACK; SELECT pg_advisory_unlock_all()');
  } catch {
    s.broken = true;
  }
}

export async function columnsOf(ctx: ActionContext, s: PgSession, fields: FieldInfo[]): Promise<{ name: string; type: string }[]> {
  if (fields.length === 0) return [];
  const oids = fields.map((f) => f.dataTypeID);
  const p = pools(ctx.services);
  const names = p.knownTypeNames(s, oids) ?? (await p.typeNames(s, oids, ctx.cancel));
  return fields.map((f) => ({ name: f.name, type: names.get(f.dataTypeID) ?? String(f.dataTypeID) }));
}

/** Rows as objects keyed by column name; a repeated name gets a suffix (_2, _3 …). */
export function rowObjects(columns: { name: string }[], rows: unknown[][]): Record<string, unknown>[] {
  const keys: string[] = [];
  const seen = new Map<string, number>();
  for (const c of columns) {
    const n = (seen.get(c.name) ?? 0) + 1;
    seen.set(c.name, n);
    keys.push(n === 1 ? c.name : `${c.name}_${n}`);
  }
  return rows.map((r) => {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) setOwn(o, keys[i]!, r[i]);
    return o;
  });
}

/**
 * Keeps as many leading rows inline as fit in `budget` bytes of JSON; when some do not fit,
 * every row goes to `name` in the call's artifact (JSON lines) and its URI is returned.
 */
export async function boundRows<R>(
  ctx: ActionContext,
  rows: R[],
  budget: number,
  name = 'rows.jsonl',
): Promise<{ inline: R[]; uri?: string }> {
  let used = 0;
  let fit = 0;
  const lines: string[] = [];
  for (const r of rows) {
    const line = JSON.stringify(r) ?? 'null';
    lines.push(line);
    used += Buffer.byteLength(line) + 1;
    if (used <= budget) fit++;
  }
  if (fit === rows.length) return { inline: rows };
  const sink = ctx.sink(name, { inlineBytes: 0 });
  for (const line of lines) if (!sink.write(line + '\n')) await once(sink, 'drain');
  const res = await sink.done();
  return { inline: rows.slice(0, fit), uri: res.uri };
}
