import type { z } from 'zod';
import type { BoundedSink } from '../artifacts/bounded-sink.js';
import type { HeldFile } from '../artifacts/record-file.js';
import { callUri } from '../artifacts/uri.js';
import type { AuditOpen, AuditStatus } from '../audit/audit-store.js';
import {
  maxEffect,
  type ActionContext,
  type ActionDef,
  type Effect,
  type NestedCallOptions,
  type ProgressUpdate,
  type SinkOptions,
  type SinkResult,
  type ToolDef,
  type UpstreamToolSpec,
} from '../core/define-action.js';
import { clipDepth, depthOf, isStackOverflow, MAX_DEPTH, TooDeepError } from '../core/json-values.js';
import type { Envelope, ErrorEnvelope, OkEnvelope, TruncationInfo } from '../core/envelope.js';
import { isToolError, ToolError, type ErrorCode } from '../core/errors.js';
import { newCallId, newJobId } from '../core/ids.js';
import { CallAbort, cancelled, Deadlines, type CancelSource } from './call-abort.js';
import type { Services } from '../core/services.js';
import { formatZodIssues } from '../config/load.js';
import { actionRefusal, listingEffect, needsConfirm } from '../policy/policy.js';
import { fullActionSchema } from './schemas.js';

type AnyAction = ActionDef<z.ZodObject, unknown>;

export interface ClientInfo {
  name?: string | undefined;
  version?: string | undefined;
}

/** Asks the user to confirm an action; resolves false when declined or impossible. */
export type Confirmer = (request: { tool: string; action: string; key: string; message: string; args: unknown }) => Promise<boolean>;

export interface CallOptions {
  parentId?: string | undefined;
  /** Client cancellation (notifications/cancelled) or the parent's abort. */
  signal?: CancelSource | undefined;
  /** Sends progress notifications; absent when the client sent no progress token. */
  onProgress?: ((update: ProgressUpdate) => void) | undefined;
  client?: ClientInfo | undefined;
  confirm?: Confirmer | undefined;
  /** A parent (runbook) already confirmed its steps once before it started. */
  preconfirmed?: boolean | undefined;
  /**
   * Reply as soon as the result is final, while a read's record is still being written (the
   * stdio server). Without it, Runtime.call resolves once the call is recorded.
   */
  replyBeforeRecorded?: boolean | undefined;
  /** Absolute deadline inherited from a parent call. */
  deadline?: number | undefined;
  timeoutMs?: number | undefined;
}

/** What a call's audit close says, computed when the call ends. */
type ClosePayload = Parameters<Services['audit']['close']>[1];

interface Registered {
  tool: ToolDef;
  actions: Map<string, { def: AnyAction; schema: z.ZodObject }>;
}

/** Bounds the serialized result inline; a bigger result stays in call.json. */
const RESULT_CEILING = (maxBytes: number): number => Math.max(maxBytes * 4, 256 * 1024);

/** JSON.stringify of envelopes the pipeline returned, made while recording them (never changed after). */
const knownJson = new WeakMap<Envelope, string>();

/** The JSON text of an envelope this pipeline returned, when it made it already. */
export function envelopeJson(env: Envelope): string | undefined {
  return knownJson.get(env);
}

const ABORT_GRACE_MS = 3000;
/**
 * A read's files up to this size are held and written with its call.json after the reply
 * (docs/DECISIONS.md, "A read's small files go out with its record"); larger ones are written
 * when the handler asks.
 */
const HELD_FILE_MAX = 64 * 1024;
/** Every call's timeout, on one timer (src/exec/call-abort.ts). */
const deadlines = new Deadlines();

/**
 * The one execution layer (DESIGN §1): alias → validate → policy → confirm → audit row →
 * handler with signal and sinks → call.json → audit close → envelope. Nothing reaches a
 * handler except through here; nothing leaves it unrecorded.
 */
export class Pipeline {
  private readonly registry = new Map<string, Registered>();

  constructor(
    readonly services: Services,
    tools: readonly ToolDef[],
    private readonly aliases: Record<string, string>,
  ) {
    for (const tool of tools) this.register(tool);
  }

