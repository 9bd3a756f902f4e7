import picomatch from 'picomatch';
import stringify from 'safe-stable-stringify';
import { z } from 'zod';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Database } from '../audit/db.js';
import type { ActionContext, ToolDef, UpstreamToolSpec } from '../core/define-action.js';
import { isToolError, ToolError } from '../core/errors.js';
import { newCallId } from '../core/ids.js';
import type { Services } from '../core/services.js';
import type { UpstreamServer } from '../config/schemas.js';
import type { Pipeline } from '../exec/pipeline.js';
import {
  compileValidator,
  definitionHash,
  listedAnnotations,
  listedInputSchema,
  pinnedDefinition,
  upstreamEffect,
  type PinnedDefinition,
} from './definition.js';
import { findHiddenChars } from './hidden-chars.js';
import { PinStore, type ServerPins } from './pins.js';
import { registerFederation } from './preflight-source.js';
import { Upstream } from './upstream.js';

export type ServerStatusKind = 'disabled' | 'missing_credentials' | 'pending_approval' | 'idle' | 'starting' | 'connected' | 'failed';

/** Why one upstream tool is or is not exposed. */
export type ToolState =
  | { state: 'exposed' }
  | { state: 'not_allowed' }
  | { state: 'pending_approval'; reason: string }
  | { state: 'changed'; reason: string }
  | { state: 'hidden_characters'; reason: string }
  | { state: 'refused'; reason: string };

export interface UpstreamToolStatus {
  /** The name infra lists: `<server>__<tool>`. */
  name: string;
  tool: string;
  state: ToolState['state'];
  reason?: string | undefined;
  effect: 'read' | 'write' | 'irreversible';
}

export interface ServerStatus {
  name: string;
  status: ServerStatusKind;
  reason?: string | undefined;
  hint?: string | undefined;
  description?: string | undefined;
  transport: 'stdio' | 'http' | 'sse';
  start: 'lazy' | 'startup';
  pid?: number | undefined;
  restarts: number;
  approved_at?: string | undefined;
  /** Where the tool list comes from: the live server, or the pins (not started yet). */
  tools_from: 'live' | 'pins';
  tools: UpstreamToolStatus[];
}

export interface FederationOptions {
  services: Services;
  pipeline: Pipeline;
  db: Database;
  env: NodeJS.ProcessEnv;
  /** Start `start: "startup"` servers (the stdio server does; one-shot CLI commands do not). */
  startUpstreams: boolean;
}

const NAME_OK = /^[A-Za-z0-9_-]{1,64}$/;
const PIN_POLL_MS = 2000;

interface Entry {
  server: string;
  tool: string;
  name: string;
  def: PinnedDefinition;
  hash: string;
  state: ToolState;
  toolDef: ToolDef;
}

/**
 * Governs upstream MCP servers behind infra (issue 9): their processes, the tools they bring
 * (exposed as `<server>__<tool>` only when allowed and approved), trust-on-first-use pins,
 * and status. Every call to an upstream tool goes through the pipeline like a native one.
 */
export class Federation {
  private readonly upstreams = new Map<string, Upstream>();
  private readonly pins: PinStore;
  private entries = new Map<string, Entry>();
  private readonly listeners = new Set<() => void>();
  private visibleSignature = '';
  private pinToken = '';
  private pinTimer: NodeJS.Timeout | undefined;
  private readonly blockedAudited = new Set<string>();
  private syncQueued = false;
  private closed = false;

  constructor(private readonly opts: FederationOptions) {
    this.pins = new PinStore(opts.db);
    registerFederation(opts.services, this);
  }

  get services(): Services {
    return this.opts.services;
  }

  /** Applies servers.json: starts what is new, restarts only what changed, stops what is gone. */
  configure(servers: Record<string, UpstreamServer>): void {
    if (this.closed) return;
    for (const [name, up] of this.upstreams) {
      const next = servers[name];
      if (!next || stringify(next) !== stringify(up.config)) {
        this.upstreams.delete(name);
        void up.close();
        if (next) this.services.log.info('upstream config changed; restarting it', { server: name });
      }
    }
    for (const [name, cfg] of Object.entries(servers)) {
      if (this.upstreams.has(name)) continue;
      const up = new Upstream(name, cfg, {
        secrets: this.services.secrets,
        log: this.services.log,
        projectRoot: this.services.project.root,
        env: this.opts.env,
        onChange: () => this.queueSync(),
      });
      this.upstreams.set(name, up);
      if (cfg.enabled && cfg.start === 'startup' && this.opts.startUpstreams && up.missingCredentials().length === 0) {
        up.start().catch(() => undefined);
      }
    }
    this.sync();
    if (this.opts.startUpstreams && !this.pinTimer) {
      this.pinTimer = setInterval(() => {
        const token = this.pins.changeToken();
        if (token !== this.pinToken) this.sync();
      }, PIN_POLL_MS);
      this.pinTimer.unref();
    }
  }

