import { invalid } from '../../core/errors.js';

/**
 * Runbook templates: `{{ input.x }}`, `{{ steps.id.path }}`, `{{ state.k }}`, `{{ item }}`,
 * `{{ index }}`, `{{ run.id }}`, `{{ result.path }}` (retry.until and assert). A template that is
 * the whole string keeps its JSON type; inside a longer string the value is written as text
 * (objects as JSON). Secret references `${…}` are never resolved here: they stay literal.
 */

const TEMPLATE = /\{\{([^{}]*)\}\}/g;
const WHOLE = /^\{\{([^{}]*)\}\}$/;
const PATH = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/;

export const NAMESPACES = ['input', 'steps', 'state', 'item', 'index', 'run', 'result'] as const;

/** Looks up one template path; `undefined` when it names nothing. */
export interface Scope {
  resolve(path: string[]): Promise<unknown>;
}

/** In a dry run a value that only exists once a step has run stays as its template text. */
export class Deferred {
  constructor(readonly expr: string) {}
  toString(): string {
    return `{{ ${this.expr} }}`;
  }
}

export interface TemplateRef {
  expr: string;
  path: string[];
}

/** Parses one expression (`steps.q.rows.0.id`) into path segments; refuses anything else. */
export function parseExpr(raw: string): string[] {
  const expr = raw.trim();
  if (!PATH.test(expr)) {
    throw invalid(
      `template {{ ${expr} }} is not a path like input.name, steps.<id>.stdout or state.key`,
      'templates hold a dotted path only; no filters or code',
    );
  }
  const path = expr.split('.');
  if (!(NAMESPACES as readonly string[]).includes(path[0]!)) {
    throw invalid(`template {{ ${expr} }} starts with ${JSON.stringify(path[0])}, which is not one of ${NAMESPACES.join(', ')}`);
  }
  return path;
}

/** Every template reference in a JSON value (strings anywhere inside it). */
export function refsIn(value: unknown, out: TemplateRef[] = []): TemplateRef[] {
  if (typeof value === 'string') {
    for (const m of value.matchAll(TEMPLATE)) out.push({ expr: m[1]!.trim(), path: parseExpr(m[1]!) });
  } else if (Array.isArray(value)) {
    for (const v of value) refsIn(v, out);
  } else if (value && typeof value === 'object') {
    for (const v of Object.values(value)) refsIn(v, out);
  }
  return out;
}

export function hasTemplate(value: unknown): boolean {
  if (typeof value === 'string') return /\{\{[^{}]*\}\}/.test(value);
  if (Array.isArray(value)) return value.some(hasTemplate);
  if (value && typeof value === 'object') return Object.values(value).some(hasTemplate);
  return false;
}

/** Quotes one word for POSIX sh: single quotes, with `'` written as `'\''`. */
export function shellQuote(s: string): string {
  if (s.includes('\0')) throw invalid('a value interpolated into a shell command contains a NUL byte, which no shell argument can hold');
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function asText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Deferred) return v.toString();
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v === null) return 'null';
  return JSON.stringify(v);
}

export interface RenderOptions {
  /** Top-level argument names that are shell command strings: every value put into them is quoted. */
  shellFields?: ReadonlySet<string>;
}

const DROP = Symbol('drop');

/**
 * Renders every string of a JSON value. An object key whose value is a whole-string template
 * that names nothing is left out (an optional input that was not given).
 */
export async function render(value: unknown, scope: Scope, opts: RenderOptions = {}): Promise<unknown> {
  const r = await renderAt(value, scope, opts, 0);
  return r === DROP ? undefined : r;
}

async function renderAt(value: unknown, scope: Scope, opts: RenderOptions, depth: number, key?: string): Promise<unknown> {
  if (typeof value === 'string') return renderString(value, scope, depth === 1 && key !== undefined && opts.shellFields?.has(key) === true);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const v of value) {
      const r = await renderAt(v, scope, opts, depth + 1);
      out.push(r === DROP ? null : r);
    }
    return out;
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const r = await renderAt(v, scope, opts, depth + 1, k);
      if (r !== DROP) out[k] = r;
    }
    return out;
  }
  return value;
}

async function renderString(s: string, scope: Scope, shell: boolean): Promise<unknown> {
  const whole = WHOLE.exec(s);
  if (whole && !shell) {
    const v = await scope.resolve(parseExpr(whole[1]!));
    return v === undefined ? DROP : v;
  }
  let out = '';
  let last = 0;
  for (const m of s.matchAll(TEMPLATE)) {
    out += s.slice(last, m.index);
    const path = parseExpr(m[1]!);
    const v = await scope.resolve(path);
    if (v === undefined) {
      throw invalid(
        `{{ ${path.join('.')} }} has no value here`,
        'give the input, or use a whole-string template for an optional value (it is then left out)',
      );
    }
    out += v instanceof Deferred ? v.toString() : shell ? shellQuote(asText(v)) : asText(v);
    last = m.index + m[0].length;
  }
  return out + s.slice(last);
}

