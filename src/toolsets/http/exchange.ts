import { once } from 'node:events';
import { STATUS_CODES } from 'node:http';
import type { Readable } from 'node:stream';
import { findSsrfError, HttpAgents, sendOnce, type RawResponse } from '../../adapters/http-agents.js';
import type { ActionContext, Sink, SinkResult } from '../../core/define-action.js';
import { invalid, isToolError, ToolError } from '../../core/errors.js';
import { setOwn } from '../../core/json-values.js';
import { checkUrl, guardFor, onProfileOrigin, ssrfDenied, tlsFor, type Destination } from './destination.js';

/** Redirects followed when follow_redirects is true. */
export const DEFAULT_MAX_REDIRECTS = 10;

/** Header names whose values are credentials: masked wherever headers are recorded. */
const SENSITIVE_HEADER =
  /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|apikey|x-auth-token|x-access-token|x-csrf-token|x-xsrf-token|private-token|x-vault-token|x-amz-security-token)$|(token|secret|password|passwd|session|api[-_]?key|credential)/i;

/** Headers the caller may not set: undici owns framing and connection management. */
const FORBIDDEN_HEADER = /^(connection|keep-alive|transfer-encoding|upgrade|te|trailer|proxy-connection|content-length|expect|host)$/i;

export function isSensitiveHeader(name: string): boolean {
  return SENSITIVE_HEADER.test(name);
}

/** A copy of headers with credential values masked (keeps the auth scheme word). */
export function maskHeaders(h: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    if (!isSensitiveHeader(k)) {
      setOwn(out, k, v);
      continue;
    }
    const mask = (s: string): string => {
      if (/^set-cookie$|^cookie$/i.test(k)) return s.replace(/=([^;,]*)/g, (m, val: string) => (val ? '=[REDACTED]' : m));
      const scheme = /^(Bearer|Basic|Token|Digest|Negotiate|Bot)\s+/i.exec(s);
      return scheme ? `${scheme[1]} [REDACTED]` : '[REDACTED]';
    };
    setOwn(out, k, Array.isArray(v) ? v.map(mask) : mask(v));
  }
  return out;
}

export type BodySpec =
  | { kind: 'none' }
  | { kind: 'buffer'; data: Buffer; contentType: string | undefined; source: 'json' | 'body' | 'body_base64' }
  | { kind: 'ref'; uri: string; contentType: string };

export interface BodyArgs {
  json?: unknown;
  body?: string | undefined;
  body_base64?: string | undefined;
  body_ref?: string | undefined;
}

export function bodySpec(a: BodyArgs, method: string): BodySpec {
  const given = (['json', 'body', 'body_base64', 'body_ref'] as const).filter((k) => a[k] !== undefined);
  if (given.length > 1) throw invalid(`pass one request body, not ${given.join(' and ')}`);
  if (given.length === 1 && method === 'HEAD') throw invalid('a HEAD request has no body');
  if (a.json !== undefined)
    return { kind: 'buffer', data: Buffer.from(JSON.stringify(a.json), 'utf8'), contentType: 'application/json', source: 'json' };
  if (a.body !== undefined)
    return { kind: 'buffer', data: Buffer.from(a.body, 'utf8'), contentType: 'text/plain; charset=utf-8', source: 'body' };
  if (a.body_base64 !== undefined) {
    const s = a.body_base64.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(s)) throw invalid('body_base64 is not valid base64');
    return { kind: 'buffer', data: Buffer.from(s, 'base64'), contentType: undefined, source: 'body_base64' };
  }
  if (a.body_ref !== undefined) return { kind: 'ref', uri: a.body_ref, contentType: 'application/octet-stream' };
  return { kind: 'none' };
}

export interface ExchangeSpec {
  dest: Destination;
  method: string;
  /** The caller's headers (tool arguments). */
  headers: Record<string, string>;
  body: BodySpec;
  maxRedirects: number;
  /** Stop reading the response body past this many bytes. */
  maxResponseBytes: number;
  /** Abort signal for this exchange (the call's, or a narrower one for check's max_latency_ms). */
  signal: AbortSignal;
}

export interface Hop {
  method: string;
  url: string;
  status: number;
  location?: string;
}