  register(tool: ToolDef): void {
    const actions = new Map<string, { def: AnyAction; schema: z.ZodObject }>();
    for (const def of tool.actions) {
      const schema = fullActionSchema(def);
      actions.set(def.action, { def, schema });
    }
    this.registry.set(tool.name, { tool, actions });
  }

  unregister(name: string): void {
    this.registry.delete(name);
  }

  tools(): ToolDef[] {
    return [...this.registry.values()].map((r) => r.tool);
  }

  resolveName(name: string): string {
    return this.aliases[name] ?? name;
  }

  /** Runs one tool call; always resolves with an envelope (tool failures are never thrown). */
  async call(name: string, rawArgs: unknown, opts: CallOptions = {}): Promise<Envelope> {
    const callId = newCallId();
    const startedAt = Date.now();
    const services = this.services;
    const toolName = this.resolveName(name);
    const reg = this.registry.get(toolName);
    const argsObj = rawArgs && typeof rawArgs === 'object' && !Array.isArray(rawArgs) ? (rawArgs as Record<string, unknown>) : undefined;
    const actionName = typeof argsObj?.action === 'string' ? argsObj.action : undefined;

    // known once the arguments are valid: a refused call's row still names its target
    let auditTarget: string | undefined;
    const refuse = (status: AuditStatus, err: ToolError, tool = toolName, action = actionName): Promise<Envelope> =>
      this.recordRefusal(callId, startedAt, tool, action, rawArgs, status, err, opts, auditTarget);

    // 0. arguments the recursive steps below (schema, redaction, the record) can handle
    if (depthOf(rawArgs) > MAX_DEPTH) {
      return this.recordRefusal(
        callId,
        startedAt,
        reg ? toolName : String(name).slice(0, 100),
        actionName,
        clipDepth(rawArgs),
        'invalid',
        new ToolError('INVALID_ARGUMENT', `the arguments of ${String(name).slice(0, 100)} nest more than ${MAX_DEPTH} levels deep`, {
          hint: `flatten the value, or pass it as text (a JSON string) where the action takes text`,
        }),
        opts,
      );
    }

    // 1. resolve the tool and action
    if (!reg) {
      const known = this.tools()
        .map((t) => t.name)
        .join(', ');
      return refuse(
        'invalid',
        new ToolError('INVALID_ARGUMENT', `unknown tool ${JSON.stringify(name)}`, {
          hint: `tools are: ${known}; help {query} searches them`,
        }),
        String(name).slice(0, 100),
      );
    }
    // a federated upstream tool takes its own raw-schema arguments, without `action`
    if (reg.tool.upstream) return this.callUpstream(callId, startedAt, reg.tool, reg.tool.upstream, rawArgs, opts);
    if (!argsObj) {
      return refuse(
        'invalid',
        new ToolError('INVALID_ARGUMENT', `arguments of ${toolName} must be a JSON object`, {
          hint: `pass {"action": "...", ...}; help {"query": "${toolName}"} shows the schemas`,
        }),
      );
    }
    let action = actionName;
    if (action === undefined && reg.actions.size === 1) action = [...reg.actions.keys()][0];
    const entry = action === undefined ? undefined : reg.actions.get(action);
    if (!entry) {
      const list = [...reg.actions.keys()].join(', ');
      const msg = action === undefined ? `${toolName} needs an "action"` : `${toolName} has no action ${JSON.stringify(action)}`;
      return refuse('invalid', new ToolError('INVALID_ARGUMENT', msg, { hint: `actions of ${toolName}: ${list}` }), toolName, action);
    }
    const { def, schema } = entry;

    // a tool that policy hides is refused by name before anything else is said about it
    // (so is an action that policy hides whatever its arguments: read-only mode, toggles, flags)
    const early = actionRefusal(reg.tool, def, listingEffect(def), services);
    if (early) {
      return refuse('denied', new ToolError('DENIED', early.message, { hint: early.hint }), toolName, action);
    }

    // 2. validate the exact per-action schema
    const { action: _a, ...rest } = argsObj;
    const parsed = schema.safeParse(rest);
    if (!parsed.success) {
      return refuse(
        'invalid',
        new ToolError('INVALID_ARGUMENT', `invalid arguments for ${toolName}.${action}: ${formatZodIssues(parsed.error)}`, {
          hint: `help {"query": "${toolName} ${action}"} returns the exact schema`,
        }),
        toolName,
        action,
      );
    }
    const args = parsed.data as Record<string, unknown> & { timeout_ms?: number; max_bytes?: number; async?: boolean };

    // 3. policy: flags, toggles, read-only, per-argument gates
    let effect: Effect = def.effect;
    let target: string | undefined;
    try {
      if (def.effectOf) effect = await def.effectOf(args, services);
      target = def.target?.(args);
      auditTarget = target;
      const refusal = actionRefusal(reg.tool, def, effect, services);
      if (refusal) throw new ToolError('DENIED', refusal.message, { hint: refusal.hint });
      // (a gate that decides at once does not cost a turn)
      const gated = def.gate?.(args, services);
      if (gated) await gated;
    } catch (e) {
      const err = asToolError(e);
      return refuse(err.code === 'DENIED' ? 'denied' : err.code === 'INVALID_ARGUMENT' ? 'invalid' : 'error', err, toolName, action);
    }

    // 3b. confirmation of irreversible (or policy-marked) actions; a confirmed call's children
    // (runbook steps) are not asked again
    let confirmed = opts.preconfirmed === true;
    // (a call whose action has no confirmOf does not wait a turn for it)
    const mustConfirm =
      needsConfirm(toolName, action!, effect, services) ||
      (def.confirmOf !== undefined &&
        ((await Promise.resolve()
          .then(() => def.confirmOf?.(args, services))
          .catch(() => true)) ??
          false));
    if (!opts.preconfirmed && mustConfirm) {
      const key = `${toolName}.${action}`;
      if (!(await askConfirm(opts, services, toolName, action!, key, effect, target, args))) {
        return refuse(
          'denied',
          new ToolError(
            'DENIED',
            `${key} needs the user's confirmation, which was ${opts.confirm ? 'declined or not possible' : 'not possible (the client does not support elicitation)'}`,
            {
              hint: `a human can allow it without asking by setting "confirm": { "${key}": false } in policy.json`,
              details: { confirm_key: key },
            },
          ),
          toolName,
          action,
        );
      }
      confirmed = true;
    }

    // 4. open the audit row
    const limits = services.config.policy.limits;
    const maxBytes = args.max_bytes ?? limits.inline_max_bytes;
    const asJob = def.long === true && args.async === true;
    const timeoutMs = args.timeout_ms ?? opts.timeoutMs ?? (asJob ? limits.job_timeout_ms : limits.default_timeout_ms);
    let deadline = startedAt + timeoutMs;
    if (opts.deadline !== undefined && !asJob) deadline = Math.min(deadline, opts.deadline);
    const redactedArgs = services.redactor.redactValue({ action, ...rest });
    const behind = !asJob && this.mayRecordBehind(effect);
    const notOpened = this.openAuditRow(openRow(callId, startedAt, toolName, action, target, redactedArgs, opts), behind);
    if (notOpened) return notOpened;

    const controller = new CallAbort();
    const jobId = asJob ? newJobId() : undefined;
    const run = (): Promise<Envelope> =>
      this.runHandler({
        callId,
        startedAt,
        toolName,
        action: action!,
        def,
        args,
        redactedArgs,
        target,
        effect,
        maxBytes,
        deadline,
        controller,
        opts: { ...opts, preconfirmed: confirmed },
        jobId,
        behind,
      });

    if (jobId) {
      const info = services.jobs.start(jobId, callId, toolName, action!, controller, run);
      const env: OkEnvelope = {
        ok: true,
        tool: toolName,
        action: action!,
        call_id: callId,
        duration_ms: Date.now() - startedAt,
        result: { job_id: jobId, status: info.status, started_at: info.started_at },
        artifact: callUri(callId),
        job_id: jobId,
      };
      return env;
    }
    // client cancellation reaches synchronous calls only (a job outlives its request)
    controller.followSoon(opts.signal);
    return run();
  }

