import { z } from 'zod';
import { defineAction, type ActionContext } from '../../core/define-action.js';
import { ToolError } from '../../core/errors.js';
import { depthOf, MAX_DEPTH } from '../../core/json-values.js';
import type { Services } from '../../core/services.js';
import { checkUrl, destinationArgs, destinationFor, profileKey, type resolveDestination } from './destination.js';
import { bodySpec, DEFAULT_MAX_REDIRECTS, exchange, exchangeSignal, isJsonType, recordSent, type ExchangeResult } from './exchange.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export const methodArg = (allowed: readonly string[]) =>
  z
    .enum([...allowed, ...allowed.map((m) => m.toLowerCase())] as [string, ...string[]])
    .default('GET')
    .describe(`HTTP method: ${allowed.join(', ')} (default GET)`);

const statusPattern = z.union([
  z.number().int().min(100).max(599),
  z.string().regex(/^[1-5](\d\d|xx)$/, 'a status like 200 or a class like 2xx'),
]);
export const expectStatusArg = z
  .union([statusPattern, z.array(statusPattern).min(1).max(50)])
  .optional()
  .describe('Expected status: 200, "2xx", or a list; request fails with UPSTREAM_ERROR when it differs, check reports it');

export const followRedirectsArg = z
  .union([z.boolean(), z.number().int().min(0).max(20)])
  .optional()
  .describe(
    `Follow redirects (default true: at most ${DEFAULT_MAX_REDIRECTS}; a number sets the bound). Every hop is re-checked against policy`,
  );

export const maxResponseBytesArg = z
  .number()
  .int()
  .min(0)
  .optional()
  .describe(
    'Stop reading the response body past this many bytes (default limits.artifact_max_bytes); the body is stored in the artifact, max_bytes bounds the inline copy',
  );

export const bodyArgs = {
  json: z.unknown().optional().describe('JSON request body (sets content-type: application/json)'),
  body: z.string().optional().describe('Text request body'),
  body_base64: z.string().optional().describe('Binary request body, base64'),
  body_ref: z.string().optional().describe('Request body streamed from an artifact (artifact://calls/<id>/<file>)'),
};

export const requestInput = z.strictObject({
  ...destinationArgs,
  method: methodArg(METHODS),
  ...bodyArgs,
  follow_redirects: followRedirectsArg,
  max_response_bytes: maxResponseBytesArg,
  expect_status: expectStatusArg,
});
export type RequestArgs = z.output<typeof requestInput>;

export function maxRedirects(v: boolean | number | undefined): number {
  return v === undefined || v === true ? DEFAULT_MAX_REDIRECTS : v === false ? 0 : v;
}

export function statusMatches(status: number, expect: z.output<typeof expectStatusArg>): boolean {
  if (expect === undefined) return true;
  const list = Array.isArray(expect) ? expect : [expect];
  return list.some((e) =>
    typeof e === 'number' ? e === status : e.endsWith('xx') ? Math.floor(status / 100) === Number(e[0]) : Number(e) === status,
  );
}

export function describeExpect(expect: z.output<typeof expectStatusArg>): string {
  return Array.isArray(expect) ? expect.join(' | ') : String(expect);
}

/** Checks the destination before the audit row opens, so a refusal is recorded as denied. */
export function gateDestination(a: Parameters<typeof resolveDestination>[0], services: Services): void {
  const dest = destinationFor(a, services);
  checkUrl(dest.url, dest, services, 0);
}

export function targetOf(a: {
  url?: string | undefined;
  profile?: string | undefined;
  profile_name?: string | undefined;
}): string | undefined {
  const p = a.profile ?? a.profile_name;
  if (p) return p;
  try {
    return a.url ? new URL(a.url).host : undefined;
  } catch {
    return undefined;
  }
}

