import type { Writable } from 'node:stream';
import type { z } from 'zod';
import type { Envelope } from './envelope.js';
import type { Services } from './services.js';

/** R, W, X of DESIGN §2. Annotations are derived from it, never written by hand. */
export type Effect = 'read' | 'write' | 'irreversible';

export const EFFECT_RANK: Record<Effect, number> = { read: 0, write: 1, irreversible: 2 };

export function maxEffect(a: Effect, b: Effect): Effect {
  return EFFECT_RANK[a] >= EFFECT_RANK[b] ? a : b;
}

/** What a bounded sink reports once it has finished. */
export interface SinkResult {
  name: string;
  /** Bytes the producer wrote (before redaction). */
  bytes: number;
  /** Bytes stored in the artifact file (after redaction, capped by limits.artifact_max_bytes). */
  stored_bytes: number;
  /** sha256 (hex) of the stored bytes. */
  sha256: string;
  /** Head and tail of the (redacted) stream within the inline cap, as UTF-8 text. */
  inline: string;
  /** True when `inline` is not the whole stream. */
  truncated: boolean;
  /** True when the artifact hit limits.artifact_max_bytes and later bytes were dropped. */
  artifact_limited: boolean;
  /** artifact://calls/<call_id>/<name> */
  uri: string;
}

/**
 * A Writable that streams into the call's artifact file through the redactor, keeping a
 * head+tail inline copy within the inline cap. Memory stays flat whatever is written.
 * Pipe into it (backpressure works) or write to it, then `await sink.done()`.
 */
export interface Sink extends Writable {
  readonly sinkName: string;
  /** Ends the stream if not ended yet and resolves once the file is complete and renamed. */
  done(): Promise<SinkResult>;
  /** Bytes written so far (before redaction). */
  readonly bytesWritten: number;
}

export interface SinkOptions {
  /**
   * Store the bytes as they are (bulk data the human asked for: psql export, sftp download).
   * They are redacted when read back through a tool. Default false: redacted while streaming.
   */
  raw?: boolean;
  /** Inline cap for this sink; defaults to the call's max_bytes. 0 keeps no inline copy. */
  inlineBytes?: number;
}