  /**
   * Federated upstream tools (src/federation): the same steps in the same order — policy and
   * the tool's own refusal (allow/deny, approval pins), raw JSON Schema validation, confirm,
   * audit row, handler with signal and deadline, call.json, audit close — with the arguments
   * passed through untouched (they belong to the upstream tool, `timeout_ms` included).
   */
  private async callUpstream(
    callId: string,
    startedAt: number,
    tool: ToolDef,
    up: UpstreamToolSpec,
    rawArgs: unknown,
    opts: CallOptions,
  ): Promise<Envelope> {
    const services = this.services;
    const def = up.action;
    const action = def.action;
    const refuse = (status: AuditStatus, err: ToolError): Promise<Envelope> =>
      this.recordRefusal(callId, startedAt, tool.name, action, rawArgs, status, err, opts);
    const denied = actionRefusal(tool, def, up.effect, services) ?? up.refusal();
    if (denied) {
      const code: ErrorCode = (denied as { code?: ErrorCode }).code ?? 'DENIED';
      return refuse(code === 'DENIED' ? 'denied' : 'error', new ToolError(code, denied.message, { hint: denied.hint }));
    }
    if (!rawArgs || typeof rawArgs !== 'object' || Array.isArray(rawArgs)) {
      return refuse('invalid', new ToolError('INVALID_ARGUMENT', `arguments of ${tool.name} must be a JSON object`));
    }
    const args = rawArgs as Record<string, unknown>;
    const invalid = up.validate(args);
    if (invalid) {
      return refuse(
        'invalid',
        new ToolError('INVALID_ARGUMENT', `invalid arguments for ${tool.name}: ${invalid}`, {
          hint: `tools/list shows the inputSchema of ${tool.name}`,
        }),
      );
    }
    let confirmed = opts.preconfirmed === true;
    if (!confirmed && needsConfirm(tool.name, action, up.effect, services)) {
      const key = `${tool.name}.${action}`;
      if (!(await askConfirm(opts, services, tool.name, action, key, up.effect, up.server, args))) {
        return refuse(
          'denied',
          new ToolError('DENIED', `${tool.name} needs the user's confirmation, which was declined or not possible`, {
            hint: `a human can allow it without asking by setting "confirm": { "${tool.name}": false } in policy.json`,
            details: { confirm_key: tool.name },
          }),
        );
      }
      confirmed = true;
    }
    const limits = services.config.policy.limits;
    let deadline = startedAt + (up.timeoutMs ?? opts.timeoutMs ?? limits.default_timeout_ms);
    if (opts.deadline !== undefined) deadline = Math.min(deadline, opts.deadline);
    const redactedArgs = services.redactor.redactValue(args);
    const behind = this.mayRecordBehind(up.effect);
    const notOpened = this.openAuditRow(openRow(callId, startedAt, tool.name, action, up.server, redactedArgs, opts), behind);
    if (notOpened) return notOpened;
    const controller = new CallAbort();
    controller.follow(opts.signal);
    return this.runHandler({
      callId,
      startedAt,
      toolName: tool.name,
      action,
      def,
      args,
      redactedArgs,
      target: up.server,
      effect: up.effect,
      maxBytes: limits.inline_max_bytes,
      deadline,
      controller,
      opts: { ...opts, preconfirmed: confirmed },
      jobId: undefined,
      behind,
    });
  }