export interface ExchangeResult {
  status: number;
  statusText: string;
  url: URL;
  method: string;
  headers: Record<string, string | string[]>;
  contentType: string;
  hops: Hop[];
  body: SinkResult;
  /** True when the body was cut at maxResponseBytes. */
  bodyLimited: boolean;
  textual: boolean;
  timing: { ttfb_ms: number; total_ms: number };
  /** The last request sent, headers masked. */
  sent: SentRequest;
}

export interface SentRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body_bytes: number;
}

/** The profile's header values with their secret references resolved (and registered with the redactor). */
function profileHeaders(ctx: ActionContext, dest: Destination): Record<string, string> {
  const out: Record<string, string> = {};
  if (!dest.profile) return out;
  for (const [k, v] of Object.entries(dest.profile.headers)) {
    out[k.toLowerCase()] = ctx.services.secrets.resolve(v, `profiles.json: ${dest.profileName}.headers.${k}`);
  }
  return out;
}

function checkCallerHeaders(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k)) throw invalid(`header name ${JSON.stringify(k)} is not a valid token`);
    if (FORBIDDEN_HEADER.test(k)) throw invalid(`header ${k} is managed by the http client and cannot be set`);
    if (/[\r\n\0]/.test(v)) throw invalid(`header ${k} contains a line break or NUL`);
    out[k.toLowerCase()] = v;
  }
  return out;
}

const TEXTUAL =
  /^(text\/|application\/(json|[\w.+-]*\+json|xml|[\w.+-]*\+xml|javascript|ecmascript|x-www-form-urlencoded|yaml|x-yaml|toml|x-ndjson|ndjson|graphql|problem\+json|csv|sql))|^$/i;

export function isTextual(contentType: string): boolean {
  return TEXTUAL.test(contentType.split(';')[0]!.trim());
}

export function isJsonType(contentType: string): boolean {
  return /^application\/([\w.+-]*\+)?json$/i.test(contentType.split(';')[0]!.trim());
}

/**
 * The signal for one exchange: the call's, narrowed by the profile's timeout_ms when the caller
 * passed no timeout_ms (a profile cannot extend the call's deadline).
 */
export function exchangeSignal(
  ctx: ActionContext,
  dest: Destination,
  explicitTimeout: number | undefined,
): { signal: AbortSignal; dispose(): void } {
  const t = dest.profile?.timeout_ms;
  if (explicitTimeout !== undefined || t === undefined || Date.now() + t >= ctx.deadline)
    return { signal: ctx.signal, dispose: () => undefined };
  const c = new AbortController();
  const onAbort = (): void => c.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(
    () =>
      c.abort(
        new ToolError('TIMEOUT', `no complete response within timeout_ms ${t} of profile ${dest.profileName}`, {
          hint: `raise timeout_ms in profile ${dest.profileName} (profiles.json), or pass timeout_ms`,
        }),
      ),
    t,
  );
  return {
    signal: c.signal,
    dispose: () => {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onAbort);
    },
  };
}

const agentsOf = (ctx: ActionContext): HttpAgents => ctx.services.shared('http-agents', () => new HttpAgents());

/** Maps a transport failure to the envelope's codes, naming what to check. */
export function transportError(e: unknown, url: URL, dest: Destination, hop: number, signal: AbortSignal): ToolError {
  if (signal.aborted && isToolError(signal.reason)) return signal.reason;
  if (isToolError(e)) return e;
  const blocked = findSsrfError(e);
  if (blocked) return ssrfDenied(blocked.refusal, url, dest, hop);
  const err = e as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = String(err?.code ?? err?.cause?.code ?? '');
  const msg = String(err?.message ?? e);
  if (err?.name === 'AbortError' || code === 'UND_ERR_ABORTED') return new ToolError('CANCELLED', `the request to ${url.host} was aborted`);
  const tls = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|SSL|ALTNAME/i.test(code) || /certificate/i.test(msg);
  if (tls) {
    return new ToolError('CONNECTION_FAILED', `TLS verification of ${url.host} failed: ${msg}`, {
      hint: dest.profileName
        ? `trust the server's CA with "ca_file" in profile ${dest.profileName} (profiles.json)`
        : 'use an http profile with "ca_file" naming the CA that signed the server certificate',
      retryable: false,
      details: { code },
    });
  }
  if (
    /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ECONNRESET|ETIMEDOUT|EPIPE|UND_ERR_CONNECT_TIMEOUT|UND_ERR_SOCKET|UND_ERR_CLOSED)$/.test(
      code,
    )
  ) {
    return new ToolError('CONNECTION_FAILED', `could not reach ${url.host}: ${code}${msg && !msg.includes(code) ? ` (${msg})` : ''}`, {
      hint: code === 'ENOTFOUND' ? 'check the host name' : 'check that the service is up and the port is right',
      details: { code },
    });
  }
  return new ToolError('UPSTREAM_ERROR', `request to ${url.host} failed: ${msg}`, { details: code ? { code } : undefined });
}

