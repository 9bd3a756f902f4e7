import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { defineAction, type ActionContext } from '../../core/define-action.js';
import { isToolError } from '../../core/errors.js';
import { destinationArgs, destinationFor } from './destination.js';
import { exchange, exchangeSignal, isJsonType, type ExchangeResult } from './exchange.js';
import {
  describeExpect,
  expectStatusArg,
  followRedirectsArg,
  gateDestination,
  maxRedirects,
  methodArg,
  statusMatches,
  targetOf,
} from './request.js';

export const checkInput = z.strictObject({
  ...destinationArgs,
  method: methodArg(['GET', 'HEAD', 'OPTIONS']),
  follow_redirects: followRedirectsArg,
  expect_status: expectStatusArg.describe('Expected status: 200, "2xx", or a list (default "2xx")'),
  expect_body_contains: z
    .union([z.string().min(1), z.array(z.string().min(1)).max(50)])
    .optional()
    .describe('Text the body must contain (every item of a list)'),
  expect_json: z
    .record(z.string(), z.unknown())
    .optional()
    .describe('JSON body paths and the values they must equal, e.g. {"status": "up", "checks.db.ok": true, "items[0].id": 1}'),
  max_latency_ms: z.number().int().min(1).optional().describe('Fail when the response headers take longer than this'),
});
export type CheckArgs = z.output<typeof checkInput>;

export interface CheckItem {
  check: string;
  passed: boolean;
  expected: unknown;
  actual: unknown;
}

export interface CheckResult {
  passed: boolean;
  url: string;
  status: number | null;
  latency_ms: number | null;
  reasons: string[];
  checks: CheckItem[];
  body_uri?: string;
  profile?: string;
}