  /**
   * Reads are recorded write-behind (docs/DECISIONS.md): the reply leaves when the result is
   * final, call.json and the audit close follow within milliseconds. Calls with an effect, jobs,
   * and every call while the artifacts disk is short of space keep DESIGN §1's order: recorded,
   * then answered.
   */
  private mayRecordBehind(effect: Effect): boolean {
    return effect === 'read' && this.services.artifacts.hasRoom();
  }

  private async runHandler(c: {
    callId: string;
    startedAt: number;
    toolName: string;
    action: string;
    def: AnyAction;
    args: Record<string, unknown>;
    redactedArgs: unknown;
    target: string | undefined;
    effect: Effect;
    maxBytes: number;
    deadline: number;
    controller: CallAbort;
    opts: CallOptions;
    jobId: string | undefined;
    /** Record after replying (a read with room on disk). */
    behind: boolean;
  }): Promise<Envelope> {
    const services = this.services;
    const { callId, controller } = c;
    const sinks: BoundedSink[] = [];
    /** Small files of a read, written with its call.json after the reply (none for other calls). */
    let held: HeldFile[] | undefined;
    const clearDeadline = deadlines.add(c.deadline, () =>
      controller.abort(
        new ToolError('TIMEOUT', `${c.toolName}.${c.action} timed out after ${c.deadline - c.startedAt} ms`, {
          hint: 'raise timeout_ms, or run it with async: true and follow it with the jobs tool',
        }),
      ),
    );
    const jobId = c.jobId;
    let replyOnly: Record<string, unknown> | undefined;
    const ctx: ActionContext = {
      callId,
      jobId,
      tool: c.toolName,
      action: c.action,
      get signal() {
        return controller.signal;
      },
      cancel: controller,
      deadline: c.deadline,
      maxBytes: c.maxBytes,
      services,
      log: services.log,
      sink: (name: string, opts?: SinkOptions) => {
        const s = services.artifacts.sink(callId, name, c.maxBytes, opts);
        sinks.push(s);
        if (jobId) services.jobs.attachSink(jobId, s);
        return s;
      },
      writeArtifact: async (name, data, o) => {
        // a read's small file goes out with its call.json, after the reply, like the record itself
        if (c.behind && name !== 'call.json' && (typeof data === 'string' ? data.length * 3 : data.length) <= HELD_FILE_MAX) {
          const f = services.artifacts.holdCallFile(callId, name, data, o?.raw ?? false);
          held = (held ?? []).filter((h) => h.name !== name);
          held.push({ name: f.name, data: f.data });
          return { uri: f.uri, bytes: f.bytes, sha256: f.sha256 };
        }
        const r = await services.artifacts.writeCallFile(callId, name, data, o?.raw ?? false);
        return { uri: r.uri, bytes: r.bytes, sha256: r.sha256 };
      },
      artifactUri: (name?: string) => callUri(callId, name),
      progress: (update: ProgressUpdate) => {
        c.opts.onProgress?.(update);
        if (jobId) services.jobs.progress(jobId, update);
      },
      requireLocal: (what: string) => {
        if (!services.flags.unsafeLocal) {
          throw new ToolError('DENIED', `${what} needs local access, which is off by default`, {
            hint: 'a human can allow local process spawns and file access by starting infra with INFRA_UNSAFE_LOCAL=1',
          });
        }
      },
      replyOnly: (fields: Record<string, unknown>) => {
        replyOnly = { ...replyOnly, ...fields };
      },
      call: (tool: string, args: Record<string, unknown>, o?: NestedCallOptions) =>
        this.call(tool, args, {
          parentId: callId,
          signal: o?.signal ?? controller,
          onProgress: c.opts.onProgress,
          client: c.opts.client,
          confirm: c.opts.confirm,
          preconfirmed: c.opts.preconfirmed,
          deadline: c.deadline,
          timeoutMs: o?.timeoutMs,
        }),
    };

    let status: AuditStatus = 'ok';
    let envelope: Envelope;
    let sinkResults: SinkResult[] = [];
    try {
      const handlerPromise = c.def.handler(ctx, c.args);
      handlerPromise.catch(() => undefined);
      const result = await raceAbort(handlerPromise, controller);
      if (sinks.length > 0) sinkResults = await Promise.all(sinks.map((s) => s.done()));
      const truncated: Record<string, TruncationInfo> = {};
      for (const r of sinkResults) if (r.truncated) truncated[r.name] = { bytes: r.bytes, inline: Buffer.byteLength(r.inline) };
      envelope = {
        ok: true,
        tool: c.toolName,
        action: c.action,
        call_id: callId,
        duration_ms: Date.now() - c.startedAt,
        result: services.redactor.redactValue(
          result !== null && typeof result === 'object' && !Array.isArray(result) ? result : { value: result ?? null },
        ),
        ...(Object.keys(truncated).length ? { truncated } : {}),
        artifact: callUri(callId),
      };
    } catch (e) {
      const err = controller.reason && !isToolError(e) ? controller.reason : asToolError(e, services);
      if (err.code === 'INTERNAL')
        services.log.error('handler failed', {
          tool: c.toolName,
          action: c.action,
          error: services.redactor.redact(String((e as Error)?.stack ?? e)),
        });
      status = statusFor(err.code);
      // unfinished streams are abandoned before call.json is written: their temp files are
      // gone (and their space free again when the disk filled up). Streams the handler did
      // finish (output up to a lost connection) stay, listed in call.json as incomplete.
      const kept = await Promise.all(
        sinks.map(async (s) => {
          // (a finished sink is auto-destroyed, so `destroyed` cannot tell; `errored` can)
          if (s.writableEnded && !s.errored) return s.done().catch(() => undefined);
          await s.discard();
          return undefined;
        }),
      );
      sinkResults = kept.filter((r): r is SinkResult => r !== undefined);
      envelope = errorEnvelope(callId, c.toolName, c.action, c.startedAt, err, services);
    } finally {
      clearDeadline();
      controller.ended();
    }

    // 6. call.json and the audit row
    const bytes = sinkResults.reduce((n, r) => n + r.bytes, 0);
    let finalEnvelope = envelope;
    const full = JSON.stringify(envelope);
    if (envelope.ok && full.length > RESULT_CEILING(c.maxBytes)) {
      finalEnvelope = {
        ...envelope,
        result: {
          note: `the result is ${full.length} bytes, over the inline bound; read it from ${callUri(callId, 'call.json')}`,
          result_uri: callUri(callId, 'call.json'),
        },
      };
    }
    const endedAt = Date.now();
    // call.json: one line per fact, then the envelope as the reply carried it (already
    // serialised); indenting with JSON.stringify takes V8's slow path and cost as much as the rest
    const record = (): string =>
      callRecord(
        {
          call_id: callId,
          parent_id: c.opts.parentId ?? null,
          tool: c.toolName,
          action: c.action,
          effect: c.effect,
          target: c.target ?? null,
          args: c.redactedArgs,
          started_at: new Date(c.startedAt).toISOString(),
          ended_at: new Date(endedAt).toISOString(),
          duration_ms: endedAt - c.startedAt,
          client: c.opts.client ?? null,
          streams: sinkResults.map((r) => ({
            name: r.name,
            bytes: r.bytes,
            stored_bytes: r.stored_bytes,
            sha256: r.sha256,
            uri: r.uri,
            artifact_limited: r.artifact_limited,
            ...(envelope.ok ? {} : { incomplete: true }),
          })),
        },
        full,
      );
    if (c.behind) {
      // the reply goes now; call.json and the row's close are built right after it and follow
      // (the client's next read of this call's artifacts or of the audit index waits for them)
      const replied = finalEnvelope;
      const st = status;
      services.audit.closeWithRecord(callId, () => ({
        close: this.closePayload(c.startedAt, endedAt, st, replied, c.def, c.args, bytes, c.target),
        file: services.artifacts.recordFile(callId, record(), held),
      }));
    } else {
      try {
        await services.artifacts.writeCallFile(callId, 'call.json', record());
      } catch (e) {
        services.log.error('call.json could not be written', { call_id: callId, error: (e as Error).message });
        if (finalEnvelope.ok) {
          status = 'error';
          finalEnvelope = errorEnvelope(callId, c.toolName, c.action, c.startedAt, asToolError(e, services), services);
        }
      }
      this.closeAudit(callId, this.closePayload(c.startedAt, Date.now(), status, finalEnvelope, c.def, c.args, bytes, c.target));
    }
    // reply-only fields join the reply after everything was recorded, and only for the client
    // itself (a parent call would record them in its own result)
    if (replyOnly && finalEnvelope.ok && !c.opts.parentId && !jobId) {
      const r = finalEnvelope.result;
      finalEnvelope = { ...finalEnvelope, result: { ...(r && typeof r === 'object' && !Array.isArray(r) ? r : {}), ...replyOnly } };
    }
    if (finalEnvelope === envelope) knownJson.set(envelope, full);
    return finalEnvelope;
  }

