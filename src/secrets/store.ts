import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  fsyncSync,
} from 'node:fs';
import { join } from 'node:path';
import { ToolError } from '../core/errors.js';
import type { SecretSource } from '../config/secret-refs.js';

/**
 * The encrypted local secret store behind `${secret:NAME}` (DESIGN §3, docs/SECURITY.md).
 *
 * - `<project dir>/secrets.enc.json` (0600, written to a temp name and renamed) holds one
 *   AES-256-GCM ciphertext per name, with a fresh 12-byte IV each and the name as additional
 *   authenticated data (an entry cannot be moved to another name). Names are stored in clear:
 *   they already appear in targets.json and profiles.json, and listing them needs no key.
 * - The key is `INFRA_SECRETS_KEY` when set: 64 hex digits or base64 of exactly 32 bytes are
 *   used as the key; any other text is a passphrase stretched with scrypt (N=2^15, r=8, p=1)
 *   over a random salt kept in the file. Otherwise `<project dir>/secrets.key` (32 random bytes,
 *   base64, 0600), generated on the first `infra secrets set`.
 * - `key_check` (HMAC of a constant) lets us say "wrong key" instead of failing per entry.
 */

export const STORE_FILE = 'secrets.enc.json';
export const KEY_FILE = 'secrets.key';
export const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;

const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_CHECK_TEXT = 'infra secrets key check v1';

interface Entry {
  iv: string;
  tag: string;
  data: string;
  updated_at: string;
}

interface StoreFile {
  version: 1;
  cipher: 'aes-256-gcm';
  /** Present when the key is derived from a passphrase in INFRA_SECRETS_KEY. */
  kdf?: { name: 'scrypt'; salt: string; N: number; r: number; p: number };
  key_check: string;
  secrets: Record<string, Entry>;
}

export type KeySource = 'env:INFRA_SECRETS_KEY' | 'env:INFRA_SECRETS_KEY (passphrase, scrypt)' | 'key file' | 'none';

export interface StoreStatus {
  path: string;
  exists: boolean;
  key_source: KeySource;
  key_file: string;
  /** Problems a human must fix (wrong key, unreadable file, key file mode). */
  problems: { message: string; fix: string }[];
  names: string[];
}

export interface SecretStoreOptions {
  /** The project's `.infra` directory. */
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Called once per distinct problem while resolving (never with a value). */
  warn?: (message: string, fields?: Record<string, unknown>) => void;
}

export class SecretStore implements SecretSource {
  readonly path: string;
  readonly keyFile: string;
  private cache: { stamp: string; file: StoreFile | undefined } | undefined;
  private derived = new Map<string, Buffer>();
  private readonly warned = new Set<string>();

  constructor(private readonly opts: SecretStoreOptions) {
    this.path = join(opts.dir, STORE_FILE);
    this.keyFile = join(opts.dir, KEY_FILE);
  }

  // ---- SecretSource (used by SecretResolver for ${secret:NAME}) ----

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  get(name: string): string | undefined {
    let file: StoreFile | undefined;
    try {
      file = this.read();
    } catch (e) {
      this.warnOnce(`secret store unreadable: ${(e as Error).message}`);
      return undefined;
    }
    const entry = file?.secrets[name];
    if (!file || !entry || !Object.prototype.hasOwnProperty.call(file.secrets, name)) return undefined;
    try {
      return decrypt(this.keyFor(file, false), name, entry);
    } catch (e) {
      this.warnOnce(e instanceof ToolError ? e.message : `secret ${name} could not be decrypted: ${(e as Error).message}`);
      return undefined;
    }
  }

  close(): void {
    this.derived.clear();
  }

  // ---- management (CLI) ----

  names(): string[] {
    const file = this.read();
    return file ? Object.keys(file.secrets).sort() : [];
  }

  entries(): { name: string; updated_at: string }[] {
    const file = this.read();
    return file
      ? Object.entries(file.secrets)
          .map(([name, e]) => ({ name, updated_at: e.updated_at }))
          .sort((a, b) => a.name.localeCompare(b.name))
      : [];
  }

  set(name: string, value: string): void {
    checkName(name);
    if (value.length === 0)
      throw new ToolError('INVALID_ARGUMENT', 'refusing to store an empty value', { hint: 'pipe the value on stdin' });
    this.withLock(() => {
      const file = this.read() ?? this.newFile();
      const key = this.keyFor(file, true);
      file.secrets[name] = { ...encrypt(key, name, value), updated_at: new Date().toISOString() };
      this.write(file);
    });
  }

  /** Removes a secret; false when it was not there. */
  remove(name: string): boolean {
    checkName(name);
    return this.withLock(() => {
      const file = this.read();
      if (!file || !Object.prototype.hasOwnProperty.call(file.secrets, name)) return false;
      delete file.secrets[name];
      this.write(file);
      return true;
    });
  }