export interface ResponseResult {
  status: number;
  status_text: string;
  method: string;
  url: string;
  profile?: string;
  headers: Record<string, string | string[]>;
  content_type: string;
  /** Head (and tail) of the body as text, when the content type is textual. */
  body?: string;
  /** The parsed body when it is JSON and wholly inline. */
  json?: unknown;
  body_bytes: number;
  body_sha256: string;
  body_uri: string;
  body_truncated?: boolean;
  body_limited?: boolean;
  redirects?: { status: number; url: string; location?: string }[];
  timing: { ttfb_ms: number; total_ms: number };
  /** What was sent on the last hop, credentials masked (so call.json records it). */
  request: { headers: Record<string, string>; body_bytes: number };
}

export function responseResult(r: ExchangeResult, profile: string | undefined): ResponseResult {
  const out: ResponseResult = {
    status: r.status,
    status_text: r.statusText,
    method: r.method,
    url: r.url.href,
    ...(profile ? { profile } : {}),
    headers: r.headers,
    content_type: r.contentType,
    body_bytes: r.body.bytes,
    body_sha256: r.body.sha256,
    body_uri: r.body.uri,
    timing: r.timing,
    request: { headers: r.sent.headers, body_bytes: r.sent.body_bytes },
  };
  if (r.textual) out.body = r.body.inline;
  if (r.body.truncated) out.body_truncated = true;
  if (r.bodyLimited) out.body_limited = true;
  if (isJsonType(r.contentType) && !r.body.truncated && !r.bodyLimited && r.body.inline.length) {
    try {
      const parsed: unknown = JSON.parse(r.body.inline);
      // a document nested deeper than the pipeline handles stays text
      if (depthOf(parsed) <= MAX_DEPTH) {
        out.json = parsed;
        delete out.body; // the parsed form says the same, once
      }
    } catch {
      /* not JSON after all: keep the text */
    }
  }
  if (r.hops.length > 1)
    out.redirects = r.hops.slice(0, -1).map((h) => ({ status: h.status, url: h.url, ...(h.location ? { location: h.location } : {}) }));
  return out;
}

export async function runRequest(ctx: ActionContext, a: RequestArgs): Promise<ResponseResult> {
  const method = a.method.toUpperCase();
  const dest = destinationFor(a, ctx.services);
  const deadline = exchangeSignal(ctx, dest, (a as { timeout_ms?: number }).timeout_ms);
  let r: ExchangeResult;
  try {
    r = await exchange(ctx, {
      dest,
      method,
      headers: a.headers ?? {},
      body: bodySpec(a, method),
      maxRedirects: maxRedirects(a.follow_redirects),
      maxResponseBytes: a.max_response_bytes ?? ctx.services.config.policy.limits.artifact_max_bytes,
      signal: deadline.signal,
    });
  } finally {
    deadline.dispose();
  }
  const result = responseResult(r, profileKey(a));
  if (!statusMatches(r.status, a.expect_status)) {
    await recordSent(ctx, [r.sent], r.hops);
    throw new ToolError(
      'UPSTREAM_ERROR',
      `${method} ${r.url.href} answered ${r.status} ${r.statusText}, expected ${describeExpect(a.expect_status)}`,
      {
        retryable: r.status >= 500 || r.status === 429,
        hint: `the response is in ${r.body.uri}`,
        details: { status: r.status, expected: a.expect_status, body_uri: r.body.uri, body_head: (result.body ?? '').slice(0, 2048) },
      },
    );
  }
  return result;
}

export const requestAction = defineAction({
  tool: 'http',
  action: 'request',
  effect: 'write',
  effectOf: (a) => (READ_METHODS.has(a.method.toUpperCase()) ? 'read' : 'write'),
  description:
    'HTTP request: url, or profile + path; method, query, headers; body as json, body (text), body_base64 or body_ref. Returns status, headers, timing and the body head (parsed JSON for JSON); the whole body is in the artifact',
  input: requestInput,
  target: targetOf,
  gate: (a, services) => {
    bodySpec(a, a.method.toUpperCase());
    return gateDestination(a, services);
  },
  summarize: (r: ResponseResult) => `${r.method} ${r.url} → ${r.status} (${r.body_bytes} bytes, ${Math.round(r.timing.total_ms)} ms)`,
  handler: runRequest,
});
