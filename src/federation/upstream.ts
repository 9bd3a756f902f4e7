import { isAbsolute, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ToolListChangedNotificationSchema, type Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../core/define-action.js';
import { isToolError, ToolError } from '../core/errors.js';
import { expandHome } from '../config/paths.js';
import type { SecretResolver } from '../config/secret-refs.js';
import type { UpstreamServer } from '../config/schemas.js';
import { VERSION } from '../version.js';
import { WatchedStdioTransport } from './watched-stdio.js';

export type ConnectionState = 'idle' | 'starting' | 'connected' | 'failed' | 'closed';

const CONNECT_TIMEOUT_MS = 30_000;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 16000, 30000];
/** Consecutive automatic restarts before a crashing server waits for its next call. */
const MAX_AUTO_RESTARTS = 5;
/** A connection that lived this long resets the backoff. */
const STABLE_MS = 60_000;
const STDERR_TAIL = 2000;

export interface UpstreamDeps {
  secrets: SecretResolver;
  log: Logger;
  projectRoot: string;
  env: NodeJS.ProcessEnv;
  /** Called when the live tool list changed (connect, list_changed, crash). */
  onChange: () => void;
}

/**
 * One upstream MCP server: its process (or remote session), its live tool list, and restarts
 * with backoff. Each infra process owns its own upstream processes (no sharing between clients).
 */
export class Upstream {
  state: ConnectionState = 'idle';
  reason: string | undefined;
  hint: string | undefined;
  tools: Tool[] | undefined;
  restarts = 0;
  pid: number | undefined;
  private client: Client | undefined;
  private transport: Transport | undefined;
  private starting: Promise<Client> | undefined;
  private failures = 0;
  private nextAttemptAt = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private connectedAt = 0;
  private stderrTail = '';
  private relistTimer: NodeJS.Timeout | undefined;
  /** Bumped on every start; a stale close or relist of an older session is ignored. */
  private session = 0;

  constructor(
    readonly name: string,
    readonly config: UpstreamServer,
    private readonly deps: UpstreamDeps,
  ) {}

  get kind(): 'stdio' | 'http' | 'sse' {
    return this.config.command ? 'stdio' : (this.config.transport ?? this.config.type ?? 'http') === 'sse' ? 'sse' : 'http';
  }

  /** The references in env/headers that cannot be resolved now (missing credentials). */
  missingCredentials(): string[] {
    const values = [...Object.values(this.config.env), ...Object.values(this.config.headers)];
    return [...new Set(values.flatMap((v) => this.deps.secrets.missing(v)))];
  }