  private closePayload(
    startedAt: number,
    endedAt: number,
    status: AuditStatus,
    env: Envelope,
    def: AnyAction | undefined,
    args: unknown,
    bytes: number | undefined,
    target: string | undefined,
  ): ClosePayload {
    const services = this.services;
    let summary: string;
    if (env.ok) {
      try {
        summary = def?.summarize ? def.summarize(env.result, args as never) : 'ok';
      } catch {
        summary = 'ok';
      }
    } else summary = `${env.error.code}: ${env.error.message}`;
    return {
      status: status === 'running' ? 'error' : status,
      ended_at: new Date(endedAt).toISOString(),
      duration_ms: endedAt - startedAt,
      error_code: env.ok ? undefined : env.error.code,
      summary: services.redactor.redact(summary).slice(0, 2000),
      bytes,
      target,
    };
  }

  private closeAudit(callId: string, close: ClosePayload, behind = false): void {
    try {
      this.services.audit.close(callId, close, { behind });
    } catch (e) {
      this.services.log.error('audit row could not be closed', { call_id: callId, error: (e as Error).message });
    }
  }

  /** Inserts the `running` row before the handler starts; an error envelope when it cannot. */
  private openAuditRow(row: AuditOpen, behind: boolean): ErrorEnvelope | undefined {
    try {
      this.services.audit.open(row, { behind });
      return undefined;
    } catch (e) {
      this.services.log.error('audit row could not be opened; refusing the call', { error: (e as Error).message });
      return {
        ok: false,
        call_id: row.id,
        error: { code: 'INTERNAL', message: `the audit index could not record this call: ${(e as Error).message}`, retryable: true },
      };
    }
  }