async function openBody(ctx: ActionContext, body: BodySpec): Promise<{ payload: Buffer | Readable | undefined; bytes: number }> {
  if (body.kind === 'none') return { payload: undefined, bytes: 0 };
  if (body.kind === 'buffer') return { payload: body.data, bytes: body.data.length };
  const limit = ctx.services.config.policy.limits.artifact_max_bytes;
  const { stream, bytes } = await ctx.services.artifacts.openStream(body.uri, limit);
  return { payload: stream as Readable, bytes };
}

function hopHeaders(
  spec: ExchangeSpec,
  url: URL,
  firstOrigin: string,
  fromProfile: Record<string, string>,
  caller: Record<string, string>,
  body: BodySpec,
  bytes: number,
): Record<string, string> {
  const h: Record<string, string> = { 'user-agent': 'infra-mcp', accept: '*/*' };
  // a profile's headers only ever go to the profile's origin; on another origin the caller's
  // credentials are dropped too, as browsers do on a cross-origin redirect
  if (onProfileOrigin(spec.dest, url)) Object.assign(h, fromProfile);
  const sameOrigin = url.origin === firstOrigin;
  for (const [k, v] of Object.entries(caller)) {
    if (!sameOrigin && isSensitiveHeader(k)) continue;
    h[k] = v;
  }
  if (body.kind !== 'none') {
    if (body.contentType && h['content-type'] === undefined) h['content-type'] = body.contentType;
    h['content-length'] = String(bytes);
  }
  return h;
}

/**
 * Sends the request, following redirects itself (bounded, each hop re-checked against
 * allow_hosts and the SSRF rules, profile headers never leaving the profile's origin), and
 * streams the final body into the `body` sink with the size cap enforced while reading.
 */
export async function exchange(ctx: ActionContext, spec: ExchangeSpec): Promise<ExchangeResult> {
  const sent: SentRequest[] = [];
  const hops: Hop[] = [];
  try {
    return await exchangeHops(ctx, spec, sent, hops);
  } catch (e) {
    await recordSent(ctx, sent, hops);
    throw e;
  }
}

/**
 * Streams the response body into the call's `body` artifact, reading no more than
 * maxResponseBytes. A body that fits the inline cap is kept in memory and written with one
 * write and one rename (DESIGN §6: small artifacts on the hot path); anything longer goes
 * through a bounded, redacting sink with flat memory.
 */
async function storeBody(
  ctx: ActionContext,
  body: RawResponse['body'],
  textual: boolean,
  spec: ExchangeSpec,
): Promise<{ result: SinkResult; limited: boolean }> {
  const held: Buffer[] = [];
  let heldBytes = 0;
  let sink: Sink | undefined;
  let read = 0;
  let limited = false;
  const smallCap = Math.min(ctx.maxBytes, SMALL_BODY_BYTES);
  for await (const chunk of body as AsyncIterable<Buffer>) {
    let c = chunk;
    if (read + c.length > spec.maxResponseBytes) {
      c = c.subarray(0, spec.maxResponseBytes - read);
      limited = true;
    }
    read += c.length;
    if (!sink && heldBytes + c.length <= smallCap) {
      held.push(c);
      heldBytes += c.length;
    } else {
      if (!sink) {
        sink = ctx.sink('body', textual ? undefined : { inlineBytes: 0 });
        for (const h of held) sink.write(h);
        held.length = 0;
      }
      if (c.length && !sink.write(c)) await once(sink, 'drain', { signal: spec.signal });
    }
    if (limited) break;
  }
  if (limited) body.destroy();
  if (sink) return { result: await sink.done(), limited };
  const raw = Buffer.concat(held, heldBytes);
  const stored = ctx.services.redactor.redactBuffer(raw);
  const w = await ctx.writeArtifact('body', stored, { raw: true });
  return {
    result: {
      name: 'body',
      bytes: raw.length,
      stored_bytes: stored.length,
      sha256: w.sha256,
      inline: textual ? stored.toString('utf8') : '',
      truncated: false,
      artifact_limited: false,
      uri: w.uri,
    },
    limited,
  };
}

