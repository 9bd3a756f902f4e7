import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Envelope } from '../../src/core/envelope.js';
import { ERROR_CODES } from '../../src/core/errors.js';
import { PASSWORD, PASSWORD_USER, type Sshd } from '../fixtures/sshd.js';
import { targetFor } from '../ssh/helpers.js';

/**
 * A target on the fixture sshd as its test user, whose login shell is /bin/sh: root's shell
 * sources ~/.bashrc, and on this machine that runs `pyenv rehash`, whose lock file, left by a
 * session killed at the wrong moment, stalls every later session for 60 s. Password auth (the
 * shared authorized_keys lives in root's private temp dir); pass SSH_TARGET_ENV to the runtime.
 */
export function sshTarget(s: Sshd, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { key_file: _k, ...t } = targetFor(s, { username: PASSWORD_USER, password: '${env:RELIABILITY_SSH_PASSWORD}', ...extra });
  return t;
}

export const SSH_TARGET_ENV = { RELIABILITY_SSH_PASSWORD: PASSWORD };

/** Peak resident set (VmHWM) of a process in KiB, from /proc. */
export function peakRssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true or `ms` pass. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 30_000, every = 50): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

/** Asserts an envelope is a clear tool error: a known code and a message, and returns it. */
export function clearError(e: Envelope | Record<string, unknown> | undefined, what: string): { code: string; message: string } {
  const env = e as { ok?: boolean; error?: { code?: unknown; message?: unknown } } | undefined;
  if (!env || env.ok !== false || !env.error)
    throw new Error(`${what}: expected an error envelope, got ${JSON.stringify(e).slice(0, 400)}`);
  const { code, message } = env.error;
  if (typeof code !== 'string' || !(ERROR_CODES as readonly string[]).includes(code)) {
    throw new Error(`${what}: error code ${JSON.stringify(code)} is not one of ${ERROR_CODES.join(', ')}`);
  }
  if (typeof message !== 'string' || message.length === 0) throw new Error(`${what}: error without a message`);
  return { code, message };
}

export interface RowLite {
  id: string;
  tool: string;
  action: string | null;
  status: string;
  error_code: string | null;
}

/** Opens infra.db read-only (never through infra) for counting and integrity checks. */
export function openReadOnly(dbPath: string): Database.Database {
  return new Database(dbPath, { readonly: true, fileMustExist: true });
}

export function integrityCheck(dbPath: string): string {
  const db = openReadOnly(dbPath);
  try {
    return (db.prepare('PRAGMA integrity_check').all() as { integrity_check: string }[]).map((r) => r.integrity_check).join('; ');
  } finally {
    db.close();
  }
}

export function auditRows(dbPath: string): RowLite[] {
  const db = openReadOnly(dbPath);
  try {
    return db.prepare('SELECT id, tool, action, status, error_code FROM audit ORDER BY id').all() as RowLite[];
  } finally {
    db.close();
  }
}

export function auditCount(dbPath: string): number {
  const db = openReadOnly(dbPath);
  try {
    return (db.prepare('SELECT COUNT(*) n FROM audit').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

export function sha256File(path: string): string {
  const r = spawnSync('sha256sum', [path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sha256sum ${path}: ${r.stderr}`);
  return r.stdout.split(' ')[0]!;
}

export function sha256(buf: Buffer | string): string {
  return createHash('sha256').update(buf).digest('hex');
}

export interface ArtifactAudit {
  /** Calls whose directory holds a call.json. */
  completed: number;
  /** Stream files checked against call.json (size and sha256). */
  checkedFiles: number;
  /** Dot-prefixed temp files (`.name.<…>.partial`) left by calls that did not finish. */
  partials: string[];
  /** Problems: a complete-looking file that does not match what its call.json says. */
  problems: string[];
  /** Call directories with files under their final names but no call.json. */
  unfinishedWithFiles: string[];
}

/**
 * Walks artifacts/calls and checks the rule "no half-written file is presented as complete":
 * every non-dot file a call.json lists has exactly the size and sha256 recorded there; every
 * other non-dot file must be call.json itself; incomplete data only lives in dot-prefixed
 * `.partial` temp files.
 */
export function auditArtifacts(artifactsDir: string): ArtifactAudit {
  const out: ArtifactAudit = { completed: 0, checkedFiles: 0, partials: [], problems: [], unfinishedWithFiles: [] };
  const callsDir = join(artifactsDir, 'calls');
  if (!existsSync(callsDir)) return out;
  // (directories only: older versions also kept record journal files in calls/)
  for (const id of readdirSync(callsDir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)) {
    const dir = join(callsDir, id);
    const names = readdirSync(dir);
    for (const n of names) if (n.startsWith('.')) out.partials.push(join(id, n));
    const visible = names.filter((n) => !n.startsWith('.'));
    if (!visible.includes('call.json')) {
      if (visible.length) out.unfinishedWithFiles.push(`${id}: ${visible.join(', ')}`);
      continue;
    }
    out.completed++;
    let call: {
      streams?: { name: string; stored_bytes: number; sha256: string }[];
      envelope?: { ok?: boolean; result?: Record<string, unknown> };
    };
    try {
      call = JSON.parse(readFileSync(join(dir, 'call.json'), 'utf8')) as typeof call;
    } catch (e) {
      out.problems.push(`${id}/call.json does not parse: ${(e as Error).message}`);
      continue;
    }
    const listed = new Map((call.streams ?? []).map((s) => [s.name, s]));
    const result = call.envelope?.result ?? {};
    for (const n of visible) {
      if (n === 'call.json') continue;
      const path = join(dir, n);
      const s = listed.get(n);
      // a stream is recorded in call.json.streams; a file written whole (one atomic write, e.g.
      // a small http body) by `<name>_bytes` / `<name>_sha256` in the result, when it has them
      const want = s
        ? { bytes: s.stored_bytes, sha256: s.sha256 }
        : typeof result[`${n}_sha256`] === 'string' && typeof result[`${n}_bytes`] === 'number'
          ? { bytes: result[`${n}_bytes`] as number, sha256: result[`${n}_sha256`] as string }
          : undefined;
      if (!want) continue;
      const size = statSync(path).size;
      if (size !== want.bytes) out.problems.push(`${id}/${n}: ${size} bytes on disk, call.json says ${want.bytes}`);
      else if (sha256File(path) !== want.sha256) out.problems.push(`${id}/${n}: sha256 differs from call.json`);
      out.checkedFiles++;
    }
    for (const [name, s] of listed) {
      if (call.envelope?.ok && s.stored_bytes > 0 && !visible.includes(name))
        out.problems.push(`${id}: call.json lists ${name}, which is missing`);
    }
  }
  return out;
}

/** Runs `node dist/cli.js …` synchronously (the CLI is a second infra process on the same infra.db). */
export function cli(
  cliPath: string,
  args: string[],
  env: Record<string, string>,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliPath, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', INFRA_LOG_LEVEL: 'error', ...env },
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
