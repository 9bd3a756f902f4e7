import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Start-up of the single-file binary (DESIGN §7). better-sqlite3's native addon travels inside
 * the binary as a SEA asset; a native addon can only be loaded from a file, so it is written
 * once to a private cache directory named after its sha256, checked against the hash the
 * release build recorded, and handed to the driver through INFRA_SQLITE_BINDING.
 *
 * The directory must be ours and closed to others (0700, not a symlink): a file another user
 * could swap would be code run as us. When the cache cannot be made safe, a fresh private
 * temporary directory is used instead, for this run only.
 */

export const SQLITE_ASSET = 'better_sqlite3.node';

/** Filled in by tools/release (esbuild define): the sha256 of the embedded addon. */
declare const __INFRA_SQLITE_SHA256__: string | undefined;

export interface SeaApi {
  isSea(): boolean;
  getRawAsset(key: string): ArrayBuffer;
}

export interface ExtractOptions {
  sea: SeaApi;
  expectedSha256: string;
  env: NodeJS.ProcessEnv;
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

function uid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

/** True when `dir` is a real directory (not a symlink) owned by us with no group/other access. */
function isPrivateDir(dir: string): boolean {
  try {
    const st = lstatSync(dir);
    const me = uid();
    return st.isDirectory() && !st.isSymbolicLink() && (me === undefined || st.uid === me) && (st.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

/** Creates `dir` (and parents) with mode 0700 and checks the last level is private. */
function ensurePrivateDir(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch {
    return false;
  }
  return isPrivateDir(dir);
}

function fileMatches(path: string, expected: string): boolean {
  try {
    const st = lstatSync(path);
    const me = uid();
    if (!st.isFile() || (me !== undefined && st.uid !== me) || (st.mode & 0o022) !== 0) return false;
    return sha256(readFileSync(path)) === expected;
  } catch {
    return false;
  }
}

/** Writes `data` next to `target` and renames it into place (readers never see a partial file). */
function writeAtomically(dir: string, target: string, data: Uint8Array): void {
  const tmp = join(dir, `.${SQLITE_ASSET}.${process.pid}.${randomBytes(6).toString('hex')}`);
  const fd = openSync(tmp, 'wx', 0o500);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** `$XDG_CACHE_HOME/infra`, else `~/.cache/infra`. */
export function cacheRoot(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && xdg.startsWith('/')) return join(xdg, 'infra');
  const home = env.HOME && env.HOME.startsWith('/') ? env.HOME : homedir();
  return join(home, '.cache', 'infra');
}

/**
 * Extracts the embedded addon (or reuses a verified copy) and returns its path. Throws when
 * the embedded bytes do not match the recorded hash (a damaged binary must not run).
 */
export function extractSqliteAddon(opts: ExtractOptions): string {
  const { sea, expectedSha256, env } = opts;
  const cached = join(cacheRoot(env), expectedSha256);
  const target = join(cached, SQLITE_ASSET);
  if (isPrivateDir(cached) && fileMatches(target, expectedSha256)) return target;

  const data = new Uint8Array(sea.getRawAsset(SQLITE_ASSET));
  const actual = sha256(data);
  if (actual !== expectedSha256) {
    throw new Error(
      `the embedded ${SQLITE_ASSET} has sha256 ${actual}, expected ${expectedSha256}: the binary is damaged, download it again`,
    );
  }
  if (ensurePrivateDir(cached)) {
    try {
      writeAtomically(cached, target, data);
      if (fileMatches(target, expectedSha256)) return target;
    } catch {
      /* fall through to a private temporary copy */
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'infra-sqlite-'));
  const fallback = join(dir, SQLITE_ASSET);
  writeAtomically(dir, fallback, data);
  if (!fileMatches(fallback, expectedSha256)) throw new Error(`could not write a verified copy of ${SQLITE_ASSET} to ${dir}`);
  return fallback;
}

/** Runs first in the binary: sets INFRA_SQLITE_BINDING for src/audit/db.ts. */
export function bootstrapSea(sea: SeaApi, env: NodeJS.ProcessEnv = process.env): void {
  if (!sea.isSea()) return;
  const expected = typeof __INFRA_SQLITE_SHA256__ === 'string' ? __INFRA_SQLITE_SHA256__ : undefined;
  if (!expected) throw new Error('this binary was built without the sqlite addon hash (tools/release sets it)');
  env.INFRA_SQLITE_BINDING = extractSqliteAddon({ sea, expectedSha256: expected, env });
}
