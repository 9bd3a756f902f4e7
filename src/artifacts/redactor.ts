import { Transform, type TransformCallback } from 'node:stream';
import { RESULT_MAX_DEPTH, setOwn, TooDeepError } from '../core/json-values.js';

/** Well-known token shapes, replaced wherever output is shown or stored (DESIGN §5). */
const TOKEN_SHAPES: { name: string; re: string; keepGroup1?: boolean }[] = [
  { name: 'private_key', re: '-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\\s\\S]{0,16384}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----' },
  { name: 'aws_access_key', re: '\\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\\b' },
  { name: 'aws_secret_key', re: '(aws_secret_access_key["\']?\\s*[=:]\\s*["\']?)[A-Za-z0-9/+=]{40}', keepGroup1: true },
  { name: 'github_token', re: '\\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})' },
  { name: 'gitlab_token', re: '\\bglpat-[A-Za-z0-9_-]{20,255}' },
  { name: 'slack_token', re: '\\bxox[abposr]-[A-Za-z0-9-]{10,255}' },
  { name: 'jwt', re: '\\beyJ[A-Za-z0-9_-]{5,4096}\\.eyJ[A-Za-z0-9_-]{5,8192}\\.[A-Za-z0-9_-]{5,4096}' },
  { name: 'bearer', re: '(\\b[Bb]earer\\s+)[A-Za-z0-9._~+/=-]{8,4096}', keepGroup1: true },
  { name: 'basic_auth', re: '(\\b[Aa]uthorization:\\s*[Bb]asic\\s+)[A-Za-z0-9+/=]{8,1024}', keepGroup1: true },
];

/** Secrets shorter than this are not searched for (they would shred ordinary output). */
export const MIN_SECRET_LENGTH = 4;
/** How much a streaming redactor holds back so a match split across chunks is still found. */
const STREAM_HOLDBACK = 20000;

export const REDACTED = '[REDACTED]';

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The forms of one secret value that must never appear (DESIGN §5). */
export function secretForms(value: string): string[] {
  const forms = new Set<string>([value]);
  const b64 = Buffer.from(value, 'utf8').toString('base64');
  forms.add(b64);
  forms.add(b64.replace(/=+$/, ''));
  forms.add(Buffer.from(value, 'utf8').toString('base64url'));
  forms.add(encodeURIComponent(value));
  forms.add(encodeURI(value));
  forms.add(JSON.stringify(value).slice(1, -1));
  return [...forms].filter((f) => f.length >= MIN_SECRET_LENGTH);
}

interface Compiled {
  text: RegExp | undefined;
  latin1: RegExp | undefined;
  maxLatin1: number;
  /** No match is shorter than this (a shorter string needs no search). */
  minLength: number;
}

/** The shortest text any token shape matches (slack_token: xoxb- and ten characters). */
const MIN_SHAPE_LENGTH = 15;

/**
 * Replaces registered secret values (and their base64 / URL-encoded forms) and well-known token
 * shapes. One instance per process; every sink, reply, audit row and log line goes through it.
 */
export class Redactor {
  private readonly secrets = new Set<string>();
  private compiled: Compiled | undefined;
  private version = 0;

  constructor(private readonly shapes = true) {}

  get generation(): number {
    return this.version;
  }

  addSecret(value: string | undefined): void {
    if (!value || value.length < MIN_SECRET_LENGTH || this.secrets.has(value)) return;
    this.secrets.add(value);
    this.compiled = undefined;
    this.version++;
  }

  get secretCount(): number {
    return this.secrets.size;
  }

  private compile(): Compiled {
    if (this.compiled) return this.compiled;
    const forms = new Set<string>();
    for (const s of this.secrets) for (const f of secretForms(s)) forms.add(f);
    // longest first so a value containing another is replaced whole
    const sorted = [...forms].sort((a, b) => b.length - a.length);
    const shapeAlts = this.shapes ? TOKEN_SHAPES.map((s) => `(?<${s.name}>${s.re})`) : [];
    const textAlts = [...(sorted.length ? [`(?<secret>${sorted.map(escapeRe).join('|')})`] : []), ...shapeAlts];
    const latinForms = sorted.map((f) => Buffer.from(f, 'utf8').toString('latin1'));
    const latinAlts = [...(latinForms.length ? [`(?<secret>${latinForms.map(escapeRe).join('|')})`] : []), ...shapeAlts];
    this.compiled = {
      text: textAlts.length ? new RegExp(textAlts.join('|'), 'g') : undefined,
      latin1: latinAlts.length ? new RegExp(latinAlts.join('|'), 'g') : undefined,
      maxLatin1: latinForms.reduce((m, f) => Math.max(m, f.length), 0),
      minLength: Math.min(this.shapes ? MIN_SHAPE_LENGTH : Infinity, ...sorted.map((f) => f.length)),
    };
    return this.compiled;
  }