  /** A connected client, starting the server if needed (lazy start, or after a crash). */
  async ensure(signal?: AbortSignal): Promise<Client> {
    if (this.state === 'connected' && this.client) return this.client;
    if (this.state === 'closed') throw new ToolError('CONNECTION_FAILED', `upstream server ${this.name} was stopped`, { retryable: true });
    if (this.state === 'failed' && Date.now() < this.nextAttemptAt) {
      const secs = Math.ceil((this.nextAttemptAt - Date.now()) / 1000);
      throw new ToolError(
        'CONNECTION_FAILED',
        `upstream server ${this.name} failed (${this.reason ?? 'unknown'}); next restart in ${secs}s`,
        {
          hint: this.hint ?? `infra servers test ${this.name} shows the server's output`,
          retryable: true,
        },
      );
    }
    const p = this.start();
    if (!signal) return p;
    return await new Promise<Client>((res, rej) => {
      const onAbort = (): void => rej(signal.reason instanceof Error ? signal.reason : new ToolError('CANCELLED', 'cancelled'));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      p.then(res, rej).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Starts (or joins the start in progress). Rejects with a ToolError saying why. */
  start(): Promise<Client> {
    if (this.starting) return this.starting;
    if (this.state === 'connected' && this.client) return Promise.resolve(this.client);
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const session = ++this.session;
    this.state = 'starting';
    this.reason = undefined;
    this.hint = undefined;
    this.starting = this.connect(session).finally(() => {
      if (this.session === session) this.starting = undefined;
    });
    this.deps.onChange();
    return this.starting;
  }

  private async connect(session: number): Promise<Client> {
    let transport: Transport;
    try {
      transport = this.makeTransport();
    } catch (e) {
      this.fail(session, e, false);
      throw this.asError(e);
    }
    const client = new Client({ name: 'infra', version: VERSION }, { capabilities: {} });
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      if (this.session === session) this.scheduleRelist(session);
    });
    transport.onclose = () => this.onClosed(session);
    this.stderrTail = '';
    try {
      await client.connect(transport, { timeout: CONNECT_TIMEOUT_MS });
      this.transport = transport;
      this.client = client;
      this.pid = transport instanceof WatchedStdioTransport ? transport.pid : undefined;
      this.tools = await listAll(client);
      if (this.session !== session) throw new Error('superseded by a newer start');
      this.state = 'connected';
      this.connectedAt = Date.now();
      this.deps.log.info('upstream connected', { server: this.name, tools: this.tools.length, pid: this.pid });
      this.deps.onChange();
      return client;
    } catch (e) {
      await closeQuietly(client, transport);
      this.fail(session, e, true);
      throw this.asError(e);
    }
  }

  private makeTransport(): Transport {
    const c = this.config;
    const where = (k: string, key: string): string => `servers.json: ${this.name}.${k}.${key}`;
    if (c.command) {
      const env: Record<string, string> = {};
      const base = this.deps.env;
      const pass = c.inherit_env === true ? Object.keys(base) : ['PATH', 'HOME', ...(Array.isArray(c.inherit_env) ? c.inherit_env : [])];
      for (const k of pass) {
        const v = base[k];
        if (v !== undefined) env[k] = v;
      }
      // this server's own references, resolved for it alone (and registered with the redactor)
      for (const [k, v] of Object.entries(c.env)) env[k] = this.deps.secrets.resolve(v, where('env', k));
      const cwd = c.cwd ? expandHome(c.cwd, this.deps.projectRoot) : undefined;
      const command = c.command.includes('/') && !isAbsolute(c.command) ? resolve(this.deps.projectRoot, c.command) : c.command;
      return new WatchedStdioTransport({
        command,
        args: c.args,
        env,
        cwd,
        onStderr: (s) => {
          this.stderrTail = (this.stderrTail + s).slice(-STDERR_TAIL);
          this.deps.log.debug('upstream stderr', { server: this.name, text: s.slice(0, 2000) });
        },
      });
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(c.headers)) headers[k] = this.deps.secrets.resolve(v, where('headers', k));
    const url = new URL(c.url!);
    if (this.kind === 'sse') {
      return new SSEClientTransport(url, {
        requestInit: { headers },
        eventSourceInit: {
          fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers } }),
        },
      });
    }
    return new StreamableHTTPClientTransport(url, { requestInit: { headers } });
  }

  private scheduleRelist(session: number): void {
    clearTimeout(this.relistTimer);
    this.relistTimer = setTimeout(() => {
      const client = this.client;
      if (!client || this.session !== session || this.state !== 'connected') return;
      listAll(client).then(
        (tools) => {
          if (this.session !== session) return;
          this.tools = tools;
          this.deps.log.info('upstream tools changed', { server: this.name, tools: tools.length });
          this.deps.onChange();
        },
        (e: unknown) =>
          this.deps.log.warn('upstream tools could not be re-listed', { server: this.name, error: String((e as Error)?.message ?? e) }),
      );
    }, 100);
  }

  private onClosed(session: number): void {
    if (this.session !== session || this.state === 'closed') return;
    if (this.state === 'starting') return; // connect() reports it
    const t = this.transport;
    const exit =
      t instanceof WatchedStdioTransport ? ` (exit code ${t.exitCode ?? 'none'}${t.exitSignal ? `, signal ${t.exitSignal}` : ''})` : '';
    this.client = undefined;
    this.transport = undefined;
    this.pid = undefined;
    if (Date.now() - this.connectedAt > STABLE_MS) this.failures = 0;
    this.fail(session, new Error(`the server closed the connection${exit}`), true);
  }

  private fail(session: number, e: unknown, restart: boolean): void {
    if (this.session !== session) return;
    const err = this.asError(e);
    this.state = 'failed';
    this.reason = err.message;
    this.hint = err.hint;
    const delay = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)]!;
    this.failures++;
    this.nextAttemptAt = Date.now() + delay;
    this.deps.log.warn('upstream failed', { server: this.name, reason: err.message, retry_in_ms: delay });
    const auth = err.code === 'AUTH_FAILED';
    if (restart && !auth && this.failures <= MAX_AUTO_RESTARTS) {
      this.restartTimer = setTimeout(() => {
        this.restarts++;
        this.start().catch(() => undefined);
      }, delay);
      this.restartTimer.unref();
    }
    this.deps.onChange();
  }

  private asError(e: unknown): ToolError {
    if (isToolError(e)) return e;
    const stderr = this.stderrTail.trim().split('\n').slice(-5).join(' | ');
    const msg = String((e as Error)?.message ?? e);
    // the SDK's HTTP and SSE transports carry the response status as `code`
    const status = (e as { code?: unknown })?.code;
    if (!this.config.command && typeof status === 'number' && status >= 400 && status < 600) {
      if (status === 401 || status === 403) {
        return new ToolError(
          'AUTH_FAILED',
          `upstream server ${this.name} refused the credentials: HTTP ${status} from ${this.config.url}`,
          {
            hint: `check the headers of ${this.name} in servers.json (a token by reference, e.g. "Authorization": "Bearer \${secret:NAME}"); \`infra servers test ${this.name}\``,
            retryable: false,
            details: { http_status: status },
          },
        );
      }
      return new ToolError('CONNECTION_FAILED', `upstream server ${this.name}: HTTP ${status}: ${msg}`, {
        hint: `check that ${this.config.url} answers MCP (${this.kind}); \`infra servers test ${this.name}\``,
        retryable: status >= 500,
        details: { http_status: status },
      });
    }
    return new ToolError('CONNECTION_FAILED', `upstream server ${this.name}: ${msg}${stderr ? `; stderr: ${stderr}` : ''}`, {
      hint: this.config.command
        ? `check that \`${this.config.command}\` starts an MCP server on stdio; \`infra servers test ${this.name}\` shows its output`
        : `check that ${this.config.url} answers MCP (${this.kind}); \`infra servers test ${this.name}\``,
      retryable: true,
    });
  }

  /** Calls one upstream tool with the call's signal and deadline (cancel is forwarded upstream). */
  async callTool(
    tool: string,
    args: Record<string, unknown>,
    opts: { signal: AbortSignal; deadline: number; onProgress?: (p: { progress: number; total?: number; message?: string }) => void },
  ) {
    const client = await this.ensure(opts.signal);
    return client.callTool({ name: tool, arguments: args }, undefined, {
      signal: opts.signal,
      timeout: Math.max(1, opts.deadline - Date.now() + 1000),
      ...(opts.onProgress ? { onprogress: opts.onProgress, resetTimeoutOnProgress: false } : {}),
    });
  }

  async close(): Promise<void> {
    this.state = 'closed';
    this.session++;
    clearTimeout(this.restartTimer);
    clearTimeout(this.relistTimer);
    await closeQuietly(this.client, this.transport);
    this.client = undefined;
    this.transport = undefined;
  }

  killNow(): void {
    if (this.transport instanceof WatchedStdioTransport) this.transport.killNow();
  }
}

async function listAll(client: Client): Promise<Tool[]> {
  const tools: Tool[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 100; page++) {
    const r = await client.listTools(cursor ? { cursor } : undefined, { timeout: CONNECT_TIMEOUT_MS });
    tools.push(...r.tools);
    cursor = r.nextCursor;
    if (!cursor) break;
  }
  return tools;
}

async function closeQuietly(client: Client | undefined, transport: Transport | undefined): Promise<void> {
  try {
    if (client) await client.close();
    else await transport?.close();
  } catch {
    /* closing anyway */
  }
  // the Client closes its transport; a watched child's group is ended by close()
  if (transport instanceof WatchedStdioTransport) await transport.close();
}