  /** Denied, invalid and unknown calls: audited and given an artifact like any other. */
  private async recordRefusal(
    callId: string,
    startedAt: number,
    tool: string,
    action: string | undefined,
    rawArgs: unknown,
    status: AuditStatus,
    err: ToolError,
    opts: CallOptions,
    target?: string,
  ): Promise<Envelope> {
    const services = this.services;
    const env = errorEnvelope(callId, tool, action, startedAt, err, services);
    const args = services.redactor.redactValue(rawArgs);
    try {
      services.audit.open(openRow(callId, startedAt, tool, action, target, args, opts));
      await services.artifacts.writeCallFile(
        callId,
        'call.json',
        JSON.stringify(
          {
            call_id: callId,
            parent_id: opts.parentId ?? null,
            tool,
            action: action ?? null,
            args,
            started_at: new Date(startedAt).toISOString(),
            client: opts.client ?? null,
            envelope: env,
          },
          null,
          2,
        ),
      );
    } catch (e) {
      services.log.error('refused call could not be fully recorded', { call_id: callId, error: (e as Error).message });
    }
    this.closeAudit(callId, this.closePayload(startedAt, Date.now(), status, env, undefined, rawArgs, undefined, target));
    return env;
  }
}

/** Asks the user through the call's confirmer; false when declined, impossible or failed. */
function askConfirm(
  opts: CallOptions,
  services: Services,
  tool: string,
  action: string,
  key: string,
  effect: Effect,
  target: string | undefined,
  args: Record<string, unknown>,
): Promise<boolean> {
  if (!opts.confirm) return Promise.resolve(false);
  return opts
    .confirm({ tool, action, key, message: confirmMessage(tool, action, effect, target, args), args: services.redactor.redactValue(args) })
    .catch(() => false);
}