  /** Called when the visible tool list may have changed (the server sends tools/list_changed). */
  onToolsChanged(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private queueSync(): void {
    if (this.syncQueued || this.closed) return;
    this.syncQueued = true;
    queueMicrotask(() => {
      this.syncQueued = false;
      this.sync();
    });
  }

  /** Recomputes every upstream tool's state and the pipeline's registry of upstream tools. */
  sync(): void {
    if (this.closed) return;
    this.pinToken = this.pins.changeToken();
    const native = new Set(
      this.opts.pipeline
        .tools()
        .filter((t) => !t.upstream)
        .map((t) => t.name),
    );
    const next = new Map<string, Entry>();
    for (const [server, up] of [...this.upstreams].sort(([a], [b]) => a.localeCompare(b))) {
      const pins = this.pins.forServer(server);
      const defs = up.tools ? up.tools.map(pinnedDefinition) : [...pins.tools.values()].map((p) => p.definition);
      for (const def of defs) {
        const name = `${server}__${def.name}`;
        const hash = definitionHash(def);
        const state = this.judge(up, pins, def, hash, name, native, next);
        const prev = this.entries.get(name);
        const toolDef = prev && prev.hash === hash && prev.server === server ? prev.toolDef : this.buildTool(server, def, name);
        if (state.state === 'changed') this.auditBlocked(server, def.name, name, hash, state.reason);
        if (state.state === 'refused' || state.state === 'hidden_characters') {
          const key = `${name}\u0000${hash}\u0000${state.state}`;
          if (!this.blockedAudited.has(key)) {
            this.blockedAudited.add(key);
            this.services.log.warn('upstream tool refused', { server, tool: def.name, reason: state.reason });
          }
        }
        if (next.has(name)) continue; // a collision: the first keeps the name (judge() refused the second)
        next.set(name, { server, tool: def.name, name, def, hash, state, toolDef });
      }
    }
    for (const name of this.entries.keys()) if (!next.has(name)) this.opts.pipeline.unregister(name);
    for (const [name, e] of next) {
      if (this.entries.get(name)?.toolDef !== e.toolDef && !native.has(name)) this.opts.pipeline.register(e.toolDef);
    }
    this.entries = next;
    const signature = stringify(
      [...next.values()].map((e) => [e.name, e.hash, e.state.state, this.upstreams.get(e.server)?.config.enabled]),
    );
    if (signature !== this.visibleSignature) {
      this.visibleSignature = signature;
      for (const fn of this.listeners) fn();
    }
  }

  private judge(
    up: Upstream,
    pins: ServerPins,
    def: PinnedDefinition,
    hash: string,
    name: string,
    native: Set<string>,
    taken: Map<string, Entry>,
  ): ToolState {
    const server = up.name;
    if (!NAME_OK.test(name)) {
      return {
        state: 'refused',
        reason: `${JSON.stringify(name)} is not a usable tool name (letters, digits, "_" and "-", at most 64 characters)`,
      };
    }
    if (native.has(name) || this.isAlias(name)) return { state: 'refused', reason: `${name} collides with a native infra tool` };
    const other = taken.get(name);
    if (other) return { state: 'refused', reason: `${name} collides with ${other.server}'s tool ${JSON.stringify(other.tool)}` };
    const hidden = findHiddenChars(def);
    if (hidden) {
      return {
        state: 'hidden_characters',
        reason: `the definition of ${server}/${def.name} contains a hidden character (${hidden.char} in ${hidden.path}); it is refused`,
      };
    }
    if (!allowed(up.config, def.name)) return { state: 'not_allowed' };
    if (!pins.approved) {
      return { state: 'pending_approval', reason: `server ${server} has not been approved yet` };
    }
    const pin = pins.tools.get(def.name);
    if (!pin) return { state: 'pending_approval', reason: `${server}/${def.name} appeared after the server was approved` };
    if (pin.hash !== hash) {
      return {
        state: 'changed',
        reason: `the definition of ${server}/${def.name} changed since it was approved on ${pin.approved_at} (${describeChange(pin.definition, def)})`,
      };
    }
    return { state: 'exposed' };
  }

  private isAlias(name: string): boolean {
    return this.opts.pipeline.resolveName(name) !== name;
  }

  /** A tool whose pinned definition changed is blocked: logged and audited once per new definition. */
  private auditBlocked(server: string, tool: string, name: string, hash: string, reason: string): void {
    const key = `${name}\u0000${hash}`;
    if (this.blockedAudited.has(key)) return;
    this.blockedAudited.add(key);
    this.services.log.warn('upstream tool blocked: its definition changed since approval', { server, tool, reason });
    recordEvent(this.services, name, 'pin_check', server, 'denied', 'DENIED', `blocked: ${reason}`, { server, tool, hash });
  }

  /** Why a tool is hidden and refused right now; undefined when it is exposed. */
  refusal(name: string): ReturnType<UpstreamToolSpec['refusal']> {
    const e = this.entries.get(name);
    const up = e ? this.upstreams.get(e.server) : undefined;
    if (!e || !up) return { code: 'DENIED', message: `${name} is no longer provided by any configured server`, hint: 'see servers.json' };
    const approve = `a human can review it with \`infra servers test ${e.server}\` and approve it with \`infra servers approve ${e.server}\``;
    if (!up.config.enabled) {
      return {
        code: 'DENIED',
        message: `server ${e.server} is disabled in servers.json`,
        hint: `a human can set "enabled": true for ${e.server} in servers.json`,
      };
    }
    switch (e.state.state) {
      case 'exposed':
        break;
      case 'not_allowed':
        return {
          code: 'DENIED',
          message: `${e.server}/${e.tool} is not enabled: servers.json ${e.server}.tools allows ${JSON.stringify(up.config.tools.allow)} and denies ${JSON.stringify(up.config.tools.deny)}`,
          hint: `upstream tools are off by default; a human can add "${e.tool}" to ${e.server}.tools.allow in servers.json (deny wins)`,
        };
      case 'pending_approval':
        return { code: 'DENIED', message: `${name} is pending approval: ${e.state.reason}`, hint: approve };
      case 'changed':
        return { code: 'DENIED', message: `${name} is blocked: ${e.state.reason}`, hint: approve };
      case 'hidden_characters':
      case 'refused':
        return { code: 'DENIED', message: e.state.reason, hint: `fix the upstream server ${e.server}, or deny the tool in servers.json` };
    }
    const missing = up.missingCredentials();
    if (missing.length) {
      return {
        code: 'AUTH_FAILED',
        message: `server ${e.server} is missing credentials: ${missing.join(', ')} not set`,
        hint: 'set them where servers.json refers to them (environment of infra, or `infra secrets set NAME`)',
      };
    }
    return undefined;
  }

  private buildTool(server: string, def: PinnedDefinition, name: string): ToolDef {
    const effect = upstreamEffect(def.annotations);
    let validator: ((args: Record<string, unknown>) => string | undefined) | undefined;
    const upstreams = this.upstreams;
    const action = {
      tool: name,
      action: 'call',
      effect,
      description: def.description ?? '',
      input: z.object({}),
      summarize: (r: unknown) => summarize(r),
      handler: (ctx: ActionContext, args: Record<string, unknown>) => this.invoke(server, def.name, name, ctx, args),
    };
    const upstream: UpstreamToolSpec = {
      server,
      tool: def.name,
      inputSchema: listedInputSchema(def.inputSchema),
      annotations: listedAnnotations(def.annotations),
      effect,
      get timeoutMs() {
        return upstreams.get(server)?.config.timeout_ms;
      },
      validate: (args) => (validator ??= compileValidator(def.inputSchema))(args),
      refusal: () => this.refusal(name),
      action: action as unknown as UpstreamToolSpec['action'],
    };
    return {
      name,
      title: def.title ?? (typeof def.annotations?.title === 'string' ? def.annotations.title : ''),
      description: def.description ?? '',
      actions: [],
      upstream,
    };
  }

  private async invoke(server: string, tool: string, name: string, ctx: ActionContext, args: Record<string, unknown>): Promise<unknown> {
    const up = this.upstreams.get(server);
    if (!up) throw new ToolError('NOT_FOUND', `server ${server} is no longer configured`);
    await up.ensure(ctx.signal);
    // a lazily started server was listed from its pins: its live definition decides now
    this.sync();
    const refused = this.refusal(name);
    if (refused) throw new ToolError(refused.code, refused.message, { hint: refused.hint });
    let result: CallToolResult;
    try {
      result = (await up.callTool(tool, args, {
        signal: ctx.signal,
        deadline: ctx.deadline,
        onProgress: (p) =>
          ctx.progress({
            progress: p.progress,
            ...(p.total !== undefined ? { total: p.total } : {}),
            ...(p.message ? { message: p.message } : {}),
          }),
      })) as CallToolResult;
    } catch (e) {
      throw upstreamError(server, tool, e, ctx.signal);
    }
    await ctx.writeArtifact('result.json', JSON.stringify(result, null, 2));
    if (result.isError) {
      throw new ToolError('UPSTREAM_ERROR', `${server}/${tool} returned an error: ${textOf(result).slice(0, 1000) || '(no text)'}`, {
        hint: `the full upstream result is in ${ctx.artifactUri('result.json')}`,
        retryable: false,
        details: { server, tool },
      });
    }
    return {
      content: result.content,
      ...(result.structuredContent !== undefined ? { structuredContent: result.structuredContent } : {}),
    };
  }

  /** Connects (if needed) and returns the live tools, for `infra servers test/approve`. */
  async connect(server: string): Promise<Upstream> {
    const up = this.upstreams.get(server);
    if (!up)
      throw new ToolError('NOT_FOUND', `no server ${JSON.stringify(server)} in servers.json`, {
        hint: `servers: ${[...this.upstreams.keys()].join(', ') || '(none)'}`,
      });
    await up.start();
    this.sync();
    return up;
  }

  /** Pins the live definitions of this server's tools (all, or those matching `only`). */
  approve(server: string, only?: string[]): { pinned: string[]; refused: { tool: string; reason: string }[] } {
    const up = this.upstreams.get(server);
    if (!up?.tools) throw new ToolError('CONNECTION_FAILED', `server ${server} is not connected`);
    const match = only?.length ? picomatch(only) : undefined;
    const pinned: { name: string; hash: string; definition: PinnedDefinition }[] = [];
    const refused: { tool: string; reason: string }[] = [];
    for (const t of up.tools) {
      if (match && !match(t.name)) continue;
      const def = pinnedDefinition(t);
      const hidden = findHiddenChars(def);
      if (hidden) {
        refused.push({ tool: t.name, reason: `hidden character ${hidden.char} in ${hidden.path}` });
        continue;
      }
      pinned.push({ name: t.name, hash: definitionHash(def), definition: def });
    }
    this.pins.approve(server, pinned);
    recordEvent(this.services, 'servers', 'approve', server, 'ok', undefined, `approved ${pinned.length} tool definitions of ${server}`, {
      tools: pinned.map((p) => ({ tool: p.name, hash: p.hash })),
      refused,
    });
    this.sync();
    return { pinned: pinned.map((p) => p.name), refused };
  }

  /** What changed since the pins: new, changed (with what), removed, unchanged. */
  diff(server: string): { added: string[]; changed: { tool: string; what: string }[]; removed: string[]; unchanged: string[] } {
    const up = this.upstreams.get(server);
    const pins = this.pins.forServer(server);
    const live = new Map((up?.tools ?? []).map((t) => [t.name, pinnedDefinition(t)]));
    const out = {
      added: [] as string[],
      changed: [] as { tool: string; what: string }[],
      removed: [] as string[],
      unchanged: [] as string[],
    };
    for (const [name, def] of live) {
      const pin = pins.tools.get(name);
      if (!pin) out.added.push(name);
      else if (pin.hash !== definitionHash(def)) out.changed.push({ tool: name, what: describeChange(pin.definition, def) });
      else out.unchanged.push(name);
    }
    for (const name of pins.tools.keys()) if (!live.has(name)) out.removed.push(name);
    return out;
  }

  statuses(): ServerStatus[] {
    const out: ServerStatus[] = [];
    for (const [name, up] of [...this.upstreams].sort(([a], [b]) => a.localeCompare(b))) {
      const pins = this.pins.forServer(name);
      const missing = up.missingCredentials();
      let status: ServerStatusKind;
      let reason: string | undefined;
      let hint: string | undefined;
      if (!up.config.enabled) status = 'disabled';
      else if (missing.length) {
        status = 'missing_credentials';
        reason = `not set: ${missing.join(', ')}`;
        hint = 'set them where servers.json refers to them (environment of infra, or `infra secrets set NAME`)';
      } else if (up.state === 'failed') {
        status = 'failed';
        reason = up.reason;
        hint = up.hint;
      } else if (!pins.approved) {
        status = 'pending_approval';
        reason = 'never approved';
        hint = `review with \`infra servers test ${name}\`, then \`infra servers approve ${name}\``;
      } else {
        status = up.state === 'closed' ? 'idle' : up.state;
      }
      const tools: UpstreamToolStatus[] = [...this.entries.values()]
        .filter((e) => e.server === name)
        .map((e) => ({
          name: e.name,
          tool: e.tool,
          state: e.state.state,
          ...('reason' in e.state ? { reason: e.state.reason } : {}),
          effect: upstreamEffect(e.def.annotations),
        }));
      out.push({
        name,
        status,
        ...(reason ? { reason } : {}),
        ...(hint ? { hint } : {}),
        ...(up.config.description ? { description: up.config.description } : {}),
        transport: up.kind,
        start: up.config.start,
        ...(up.pid ? { pid: up.pid } : {}),
        restarts: up.restarts,
        ...(pins.approvedAt ? { approved_at: pins.approvedAt } : {}),
        tools_from: up.tools ? 'live' : 'pins',
        tools,
      });
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pinTimer);
    await Promise.allSettled([...this.upstreams.values()].map((u) => u.close()));
  }
}

function allowed(cfg: UpstreamServer, tool: string): boolean {
  if (cfg.tools.deny.length && picomatch.isMatch(tool, cfg.tools.deny)) return false;
  return cfg.tools.allow.length > 0 && picomatch.isMatch(tool, cfg.tools.allow);
}

function describeChange(a: PinnedDefinition, b: PinnedDefinition): string {
  const keys = ['title', 'description', 'inputSchema', 'outputSchema', 'annotations'] as const;
  const changed = keys.filter((k) => stringify(a[k]) !== stringify(b[k]));
  return changed.length ? `${changed.join(', ')} changed` : 'definition changed';
}

function textOf(r: CallToolResult): string {
  return (r.content ?? [])
    .filter((c): c is { type: 'text'; text: string } => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

function summarize(r: unknown): string {
  const content = (r as { content?: { type: string; text?: string }[] })?.content ?? [];
  const text = content.find((c) => c.type === 'text')?.text ?? '';
  const kinds = [...new Set(content.map((c) => c.type))].join(',');
  return `${content.length} content item(s)${kinds ? ` (${kinds})` : ''}${text ? `: ${text.replace(/\s+/g, ' ').slice(0, 120)}` : ''}`;
}

function upstreamError(server: string, tool: string, e: unknown, signal: AbortSignal): ToolError {
  if (isToolError(e)) return e;
  if (signal.aborted && isToolError(signal.reason)) return signal.reason;
  const err = e as { code?: number; message?: string };
  const msg = String(err?.message ?? e);
  if (err?.code === -32000 || /connection closed/i.test(msg)) {
    return new ToolError('CONNECTION_FAILED', `upstream server ${server} closed the connection during ${tool}: ${msg}`, {
      hint: `infra restarts it with backoff; \`infra servers test ${server}\` shows its status`,
      retryable: true,
    });
  }
  if (err?.code === -32001) return new ToolError('TIMEOUT', `${server}/${tool} timed out: ${msg}`, { retryable: true });
  return new ToolError('UPSTREAM_ERROR', `${server}/${tool} failed: ${msg}`, { retryable: false });
}

/** An audit row for something that is not a tool call (an approval, a blocked definition). */
function recordEvent(
  services: Services,
  tool: string,
  action: string,
  target: string,
  status: 'ok' | 'denied',
  errorCode: string | undefined,
  summary: string,
  details: Record<string, unknown>,
): void {
  const id = newCallId();
  const now = new Date().toISOString();
  try {
    services.audit.open({
      id,
      started_at: now,
      tool,
      action,
      target,
      args: JSON.stringify(services.redactor.redactValue(details)).slice(0, 65536),
    });
    services.audit.close(id, {
      status,
      ended_at: new Date().toISOString(),
      duration_ms: 0,
      error_code: errorCode,
      summary: services.redactor.redact(summary).slice(0, 2000),
    });
  } catch (e) {
    services.log.error('federation event could not be audited', { tool, action, error: (e as Error).message });
  }
}