  keySource(): KeySource {
    const raw = this.opts.env.INFRA_SECRETS_KEY;
    if (raw) return rawKey(raw) ? 'env:INFRA_SECRETS_KEY' : 'env:INFRA_SECRETS_KEY (passphrase, scrypt)';
    return existsSync(this.keyFile) ? 'key file' : 'none';
  }

  /** What doctor and the secrets tool report; never a value. */
  status(): StoreStatus {
    const problems: StoreStatus['problems'] = [];
    let names: string[] = [];
    let file: StoreFile | undefined;
    try {
      file = this.read();
      names = file ? Object.keys(file.secrets).sort() : [];
    } catch (e) {
      problems.push({ message: (e as Error).message, fix: `restore ${this.path} from a backup, or remove it and set the secrets again` });
    }
    if (!this.opts.env.INFRA_SECRETS_KEY && existsSync(this.keyFile)) {
      const mode = statSync(this.keyFile).mode & 0o777;
      if (mode & 0o077) {
        problems.push({
          message: `${this.keyFile} is readable by other users (mode ${mode.toString(8)})`,
          fix: `chmod 600 ${this.keyFile}`,
        });
      }
    }
    if (existsSync(this.path)) {
      const mode = statSync(this.path).mode & 0o777;
      if (mode & 0o077)
        problems.push({ message: `${this.path} is readable by other users (mode ${mode.toString(8)})`, fix: `chmod 600 ${this.path}` });
    }
    if (file && names.length) {
      try {
        this.keyFor(file, false);
      } catch (e) {
        problems.push({ message: (e as Error).message, fix: (e as ToolError).hint ?? '' });
      }
    }
    return { path: this.path, exists: file !== undefined, key_source: this.keySource(), key_file: this.keyFile, problems, names };
  }

  // ---- internals ----

  private warnOnce(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    this.opts.warn?.(message);
  }

  private read(): StoreFile | undefined {
    let st;
    try {
      st = statSync(this.path);
    } catch {
      this.cache = undefined;
      return undefined;
    }
    // re-read when a human ran `infra secrets set` while the server is up
    const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (this.cache?.stamp === stamp) return this.cache.file;
    const text = readFileSync(this.path, 'utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new Error(`${this.path} is not valid JSON: ${(e as Error).message}`);
    }
    const file = validate(parsed, this.path);
    this.cache = { stamp, file };
    return file;
  }

  private newFile(): StoreFile {
    const raw = this.opts.env.INFRA_SECRETS_KEY;
    const file: StoreFile = { version: 1, cipher: 'aes-256-gcm', key_check: '', secrets: {} };
    if (raw && !rawKey(raw)) file.kdf = { name: 'scrypt', salt: randomBytes(16).toString('base64'), N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p };
    return file;
  }

  /** The key for this file; `create` generates the key file when there is no key yet. */
  private keyFor(file: StoreFile, create: boolean): Buffer {
    const key = this.loadKey(file, create);
    const check = keyCheck(key);
    if (!file.key_check) file.key_check = check;
    else if (!safeEqual(file.key_check, check)) {
      const src = this.keySource();
      throw new ToolError('AUTH_FAILED', `${this.path} was encrypted with a different key than the one from ${src}`, {
        hint:
          src === 'key file'
            ? `restore the secrets.key that was used, or set INFRA_SECRETS_KEY to the key that was used; to start over, remove ${this.path} and set the secrets again`
            : `start infra with the INFRA_SECRETS_KEY that was used for ${this.path}`,
        retryable: false,
      });
    }
    return key;
  }