/** A dotted / bracketed path into parsed JSON: `a.b[0].c`, `$.a.b`, `items.0.id`. */
export function jsonPath(value: unknown, path: string): { found: boolean; value: unknown } {
  const p = path.replace(/^\$\.?/, '');
  if (p === '') return { found: true, value };
  const parts: string[] = [];
  for (const m of p.matchAll(/([^.[\]]+)|\[(\d+|"[^"]*"|'[^']*')\]/g)) {
    const raw = m[1] ?? m[2]!;
    parts.push(/^["']/.test(raw) ? raw.slice(1, -1) : raw);
  }
  let cur: unknown = value;
  for (const key of parts) {
    if (Array.isArray(cur) && /^\d+$/.test(key)) {
      const i = Number(key);
      if (i >= cur.length) return { found: false, value: undefined };
      cur = cur[i];
    } else if (cur && typeof cur === 'object' && Object.prototype.hasOwnProperty.call(cur, key)) {
      cur = (cur as Record<string, unknown>)[key];
    } else {
      return { found: false, value: undefined };
    }
  }
  return { found: true, value: cur };
}

/** The whole body as text, from the artifact when the inline copy is partial (bounded). */
async function bodyText(ctx: ActionContext, r: ExchangeResult): Promise<string> {
  if (!r.body.truncated) return r.body.inline;
  const buf = await ctx.services.artifacts.readAll(r.body.uri, ctx.services.config.policy.limits.template_max_bytes);
  return ctx.services.redactor.redact(buf.toString('utf8'));
}

export async function runCheck(ctx: ActionContext, a: CheckArgs): Promise<CheckResult> {
  const method = a.method.toUpperCase();
  const dest = destinationFor(a, ctx.services);
  const profile = a.profile ?? a.profile_name;
  const expectStatus = a.expect_status ?? '2xx';
  const deadline = exchangeSignal(ctx, dest, (a as { timeout_ms?: number }).timeout_ms);
  const signal = a.max_latency_ms ? AbortSignal.any([deadline.signal, AbortSignal.timeout(a.max_latency_ms)]) : deadline.signal;
  const started = performance.now();
  const checks: CheckItem[] = [];
  const fail = (reason: string, status: number | null = null, latency: number | null = null): CheckResult => ({
    passed: false,
    url: dest.url.href,
    status,
    latency_ms: latency,
    reasons: [reason],
    checks,
    ...(profile ? { profile } : {}),
  });

  let r: ExchangeResult;
  try {
    r = await exchange(ctx, {
      dest,
      method,
      headers: a.headers ?? {},
      body: { kind: 'none' },
      maxRedirects: maxRedirects(a.follow_redirects),
      maxResponseBytes: ctx.services.config.policy.limits.artifact_max_bytes,
      signal,
    });
  } catch (e) {
    deadline.dispose();
    // the call's own timeout, cancellation and policy refusals stay errors; an unreachable or
    // slow service is what a health check reports
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (signal.aborted && a.max_latency_ms) {
      checks.push({
        check: 'latency',
        passed: false,
        expected: `<= ${a.max_latency_ms} ms`,
        actual: `no response within ${a.max_latency_ms} ms`,
      });
      return fail(`no response within max_latency_ms (${a.max_latency_ms} ms)`, null, round(performance.now() - started));
    }
    if (isToolError(e) && (e.code === 'CONNECTION_FAILED' || e.code === 'UPSTREAM_ERROR' || e.code === 'TIMEOUT')) {
      checks.push({ check: 'reachable', passed: false, expected: 'a response', actual: e.message });
      return fail(e.message);
    }
    throw e;
  }

  deadline.dispose();
  const latency = r.timing.ttfb_ms;
  const statusOk = statusMatches(r.status, expectStatus);
  checks.push({ check: 'status', passed: statusOk, expected: expectStatus, actual: r.status });
  const reasons: string[] = [];
  if (!statusOk) reasons.push(`status ${r.status}, expected ${describeExpect(expectStatus)}`);
  if (a.max_latency_ms !== undefined) {
    const ok = latency <= a.max_latency_ms;
    checks.push({ check: 'latency', passed: ok, expected: `<= ${a.max_latency_ms} ms`, actual: latency });
    if (!ok) reasons.push(`latency ${latency} ms over max_latency_ms ${a.max_latency_ms}`);
  }

  if (a.expect_body_contains !== undefined || a.expect_json !== undefined) {
    let text: string | undefined;
    try {
      text = await bodyText(ctx, r);
    } catch (e) {
      const msg = isToolError(e) ? e.message : String(e);
      checks.push({ check: 'body', passed: false, expected: 'a readable body', actual: msg });
      reasons.push(`body could not be read: ${msg}`);
    }
    if (text !== undefined) {
      for (const needle of a.expect_body_contains === undefined
        ? []
        : Array.isArray(a.expect_body_contains)
          ? a.expect_body_contains
          : [a.expect_body_contains]) {
        const ok = text.includes(needle);
        checks.push({ check: 'body_contains', passed: ok, expected: needle, actual: ok ? 'found' : 'not found' });
        if (!ok) reasons.push(`body does not contain ${JSON.stringify(needle)}`);
      }
      if (a.expect_json !== undefined) {
        let parsed: unknown;
        let parseError: string | undefined;
        try {
          parsed = JSON.parse(text);
        } catch (e) {
          parseError = `body is not JSON (${isJsonType(r.contentType) ? 'invalid JSON' : `content-type ${r.contentType || 'none'}`}): ${(e as Error).message}`;
        }
        for (const [path, expected] of Object.entries(a.expect_json)) {
          if (parseError) {
            checks.push({ check: `json ${path}`, passed: false, expected, actual: parseError });
            continue;
          }
          const got = jsonPath(parsed, path);
          const ok = got.found && isDeepStrictEqual(got.value, expected);
          checks.push({ check: `json ${path}`, passed: ok, expected, actual: got.found ? got.value : '(absent)' });
          if (!ok)
            reasons.push(
              got.found
                ? `${path} is ${JSON.stringify(got.value)}, expected ${JSON.stringify(expected)}`
                : `${path} is absent, expected ${JSON.stringify(expected)}`,
            );
        }
        if (parseError) reasons.push(parseError);
      }
    }
  }

  return {
    passed: reasons.length === 0,
    url: r.url.href,
    status: r.status,
    latency_ms: latency,
    reasons,
    checks,
    body_uri: r.body.uri,
    ...(profile ? { profile } : {}),
  };
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

export const checkAction = defineAction({
  tool: 'http',
  action: 'check',
  effect: 'read',
  description:
    'Health check: GET (or HEAD/OPTIONS) a url or profile + path and judge it: expect_status (default 2xx), expect_body_contains, expect_json {path: value}, max_latency_ms. A failed check is a result (passed: false, reasons), not an error',
  input: checkInput,
  target: targetOf,
  gate: (a, services) => gateDestination(a, services),
  summarize: (r: CheckResult) =>
    r.passed ? `passed: ${r.url} ${r.status} in ${r.latency_ms} ms` : `FAILED: ${r.url}: ${r.reasons.join('; ')}`,
  handler: runCheck,
});