/** Walks a path into a JSON value: object keys and array indexes. */
export function walk(value: unknown, path: readonly string[]): unknown {
  let cur = value;
  for (const seg of path) {
    if (cur instanceof Deferred) return cur;
    if (Array.isArray(cur)) {
      if (seg === 'length') cur = cur.length;
      else if (/^\d+$/.test(seg)) cur = cur[Number(seg)];
      else return undefined;
    } else if (cur && typeof cur === 'object') {
      if (!Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
      cur = (cur as Record<string, unknown>)[seg];
    } else if (typeof cur === 'string' && seg === 'length') {
      cur = cur.length;
    } else return undefined;
  }
  return cur;
}

export function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (typeof v === 'string' && ['false', '0', 'no', 'null', 'undefined'].includes(v.trim().toLowerCase())) return false;
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

const OPS = ['==', '!=', '>=', '<=', '>', '<'] as const;
type Op = (typeof OPS)[number];

/** Splits on `sep` outside `{{ … }}`. */
function splitOutside(s: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s.startsWith('{{', i)) depth++;
    else if (s.startsWith('}}', i) && depth > 0) depth--;
    else if (depth === 0 && s.startsWith(sep, i)) {
      parts.push(s.slice(start, i));
      start = i + sep.length;
      i += sep.length - 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

function findOp(s: string): { op: Op; at: number } | undefined {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    if (s.startsWith('{{', i)) {
      depth++;
      i++;
      continue;
    }
    if (s.startsWith('}}', i) && depth > 0) {
      depth--;
      i++;
      continue;
    }
    if (depth > 0) continue;
    for (const op of OPS) if (s.startsWith(op, i)) return { op, at: i };
  }
  return undefined;
}

async function operand(raw: string, scope: Scope): Promise<unknown> {
  const s = raw.trim();
  const whole = WHOLE.exec(s);
  if (whole) return scope.resolve(parseExpr(whole[1]!));
  if (/\{\{/.test(s)) return renderString(s, scope, false);
  if (/^'.*'$/.test(s)) return s.slice(1, -1);
  try {
    return JSON.parse(s) as unknown;
  } catch {
    return s;
  }
}

function num(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  if (typeof v === 'boolean') return undefined;
  return undefined;
}

function compare(a: unknown, op: Op, b: unknown): boolean {
  if (op === '==' || op === '!=') {
    let eq: boolean;
    if ((a === undefined || a === null) && (b === undefined || b === null)) eq = true;
    else if (num(a) !== undefined && num(b) !== undefined) eq = num(a) === num(b);
    else eq = asText(a ?? '') === asText(b ?? '');
    return op === '==' ? eq : !eq;
  }
  const x = num(a);
  const y = num(b);
  if (x === undefined || y === undefined) return false;
  return op === '>' ? x > y : op === '<' ? x < y : op === '>=' ? x >= y : x <= y;
}

/**
 * Evaluates `when`, `retry.until` and `assert`: a boolean, a truthy template, `!` before it, a
 * comparison (`{{ steps.a.exit_code }} == 0`, `==, !=, >, <, >=, <=`), joined with `&&` / `||`.
 * Returns `undefined` in a dry run when the answer depends on a step not yet run.
 */
export async function evaluate(cond: string | boolean, scope: Scope): Promise<boolean | undefined> {
  if (typeof cond === 'boolean') return cond;
  let unknown = false;
  const anyOf = splitOutside(cond, '||');
  for (const alt of anyOf) {
    let all = true;
    for (const part of splitOutside(alt, '&&')) {
      const r = await atom(part, scope);
      if (r === undefined) unknown = true;
      else if (!r) {
        all = false;
        break;
      }
    }
    if (all && !unknown) return true;
  }
  return unknown ? undefined : false;
}

async function atom(raw: string, scope: Scope): Promise<boolean | undefined> {
  let s = raw.trim();
  let negate = false;
  while (s.startsWith('!') && !s.startsWith('!=')) {
    negate = !negate;
    s = s.slice(1).trim();
  }
  if (s === '') throw invalid(`condition ${JSON.stringify(raw)} is empty`);
  const op = findOp(s);
  let r: boolean;
  if (op) {
    const a = await operand(s.slice(0, op.at), scope);
    const b = await operand(s.slice(op.at + op.op.length), scope);
    if (a instanceof Deferred || b instanceof Deferred) return undefined;
    r = compare(a, op.op, b);
  } else {
    const v = await operand(s, scope);
    if (v instanceof Deferred) return undefined;
    r = truthy(v);
  }
  return negate ? !r : r;
}

/** Every template reference inside a condition (for validation). */
export function conditionRefs(cond: string | boolean): TemplateRef[] {
  return typeof cond === 'string' ? refsIn(cond) : [];
}