function confirmMessage(tool: string, action: string, effect: Effect, target: string | undefined, args: Record<string, unknown>): string {
  const detail = Object.entries(args)
    .filter(([k]) => !['timeout_ms', 'max_bytes', 'async'].includes(k))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(' ')
    .slice(0, 400);
  return `Allow ${tool}.${action} (${effect})${target ? ` on ${target}` : ''}? ${detail}`;
}

/** Rejects with the abort reason when the call is aborted, after a grace period for cleanup. */
function raceAbort<T>(p: Promise<T>, abort: CallAbort): Promise<T> {
  if (abort.reason) return Promise.reject(abort.reason);
  return new Promise<T>((resolve, reject) => {
    let grace: NodeJS.Timeout | undefined;
    const off = abort.onAbort(() => {
      // give the handler a moment to stop the remote work and report; then answer anyway
      grace = setTimeout(() => reject(abort.reason), ABORT_GRACE_MS);
      grace.unref();
    });
    p.then(
      (v) => {
        if (grace) clearTimeout(grace);
        off();
        if (abort.reason) reject(abort.reason);
        else resolve(v);
      },
      (e: unknown) => {
        if (grace) clearTimeout(grace);
        off();
        reject(abort.reason && !(isToolError(e) && e.code !== 'INTERNAL') ? abort.reason : e);
      },
    );
  });
}