  /** Redacts a JS string (replies, audit rows, logs). */
  redact(text: string): string {
    const c = this.compile();
    const re = c.text;
    if (!re || text.length < c.minLength) return text;
    re.lastIndex = 0;
    return text.replace(re, replacer);
  }

  /**
   * Redacts every string inside a JSON-like value (returns a copy). A value nested more than
   * RESULT_MAX_DEPTH levels deep throws TooDeepError: a little deeper, this recursion (and
   * JSON.stringify after it) would run out of stack.
   */
  redactValue<T>(value: T): T {
    return this.walk(value, 0) as T;
  }

  private walk(value: unknown, depth: number): unknown {
    if (typeof value === 'string') return this.redact(value);
    if (value === null || typeof value !== 'object' || value instanceof Buffer) return value;
    if (depth >= RESULT_MAX_DEPTH) throw new TooDeepError(RESULT_MAX_DEPTH);
    if (Array.isArray(value)) return value.map((v) => this.walk(v, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) setOwn(out, k, this.walk(v, depth + 1));
    return out;
  }

  /** Redacts bytes (binary-safe: matching happens on the latin1 view, one char per byte). */
  redactBuffer(buf: Buffer): Buffer {
    const re = this.compile().latin1;
    if (!re || buf.length === 0) return buf;
    const s = buf.toString('latin1');
    re.lastIndex = 0;
    if (!re.test(s)) return buf;
    re.lastIndex = 0;
    return Buffer.from(s.replace(re, replacer), 'latin1');
  }

  /**
   * A Transform that redacts a byte stream with flat memory. It holds back the last bytes of each
   * chunk so a secret split across chunk boundaries is still replaced.
   */
  createStream(): Transform {
    return new RedactingTransform(this);
  }

  /**
   * A redacted view of bytes a stream still holds back (latin1 in, latin1 out), for live
   * progress: it stops before an unterminated private-key block and before the last bytes that
   * could be the start of a registered secret.
   */
  previewHeld(held: string): string {
    const { maxLatin1 } = this.compile();
    let end = Math.max(0, held.length - maxLatin1);
    // a token still being written must not show half of itself
    const trailing = /[A-Za-z0-9_\-.+/=:]+$/.exec(held);
    if (trailing) end = Math.min(end, trailing.index);
    const begin = held.lastIndexOf('-----BEGIN');
    if (begin >= 0 && held.indexOf('-----END', begin) < 0) end = Math.min(end, begin);
    if (end <= 0) return '';
    const re = this.compile().latin1;
    const part = held.slice(0, end);
    if (!re) return part;
    re.lastIndex = 0;
    return part.replace(re, replacer);
  }

  /** @internal used by the streaming transform */
  streamPass(s: string, final: boolean): { out: string; carry: string } {
    const { latin1: re, maxLatin1 } = this.compile();
    if (!re) return { out: s, carry: '' };
    const hold = final ? 0 : Math.max(STREAM_HOLDBACK, maxLatin1);
    let emitEnd = Math.max(0, s.length - hold);
    if (final) emitEnd = s.length;
    let out = '';
    let last = 0;
    re.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(s)) !== null) {
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      if (m.index >= emitEnd) break;
      out += s.slice(last, m.index) + replacer(m[0], ...m.slice(1), m.index, s, m.groups);
      last = m.index + m[0].length;
    }
    if (last > emitEnd) emitEnd = last;
    out += s.slice(last, emitEnd);
    return { out, carry: s.slice(emitEnd) };
  }
}

function replacer(...args: unknown[]): string {
  const groups = args[args.length - 1] as Record<string, string | undefined> | undefined;
  if (!groups || typeof groups !== 'object') return REDACTED;
  if (groups.secret !== undefined) return REDACTED;
  for (const shape of TOKEN_SHAPES) {
    const g = groups[shape.name];
    if (g === undefined) continue;
    if (shape.keepGroup1) {
      // the first capture inside the named group is the prefix to keep ("Bearer ")
      const m = new RegExp(`^${shape.re}`).exec(g);
      const prefix = m?.[1] ?? '';
      return `${prefix}[REDACTED:${shape.name}]`;
    }
    return `[REDACTED:${shape.name}]`;
  }
  return REDACTED;
}

class RedactingTransform extends Transform {
  private carry = '';

  constructor(private readonly redactor: Redactor) {
    super();
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const { out, carry } = this.redactor.streamPass(this.carry + buf.toString('latin1'), false);
    this.carry = carry;
    if (out.length) this.push(Buffer.from(out, 'latin1'));
    cb();
  }

  override _flush(cb: TransformCallback): void {
    const { out } = this.redactor.streamPass(this.carry, true);
    this.carry = '';
    if (out.length) this.push(Buffer.from(out, 'latin1'));
    cb();
  }
}
