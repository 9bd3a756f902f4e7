import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * Host key verification (DESIGN §5): OpenSSH known_hosts files (hashed entries, `[host]:port`,
 * wildcard and negated patterns, `@revoked`) or a pinned `SHA256:<base64>` fingerprint.
 */

export type HostKeyPolicy = { kind: 'pin'; sha256: string } | { kind: 'known_hosts'; files: string[]; explicit: boolean };

export interface HostKeyVerdict {
  ok: boolean;
  /** unknown: no entry for this host; changed: an entry (or the pin) names another key, or the key is revoked. */
  reason?: 'unknown' | 'changed';
  revoked?: boolean;
  /** The presented key, OpenSSH form `SHA256:<base64>`. */
  fingerprint: string;
  keyType: string;
  /** Base64 of the presented key blob (for `infra ssh trust` writing a known_hosts line). */
  keyBase64: string;
}

export interface KnownHostsEntry {
  marker: '' | '@revoked' | '@cert-authority';
  hosts: string;
  keyType: string;
  key: Buffer;
  file: string;
  line: number;
}

/** OpenSSH's fingerprint form: `SHA256:` + unpadded base64 of sha256(key blob). */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH wire-format public key blob (first string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const len = blob.readUInt32BE(0);
  if (len > 64 || 4 + len > blob.length) return 'unknown';
  return blob.subarray(4, 4 + len).toString('latin1');
}

export function normalizePin(pin: string): string {
  return pin.trim().replace(/=+$/, '');
}

/** The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

export function parseKnownHosts(text: string, file = '(inline)'): KnownHostsEntry[] {
  const out: KnownHostsEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith('#')) continue;
    const f = line.split(/\s+/);
    let marker: KnownHostsEntry['marker'] = '';
    if (f[0] === '@revoked' || f[0] === '@cert-authority') marker = f.shift() as KnownHostsEntry['marker'];
    else if (f[0]?.startsWith('@')) continue; // unknown marker: ignore the line, as OpenSSH does
    const [hosts, keyType, b64] = f;
    if (!hosts || !keyType || !b64) continue;
    const key = Buffer.from(b64, 'base64');
    if (key.length === 0) continue;
    out.push({ marker, hosts, keyType, key, file, line: i + 1 });
  }
  return out;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    '^' +
      pattern
        .toLowerCase()
        .split('')
        .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
        .join('') +
      '$',
  );
  return re.test(name);
}

function hashedMatch(field: string, name: string): boolean {
  // |1|base64(salt)|base64(HMAC-SHA1(salt, name))
  const parts = field.split('|');
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2]!, 'base64');
  const want = Buffer.from(parts[3]!, 'base64');
  const got = createHmac('sha1', salt).update(name).digest();
  return want.length === got.length && timingSafeEqual(want, got);
}

/** Does the host field of a known_hosts line cover `name` (already in `[host]:port` form)? */
export function hostsFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|')) return hashedMatch(field, name);
  let matched = false;
  for (const raw of field.split(',')) {
    const negated = raw.startsWith('!');
    const pat = negated ? raw.slice(1) : raw;
    if (!pat) continue;
    if (globMatch(pat, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function readEntries(files: string[]): KnownHostsEntry[] {
  const out: KnownHostsEntry[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // an absent known_hosts file simply knows no host
    }
    out.push(...parseKnownHosts(text, file));
  }
  return out;
}

/** Key types known_hosts holds for this host, so the handshake can prefer them (as OpenSSH does). */
export function knownKeyTypes(policy: HostKeyPolicy, host: string, port: number): string[] {
  if (policy.kind !== 'known_hosts') return [];
  const name = knownHostsName(host, port);
  const types = new Set<string>();
  for (const e of readEntries(policy.files)) if (e.marker === '' && hostsFieldMatches(e.hosts, name)) types.add(e.keyType);
  return [...types];
}

export function verifyHostKey(policy: HostKeyPolicy, host: string, port: number, blob: Buffer): HostKeyVerdict {
  const fingerprint = fingerprintOf(blob);
  const base = { fingerprint, keyType: keyTypeOf(blob), keyBase64: blob.toString('base64') };
  if (policy.kind === 'pin') {
    return normalizePin(policy.sha256) === fingerprint ? { ok: true, ...base } : { ok: false, reason: 'changed', ...base };
  }
  const name = knownHostsName(host, port);
  const entries = readEntries(policy.files).filter((e) => hostsFieldMatches(e.hosts, name));
  if (entries.some((e) => e.marker === '@revoked' && e.key.equals(blob))) {
    return { ok: false, reason: 'changed', revoked: true, ...base };
  }
  const plain = entries.filter((e) => e.marker === '');
  if (plain.some((e) => e.key.equals(blob))) return { ok: true, ...base };
  return { ok: false, reason: plain.length > 0 ? 'changed' : 'unknown', ...base };
}

const DEFAULT_HOST_KEY_ALGOS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** Host key algorithms for the handshake, those known_hosts has for the host first. */
export function hostKeyAlgorithms(knownTypes: string[]): string[] {
  const first: string[] = [];
  for (const t of knownTypes) {
    if (t === 'ssh-rsa') first.push('rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa');
    else if (DEFAULT_HOST_KEY_ALGOS.includes(t)) first.push(t);
  }
  return [...new Set([...first, ...DEFAULT_HOST_KEY_ALGOS])];
}