/** Bodies up to this size (and the inline cap) skip the streaming sink. */
const SMALL_BODY_BYTES = 64 * 1024;

/** A failed call has no result to carry what was sent: it is kept beside call.json. */
export async function recordSent(ctx: ActionContext, sent: SentRequest[], hops: Hop[]): Promise<void> {
  if (!sent.length) return;
  await ctx.writeArtifact('request.json', JSON.stringify({ requests: sent, hops }, null, 2)).catch((w: unknown) => {
    ctx.log.warn('request.json could not be written', { call_id: ctx.callId, error: (w as Error).message });
  });
}

async function exchangeHops(ctx: ActionContext, spec: ExchangeSpec, sent: SentRequest[], hops: Hop[]): Promise<ExchangeResult> {
  const agents = agentsOf(ctx);
  const started = performance.now();
  const fromProfile = profileHeaders(ctx, spec.dest);
  const caller = checkCallerHeaders(spec.headers);
  const firstOrigin = spec.dest.url.origin;
  let url = spec.dest.url;
  let method = spec.method;
  let body = spec.body;
  let res: RawResponse | undefined;

  for (let hop = 0; ; hop++) {
    checkUrl(url, spec.dest, ctx.services, hop);
    const opened = await openBody(ctx, body);
    const headers = hopHeaders(spec, url, firstOrigin, fromProfile, caller, body, opened.bytes);
    sent.push({ method, url: url.href, headers: maskHeaders(headers) as Record<string, string>, body_bytes: opened.bytes });
    try {
      res = await sendOnce(agents, {
        url,
        method,
        headers,
        body: opened.payload,
        signal: spec.signal,
        agent: { guard: guardFor(spec.dest, url, ctx.services), tls: tlsFor(spec.dest, url, ctx.services) },
      });
    } catch (e) {
      (opened.payload as Readable | undefined)?.destroy?.();
      throw transportError(e, url, spec.dest, hop, spec.signal);
    }
    const location = headerValue(res.headers.location);
    const isRedirect = [301, 302, 303, 307, 308].includes(res.status) && location !== undefined;
    hops.push({ method, url: url.href, status: res.status, ...(isRedirect ? { location } : {}) });
    if (!isRedirect || spec.maxRedirects === 0) break;
    // drain and let the connection go back to the pool before the next hop
    await discard(res.body);
    if (hop + 1 > spec.maxRedirects) {
      throw new ToolError('UPSTREAM_ERROR', `more than ${spec.maxRedirects} redirects, last to ${location}`, {
        hint: 'the server may be in a redirect loop; call the last URL directly, or raise follow_redirects (a number, at most 20)',
        retryable: false,
        details: { redirects: hops },
      });
    }
    let next: URL;
    try {
      next = new URL(location!, url);
    } catch {
      throw new ToolError('UPSTREAM_ERROR', `redirect to an invalid URL: ${location!.slice(0, 200)}`);
    }
    next.hash = '';
    if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
      if (method !== 'HEAD') method = 'GET';
      body = { kind: 'none' };
      delete caller['content-type'];
    }
    url = next;
  }

  const ttfb = performance.now() - started;
  const contentType = headerValue(res.headers['content-type']) ?? '';
  const textual = isTextual(contentType);
  let result: SinkResult;
  let bodyLimited = false;
  try {
    ({ result, limited: bodyLimited } = await storeBody(ctx, res.body, textual, spec));
  } catch (e) {
    res.body.destroy();
    throw transportError(e, url, spec.dest, hops.length - 1, spec.signal);
  }
  return {
    status: res.status,
    statusText: STATUS_CODES[res.status] ?? '',
    url,
    method,
    headers: maskHeaders(res.headers),
    contentType,
    hops,
    sent: sent.at(-1)!,
    body: result,
    bodyLimited,
    textual,
    timing: { ttfb_ms: round(ttfb), total_ms: round(performance.now() - started) },
  };
}

async function discard(body: RawResponse['body']): Promise<void> {
  try {
    if (body.dump) await body.dump({ limit: 64 * 1024 });
    else body.destroy();
  } catch {
    body.destroy();
  }
}

export function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

const round = (ms: number): number => Math.round(ms * 100) / 100;
