import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher, buildConnector as BuildConnector } from 'undici';
import { checkAddress, checkHost, type SsrfOptions, type SsrfRefusal } from './http-ssrf.js';

/**
 * The only place that talks to undici (STYLE: adapters own third-party clients and their safe
 * defaults). One keep-alive undici Agent per (SSRF options, TLS options); each Agent keeps one
 * connection pool per origin. The SSRF guard runs inside the connector: on the host as written,
 * on every address DNS returns (inside the socket's lookup, so a name that resolves somewhere
 * else the second time is still caught), and on the socket's remote address once connected.
 */

type Undici = typeof import('undici');
let undiciModule: Promise<Undici> | undefined;
/** undici is imported on first use so start-up stays near the SDK floor (DESIGN §6). */
export function loadUndici(): Promise<Undici> {
  undiciModule ??= import('undici');
  return undiciModule;
}

/** Thrown (as a connect error) when the guard refuses a destination. */
export class SsrfBlockedError extends Error {
  readonly code = 'INFRA_SSRF_BLOCKED';
  constructor(readonly refusal: SsrfRefusal) {
    super(refusal.message);
    this.name = 'SsrfBlockedError';
  }
}

/** Finds an SsrfBlockedError in an error or its cause chain (undici may wrap connect errors). */
export function findSsrfError(e: unknown): SsrfBlockedError | undefined {
  for (let cur = e, depth = 0; cur && depth < 5; depth++) {
    if (cur instanceof SsrfBlockedError) return cur;
    if ((cur as { code?: unknown }).code === 'INFRA_SSRF_BLOCKED' && (cur as { refusal?: unknown }).refusal) {
      return cur as SsrfBlockedError;
    }
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

export type LookupFn = (
  hostname: string,
  options: LookupOptions & { all: true },
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

type NetLookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for net/tls.connect that refuses when any resolved address is refused: if a name
 * resolves to a public and a metadata address, the socket could pick either.
 */
export function guardedLookup(guard: SsrfOptions, resolve: LookupFn = dnsLookup as unknown as LookupFn) {
  return (hostname: string, options: LookupOptions, callback: NetLookupCallback): void => {
    const pre = checkHost(hostname, guard);
    if (pre) {
      callback(new SsrfBlockedError(pre) as unknown as NodeJS.ErrnoException, []);
      return;
    }
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      for (const a of addresses) {
        const r = checkAddress(a.address, guard, hostname);
        if (r) return callback(new SsrfBlockedError(r) as unknown as NodeJS.ErrnoException, []);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} did not resolve`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}

export interface TlsSettings {
  /** PEM CA bundle file to trust (profile `ca_file`), already expanded to an absolute path. */
  caFile?: string | undefined;
  /** Skip certificate verification (profile `insecure`, a human-only setting). */
  insecure?: boolean | undefined;
}

export interface AgentKey {
  guard: SsrfOptions;
  tls: TlsSettings;
}

export interface HttpAgentsOptions {
  /** DNS resolver (tests inject one to replay DNS rebinding). */
  lookup?: LookupFn;
  keepAliveTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/** Long-lived pools, kept in `services.shared('http-agents', …)` and closed at exit. */
export class HttpAgents {
  private readonly agents = new Map<string, Promise<Agent>>();
  private closed = false;

  constructor(private readonly opts: HttpAgentsOptions = {}) {}

  get(key: AgentKey): Promise<Agent> {
    if (this.closed) throw new Error('http agents are closed');
    const k = JSON.stringify([key.guard.allowPrivate, key.guard.allowLinkLocal, key.tls.caFile ?? null, !!key.tls.insecure]);
    let a = this.agents.get(k);
    if (!a) {
      a = this.create(key);
      this.agents.set(k, a);
      a.catch(() => this.agents.delete(k));
    }
    return a;
  }

  private async create(key: AgentKey): Promise<Agent> {
    const undici = await loadUndici();
    const ca = key.tls.caFile ? readFileSync(key.tls.caFile) : undefined;
    const base = undici.buildConnector({
      lookup: guardedLookup(key.guard, this.opts.lookup),
      timeout: this.opts.connectTimeoutMs ?? 10_000,
      ...(ca ? { ca } : {}),
      ...(key.tls.insecure ? { rejectUnauthorized: false } : {}),
    } as BuildConnector.BuildOptions);
    const connect: BuildConnector.connector = (options, callback) => {
      // address literals never reach `lookup`: check them here, before any socket exists
      const pre = checkHost(options.hostname, key.guard);
      if (pre) return callback(new SsrfBlockedError(pre), null);
      base(options, (err, socket) => {
        if (err || !socket) return callback(err ?? new Error('connect failed'), null);
        const remote = (socket as Socket).remoteAddress;
        const r = remote ? checkAddress(remote, key.guard, options.hostname) : undefined;
        if (r) {
          socket.destroy();
          return callback(new SsrfBlockedError(r), null);
        }
        callback(null, socket);
      });
    };
    return new undici.Agent({
      connect,
      keepAliveTimeout: this.opts.keepAliveTimeoutMs ?? 30_000,
      keepAliveMaxTimeout: 600_000,
      // the pipeline's deadline (ctx.signal) bounds the call; these only stop a stuck socket
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(all.map((p) => p.then((a) => a.close()).catch(() => undefined)));
  }
}

export interface SendOptions {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body?: Buffer | Readable | undefined;
  signal: AbortSignal;
  agent: AgentKey;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable & { dump?: (opts?: { limit?: number }) => Promise<void> };
}

/** One request, no redirects followed (the caller follows them, re-checking each hop). */
export async function sendOnce(agents: HttpAgents, opts: SendOptions): Promise<RawResponse> {
  const agent = await agents.get(opts.agent);
  const res: Dispatcher.ResponseData = await agent.request({
    origin: opts.url.origin,
    path: `${opts.url.pathname}${opts.url.search}`,
    method: opts.method as Dispatcher.HttpMethod,
    headers: opts.headers,
    body: opts.body ?? null,
    signal: opts.signal,
  });
  return { status: res.statusCode, headers: res.headers, body: res.body as unknown as RawResponse['body'] };
}
