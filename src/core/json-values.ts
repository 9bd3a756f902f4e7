/**
 * Helpers for values that came from outside (a client's arguments, a server's reply): their
 * nesting depth, keys such as "__proto__" kept as data, and strings that cannot hold a NUL.
 *
 * JSON.parse builds values of any depth, but the recursive code after it (schema checks,
 * redaction, JSON.stringify) overflows the stack somewhere past a thousand levels, so values are
 * measured first, without recursion, and deep ones refused or left as text.
 */

/** Deepest nesting the pipeline accepts in a call's arguments and parses out of a response. */
export const MAX_DEPTH = 100;

/** Deepest nesting of a call's result (a database's JSON, an upstream server's reply): see Redactor.redactValue. */
export const RESULT_MAX_DEPTH = 500;

/**
 * The nesting depth of `value` (a scalar is 0, `[]` and `{}` are 1, `[[1]]` is 2), counted
 * with an explicit stack; it stops once past `limit` and returns limit + 1.
 */
export function depthOf(value: unknown, limit = MAX_DEPTH): number {
  if (value === null || typeof value !== 'object') return 0;
  let max = 0;
  // two parallel stacks (objects and their depths): no allocation per value
  const items: object[] = [value];
  const depths: number[] = [1];
  while (items.length > 0) {
    const v = items.pop()!;
    const d = depths.pop()!;
    if (d > max) {
      max = d;
      if (max > limit) return limit + 1;
    }
    if (Array.isArray(v)) {
      for (const c of v as unknown[])
        if (c !== null && typeof c === 'object') {
          items.push(c);
          depths.push(d + 1);
        }
    } else {
      for (const k in v) {
        const c = (v as Record<string, unknown>)[k];
        if (c !== null && typeof c === 'object') {
          items.push(c);
          depths.push(d + 1);
        }
      }
    }
  }
  return max;
}

/**
 * A copy of `value` down to `limit` levels; anything deeper becomes a string saying so. For
 * recording what a call that was refused for its depth sent.
 */
export function clipDepth(value: unknown, limit = MAX_DEPTH): unknown {
  const clip = (v: unknown, d: number): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (d >= limit) return `… (nested deeper than ${limit} levels; not recorded)`;
    if (Array.isArray(v)) return v.map((x) => clip(x, d + 1));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) setOwn(out, k, clip(x, d + 1));
    return out;
  };
  return clip(value, 0);
}

/** A value nested deeper than the code handling it allows. */
export class TooDeepError extends Error {
  constructor(readonly limit: number) {
    super(`a value nests more than ${limit} levels deep`);
    this.name = 'TooDeepError';
  }
}

/** V8's error for a recursion that ran out of stack. */
export function isStackOverflow(e: unknown): boolean {
  return e instanceof RangeError && /call stack size/i.test(e.message);
}

/**
 * `obj[key] = value` that keeps a key named "__proto__" as an own property (JSON.parse makes
 * one; plain assignment would set the object's prototype instead and the key would vanish).
 */
export function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/**
 * For `z.string().refine(noNul, …)`: no NUL byte. A process argument, a git argument, a remote
 * command line and Postgres statement text all end at one (C strings, the wire protocol).
 */
export const noNul = (s: string): boolean => !s.includes('\0');