export function asToolError(e: unknown, services?: Services): ToolError {
  if (isToolError(e)) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.name === 'AbortError') return cancelled();
  if (err?.code === 'ENOSPC' || err?.code === 'EFBIG' || err?.code === 'EDQUOT') {
    return new ToolError('LIMIT_EXCEEDED', `out of space writing the artifact: ${err.message}`, {
      hint: 'free space in the artifacts directory (infra artifacts prune) and retry',
      retryable: true,
    });
  }
  if (e instanceof TooDeepError || isStackOverflow(e)) {
    const how =
      e instanceof TooDeepError ? `more than ${e.limit} levels deep` : 'too deeply to be handled (about a thousand levels or more)';
    return new ToolError('LIMIT_EXCEEDED', `a value in this call's result nests ${how}`, {
      hint: 'ask for a shallower result (select the parts you need); a body or file the call wrote is in its artifact as text',
      retryable: false,
    });
  }
  const message = String(err?.message ?? e);
  return new ToolError('INTERNAL', services ? services.redactor.redact(message) : message, { retryable: false });
}

function statusFor(code: ErrorCode): AuditStatus {
  switch (code) {
    case 'DENIED':
      return 'denied';
    case 'INVALID_ARGUMENT':
      return 'invalid';
    case 'TIMEOUT':
      return 'timeout';
    case 'CANCELLED':
      return 'cancelled';
    default:
      return 'error';
  }
}

function errorEnvelope(
  callId: string,
  tool: string | undefined,
  action: string | undefined,
  startedAt: number,
  err: ToolError,
  services: Services,
): ErrorEnvelope {
  return {
    ok: false,
    ...(tool ? { tool } : {}),
    ...(action ? { action } : {}),
    call_id: callId,
    duration_ms: Date.now() - startedAt,
    error: {
      code: err.code,
      message: services.redactor.redact(err.message),
      ...(err.hint ? { hint: services.redactor.redact(err.hint) } : {}),
      retryable: err.retryable,
      ...(err.details ? { details: services.redactor.redactValue(err.details) } : {}),
    },
    artifact: callUri(callId),
  };
}

/** The `running` row of a call: its redacted arguments (clamped), artifact and client. */
function openRow(
  callId: string,
  startedAt: number,
  tool: string,
  action: string | undefined,
  target: string | undefined,
  redactedArgs: unknown,
  opts: CallOptions,
): AuditOpen {
  return {
    id: callId,
    parent_id: opts.parentId,
    started_at: new Date(startedAt).toISOString(),
    tool,
    action,
    target,
    args: clampJson(redactedArgs),
    artifact: callUri(callId),
    client_name: opts.client?.name,
    client_version: opts.client?.version,
  };
}

/** The text of call.json: each field on a line of its own (compact JSON), the envelope last. */
function callRecord(fields: Record<string, unknown>, envelopeJson: string): string {
  let out = '{\n';
  for (const k in fields) {
    const v = JSON.stringify(fields[k]);
    if (v !== undefined) out += `  ${JSON.stringify(k)}: ${v},\n`;
  }
  return `${out}  "envelope": ${envelopeJson}\n}`;
}

function clampJson(v: unknown, max = 65536): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? 'null';
  } catch {
    s = '"<unserializable>"';
  }
  return s.length > max ? JSON.stringify({ truncated: true, head: s.slice(0, max) }) : s;
}

export { maxEffect };