  private loadKey(file: StoreFile, create: boolean): Buffer {
    const raw = this.opts.env.INFRA_SECRETS_KEY;
    if (raw) {
      const direct = rawKey(raw);
      if (direct) return direct;
      if (!file.kdf) {
        throw new ToolError('AUTH_FAILED', `INFRA_SECRETS_KEY is a passphrase but ${this.path} was not written with one`, {
          hint: 'use the key that wrote the store (64 hex digits or base64 of 32 bytes), or unset INFRA_SECRETS_KEY to use secrets.key',
          retryable: false,
        });
      }
      const cacheKey = `${file.kdf.salt}:${createHash('sha256').update(raw).digest('hex')}`;
      let k = this.derived.get(cacheKey);
      if (!k) {
        k = scryptSync(raw.normalize('NFC'), Buffer.from(file.kdf.salt, 'base64'), 32, {
          N: file.kdf.N,
          r: file.kdf.r,
          p: file.kdf.p,
          maxmem: SCRYPT.maxmem,
        });
        this.derived.set(cacheKey, k);
      }
      return k;
    }
    if (existsSync(this.keyFile)) {
      const k = rawKey(readFileSync(this.keyFile, 'utf8').trim());
      if (!k) {
        throw new ToolError('AUTH_FAILED', `${this.keyFile} does not hold a 32-byte key (base64 or hex)`, {
          hint: `restore it from a backup; without it ${this.path} cannot be read`,
          retryable: false,
        });
      }
      return k;
    }
    if (!create || Object.keys(file.secrets).length > 0) {
      throw new ToolError('AUTH_FAILED', `no key for the secret store: INFRA_SECRETS_KEY is not set and ${this.keyFile} does not exist`, {
        hint: 'start infra with the INFRA_SECRETS_KEY that wrote the store, or restore secrets.key',
        retryable: false,
      });
    }
    mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
    const key = randomBytes(32);
    // wx: two processes creating the key at once must not each write their own
    try {
      writeFileSync(this.keyFile, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      return this.loadKey(file, false);
    }
    return key;
  }

  private write(file: StoreFile): void {
    mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
    const tmp = join(this.opts.dir, `.${STORE_FILE}.${randomBytes(4).toString('hex')}.partial`);
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeFileSync(fd, JSON.stringify(file, null, 2) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    this.cache = undefined;
  }

  /** A lock file around read-modify-write, so two `infra secrets set` never lose an update. */
  private withLock<T>(fn: () => T): T {
    mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
    const lock = `${this.path}.lock`;
    const deadline = Date.now() + 5000;
    let fd: number | undefined;
    while (fd === undefined) {
      try {
        fd = openSync(lock, 'wx', 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        try {
          // a lock left by a killed process
          if (Date.now() - statSync(lock).mtimeMs > 30_000) unlinkSync(lock);
        } catch {
          /* gone meanwhile */
        }
        if (Date.now() > deadline)
          throw new Error(`${lock} is held by another process; retry, or remove it if no infra process is running`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 25);
      }
    }
    try {
      this.cache = undefined;
      return fn();
    } finally {
      closeSync(fd);
      try {
        unlinkSync(lock);
      } catch {
        /* already removed */
      }
    }
  }
}

function checkName(name: string): void {
  if (!SECRET_NAME.test(name)) {
    throw new ToolError('INVALID_ARGUMENT', `invalid secret name ${JSON.stringify(name.slice(0, 140))}`, {
      hint: 'names use letters, digits, "_", "." and "-", start with a letter or "_", at most 128 characters',
    });
  }
}

/** 64 hex digits or base64 of exactly 32 bytes; anything else is a passphrase. */
export function rawKey(text: string): Buffer | undefined {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]{42,43}=?$/.test(t)) {
    const b = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (b.length === 32) return b;
  }
  return undefined;
}

function keyCheck(key: Buffer): string {
  return createHmac('sha256', key).update(KEY_CHECK_TEXT).digest('base64');
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function encrypt(key: Buffer, name: string, value: string): Omit<Entry, 'updated_at'> {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(`infra-secret:${name}`, 'utf8'));
  const data = Buffer.concat([c.update(value, 'utf8'), c.final()]);
  return { iv: iv.toString('base64'), tag: c.getAuthTag().toString('base64'), data: data.toString('base64') };
}

function decrypt(key: Buffer, name: string, e: Entry): string {
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(e.iv, 'base64'));
  d.setAAD(Buffer.from(`infra-secret:${name}`, 'utf8'));
  d.setAuthTag(Buffer.from(e.tag, 'base64'));
  try {
    return Buffer.concat([d.update(Buffer.from(e.data, 'base64')), d.final()]).toString('utf8');
  } catch {
    throw new Error(`secret ${name} failed authentication (the file was altered, or the entry was moved from another name)`);
  }
}

function validate(v: unknown, path: string): StoreFile {
  const bad = (why: string): never => {
    throw new Error(`${path} is not an infra secret store (${why})`);
  };
  if (!v || typeof v !== 'object' || Array.isArray(v)) bad('not an object');
  const f = v as Partial<StoreFile>;
  if (f.version !== 1) bad(`version ${String(f.version)}`);
  if (f.cipher !== 'aes-256-gcm') bad(`cipher ${String(f.cipher)}`);
  if (typeof f.key_check !== 'string') bad('no key_check');
  if (!f.secrets || typeof f.secrets !== 'object') bad('no secrets');
  const secrets: Record<string, Entry> = Object.create(null) as Record<string, Entry>;
  for (const [name, e] of Object.entries(f.secrets!)) {
    if (!e || typeof e.iv !== 'string' || typeof e.tag !== 'string' || typeof e.data !== 'string') bad(`entry ${name}`);
    secrets[name] = e;
  }
  return { ...(f as StoreFile), secrets };
}

/** The key under which the runtime shares its store (`services.shared`). */
export const SECRET_STORE_KEY = 'secret-store';

/** The process's secret store (the runtime registers it at start). */
export function secretStoreOf(services: {
  shared<T extends { close(): void | Promise<void> }>(key: string, create: () => T): T;
  project: { dir: string };
}): SecretStore {
  return services.shared(SECRET_STORE_KEY, () => new SecretStore({ dir: services.project.dir, env: process.env }));
}