export interface ProgressUpdate {
  progress?: number;
  total?: number;
  message?: string;
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface NestedCallOptions {
  /** Overrides the nested call's timeout (still bounded by the parent's deadline). */
  timeoutMs?: number;
  /** Abort signal for the nested call (defaults to the parent's). */
  signal?: AbortSignal;
}

/**
 * A call's cancellation, for code that only needs to hear of it: no AbortSignal is made (see
 * src/exec/call-abort.ts). `reason` is a ToolError once aborted.
 */
export interface CallCancel {
  readonly aborted: boolean;
  readonly reason: unknown;
  /** Runs `fn` once when the call is aborted; returns a function that removes it. */
  onAbort(fn: () => void): () => void;
}

/**
 * What a handler gets from the pipeline. Handlers never touch SQLite, timeouts, redaction or
 * files directly: everything cross-cutting comes through here.
 */
export interface ActionContext {
  readonly callId: string;
  /** Set when the call runs as a job (`async: true`). */
  readonly jobId?: string | undefined;
  readonly tool: string;
  readonly action: string;
  /** Aborted on timeout_ms or client cancellation; `signal.reason` is a ToolError. */
  readonly signal: AbortSignal;
  /** The same cancellation as `signal`, for code that needs no AbortSignal (cheaper). */
  readonly cancel: CallCancel;
  /** Epoch ms at which the call times out. */
  readonly deadline: number;
  /** Inline cap of the reply (max_bytes, default limits.inline_max_bytes). */
  readonly maxBytes: number;
  readonly services: Services;
  readonly log: Logger;
  /** Opens a bounded, redacting stream into `artifacts/calls/<call_id>/<name>`. */
  sink(name: string, opts?: SinkOptions): Sink;
  /** Writes a small file into the call's artifact directory (atomic, 0600, redacted unless raw). */
  writeArtifact(name: string, data: string | Buffer, opts?: { raw?: boolean }): Promise<{ uri: string; bytes: number; sha256: string }>;
  /** URI of the call's artifact directory, or of one file in it. */
  artifactUri(name?: string): string;
  /** Sends an MCP progress notification when the client asked for them; no-op otherwise. */
  progress(update: ProgressUpdate): void;
  /**
   * Refuses with DENIED unless INFRA_UNSAFE_LOCAL=1. Call it before any local process spawn or
   * local file read/write that the agent steers; `what` names it in the error.
   */
  requireLocal(what: string): void;
  /**
   * Runs another tool call through the whole pipeline as a child of this one (parent_id set):
   * policy, audit, artifacts. Used by runbooks. Never throws for tool failures: returns the
   * error envelope.
   */
  call(tool: string, args: Record<string, unknown>, opts?: NestedCallOptions): Promise<Envelope>;
  /**
   * Fields added to the result of the reply to a top-level call only, after call.json and the
   * audit row were written, and without redaction: for a value the human allowed the agent to
   * see (secrets get with INFRA_ALLOW_SECRET_EXPORT=1). Never stored; dropped for nested calls.
   */
  replyOnly(fields: Record<string, unknown>): void;
}

/** Common arguments the pipeline adds to every action; handlers read them from the context. */
export interface CommonArgs {
  timeout_ms?: number;
  max_bytes?: number;
  async?: boolean;
}

export interface ActionDef<I extends z.ZodObject = z.ZodObject, R = unknown> {
  tool: string;
  action: string;
  /** The most severe effect this action can have (used for listing and annotations). */
  effect: Effect;
  /** The effect of one particular call when it depends on the arguments (http by method). */
  effectOf?: (args: z.output<I>, services: Services) => Effect | Promise<Effect>;
  description: string;
  /** Exact per-action input (without the common args; the pipeline adds them). Strict. */
  input: I;
  /**
   * Whether this call must be confirmed beyond what policy says of the action itself: a runbook
   * asks once, before it starts, when any of its steps would need confirmation.
   */
  confirmOf?: (args: z.output<I>, services: Services) => boolean | Promise<boolean>;
  /** Long, streaming actions accept `async: true` and run as jobs. */
  long?: boolean;
  /** Value for the audit `target` column (ssh target, profile, repo path, url host …). */
  target?: (args: z.output<I>) => string | undefined;
  /**
   * Per-argument gates that run at policy time, before the audit row is opened as running
   * and before the handler: throw ToolError('DENIED', …) to refuse. E.g. ssh allow_targets,
   * local paths needing INFRA_UNSAFE_LOCAL.
   */
  gate?: (args: z.output<I>, services: Services) => void | Promise<void>;
  /** One-line summary of a result for the audit row and the text reply. */
  summarize?: (result: R, args: z.output<I>) => string;
  /** Hidden from tools/list and refused by name unless this returns true (e.g. secrets get needs INFRA_ALLOW_SECRET_EXPORT=1). */
  enabledBy?: {
    check: (services: Pick<Services, 'flags' | 'config'>) => boolean;
    /** What a human does to enable it, for the refusal's hint. */
    hint: string;
  };
  handler: (ctx: ActionContext, args: z.output<I>) => Promise<R>;
}

/** Keeps the generic types of one action while storing them in a plain list. */
export function defineAction<I extends z.ZodObject, R>(def: ActionDef<I, R>): ActionDef<z.ZodObject, unknown> {
  return def as unknown as ActionDef<z.ZodObject, unknown>;
}

export interface ToolDef {
  name: string;
  title: string;
  description: string;
  actions: ActionDef<z.ZodObject, unknown>[];
  /** Only `local` and similar: hidden and refused unless this returns true. */
  enabledBy?: (services: Pick<Services, 'flags' | 'config'>) => boolean;
  /**
   * A federated upstream tool (src/federation): raw JSON Schema arguments instead of zod
   * actions (`actions` is empty). The pipeline validates with `validate`, applies policy and
   * `refusal`, and runs `action.handler` like any other call.
   */
  upstream?: UpstreamToolSpec;
}

/** What the pipeline and tools/list need to know about one upstream tool. */
export interface UpstreamToolSpec {
  server: string;
  /** The tool's name on the upstream server. */
  tool: string;
  /** The upstream inputSchema, sanitized for listing (a plain `type: object`). */
  inputSchema: Record<string, unknown>;
  annotations?: Record<string, unknown> | undefined;
  /** readOnlyHint true → read; destructiveHint true → irreversible; anything else → write. */
  effect: Effect;
  /** Per-server call bound (servers.json timeout_ms); policy's default otherwise. */
  timeoutMs?: number | undefined;
  /** An error message when the arguments do not satisfy the upstream inputSchema. */
  validate(args: Record<string, unknown>): string | undefined;
  /** Why the tool is hidden and refused now (not allowed, pending approval, changed, …). */
  refusal(): { code: 'DENIED' | 'AUTH_FAILED'; message: string; hint: string } | undefined;
  /** The synthetic action (`call`) the pipeline runs: policy view, handler, summary. */
  action: ActionDef<z.ZodObject, unknown>;
}

export function defineTool(def: ToolDef): ToolDef {
  return def;
}
