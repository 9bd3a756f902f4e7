import { callUri, runUri } from '../../artifacts/uri.js';
import type { ActionContext } from '../../core/define-action.js';
import type { Envelope, OkEnvelope } from '../../core/envelope.js';
import { isToolError, ToolError, type ErrorCode } from '../../core/errors.js';
import type { Runbook, RunbookStep } from '../../config/schemas.js';
import { fullActionSchema } from '../../exec/schemas.js';
import { formatZodIssues } from '../../config/load.js';
import { findRunbook, MAX_DEPTH, resolveInputs, stepAction, type CatalogEntry } from './catalog.js';
import { resolveIntent } from './capabilities.js';
import { Deferred, evaluate, hasTemplate, render, walk, type Scope } from './template.js';

export interface RunArgs {
  name?: string | undefined;
  intent?: string | undefined;
  input: Record<string, unknown>;
  dry_run: boolean;
  async?: boolean | undefined;
}

export interface ResolvedRun {
  name: string;
  entry: CatalogEntry;
  input: Record<string, unknown>;
  capability?: string;
}

/** Finds the runbook a run names (by name, or by intent through capabilities.json) and checks its input. */
export function resolveRun(services: ActionContext['services'], a: RunArgs): ResolvedRun {
  if ((a.name === undefined) === (a.intent === undefined)) {
    throw new ToolError('INVALID_ARGUMENT', 'runbook run needs exactly one of "name" or "intent"', {
      hint: 'e.g. {"action": "run", "name": "repo.snapshot", "input": {"repo_path": "."}}',
    });
  }
  let name = a.name;
  let capability: string | undefined;
  let input = a.input;
  if (a.intent !== undefined) {
    const m = resolveIntent(services, a.intent);
    name = m.cap.runbook;
    capability = m.capability;
    input = { ...(m.cap.inputs ?? {}), ...a.input };
  }
  const entry = findRunbook(services, name!);
  return { name: name!, entry, input: resolveInputs(name!, entry.runbook, input), ...(capability ? { capability } : {}) };
}

type StepStatus = 'pending' | 'running' | 'ok' | 'failed' | 'skipped' | 'cancelled' | 'not_run' | 'planned';

interface StepError {
  code: ErrorCode;
  message: string;
  hint?: string | undefined;
}

interface CallRecord {
  status: StepStatus;
  args?: unknown;
  call_id?: string;
  artifact?: string;
  attempts?: { call_id: string; ok: boolean; duration_ms: number | undefined; error_code?: string }[];
  duration_ms?: number;
  summary?: string;
  error?: StepError;
  result?: unknown;
  /** dry run: the rendered args do not satisfy the action's schema */
  schema_error?: string;
}

interface ItemRecord extends CallRecord {
  index: number;
  item: unknown;
}

interface StepRecord extends CallRecord {
  id: string;
  tool: string;
  tool_alias?: string;
  action: string | null;
  description?: string;
  when?: string | boolean;
  when_result?: boolean | 'unknown';
  started_at?: string;
  items?: ItemRecord[];
}

interface Outcome {
  env?: Envelope | undefined;
  items?: (Envelope | undefined)[];
  status: StepStatus;
}

const RUN_RESULT_BYTES = 64 * 1024;
const MAX_ITEMS = 1000;

/** Runs being executed by this process, for nesting depth and cycle checks. */
const activeRuns = new Map<string, string[]>();

function toStepError(e: unknown): StepError {
  if (isToolError(e)) return { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
  return { code: 'INTERNAL', message: String((e as Error)?.message ?? e) };
}

function isOverflowResult(r: unknown): r is { note: string; result_uri: string } {
  return !!r && typeof r === 'object' && 'result_uri' in r && 'note' in r && Object.keys(r).length === 2;
}

function bounded(v: unknown, max: number): { value?: unknown; omitted?: string } {
  const s = JSON.stringify(v);
  if (s === undefined) return {};
  if (s.length <= max) return { value: v };
  return { omitted: `${s.length} bytes of result, over the ${max}-byte bound here; read it from the step's artifact` };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Executes one run: each step through `ctx.call` (a child call: policy, audit row with
 * parent_id, artifact), templates rendered just before the step, `run.json` rewritten at every
 * step so a run that stops mid-way still shows which steps ran, with what and how.
 */
export async function executeRun(ctx: ActionContext, r: ResolvedRun, a: RunArgs): Promise<Record<string, unknown>> {
  const services = ctx.services;
  const rb: Runbook = r.entry.runbook;
  const runId = ctx.callId;
  const runUriStr = runUri(r.name, runId, 'run.json');
  const limits = services.config.policy.limits;
  const startedAt = Date.now();

  // nesting: a runbook step may run another runbook, but not itself and not too deep
  const parentId = services.audit.get(ctx.callId)?.parent_id ?? undefined;
  const chain = [...(parentId ? (activeRuns.get(parentId) ?? []) : []), r.name];
  if (chain.slice(0, -1).includes(r.name)) {
    throw new ToolError('INVALID_ARGUMENT', `runbook ${r.name} runs itself through ${chain.join(' → ')}`, {
      hint: 'a runbook may not call itself, directly or through others',
    });
  }
  if (chain.length > MAX_DEPTH + 1) {
    throw new ToolError('LIMIT_EXCEEDED', `runbooks nest ${chain.length} deep (${chain.join(' → ')}), over the bound of ${MAX_DEPTH + 1}`);
  }
  activeRuns.set(ctx.callId, chain);

  const jobId = ctx.jobId;

  const records: StepRecord[] = rb.steps.map((s) => ({
    id: s.id,
    tool: stepAction(services, s.tool, s.args.action).toolName,
    ...(stepAction(services, s.tool, s.args.action).toolName !== s.tool ? { tool_alias: s.tool } : {}),
    action: typeof s.args.action === 'string' ? s.args.action : null,
    ...(s.description ? { description: s.description } : {}),
    ...(s.when !== undefined ? { when: s.when } : {}),
    status: 'pending' as StepStatus,
  }));
  const outcomes = new Map<string, Outcome>();
  const artifactText = new Map<string, Promise<string>>();
  const fullResults = new Map<string, Promise<unknown>>();
  let runStatus: string = a.dry_run ? 'dry_run' : 'running';
  let runError: StepError | undefined;

  // --- template scope -------------------------------------------------------------------------
  const readText = (uri: string): Promise<string> => {
    let p = artifactText.get(uri);
    if (!p) {
      p = services.artifacts.readAll(uri, limits.template_max_bytes).then((b) => b.toString('utf8'));
      artifactText.set(uri, p);
    }
    return p;
  };
  const fullResult = (env: OkEnvelope): Promise<unknown> => {
    if (!isOverflowResult(env.result)) return Promise.resolve(env.result);
    let p = fullResults.get(env.call_id);
    if (!p) {
      p = readText(callUri(env.call_id, 'call.json')).then((t) => (JSON.parse(t) as { envelope?: { result?: unknown } }).envelope?.result);
      fullResults.set(env.call_id, p);
    }
    return p;
  };
  /** A path into a step's result; a field that was truncated inline is read whole from its artifact. */
  const resultPath = async (env: Envelope | undefined, path: string[]): Promise<unknown> => {
    if (!env || !env.ok) return undefined;
    const result = await fullResult(env);
    const truncated = env.truncated ?? {};
    if (path.length === 0) {
      if (!result || typeof result !== 'object' || Array.isArray(result)) return result;
      const out: Record<string, unknown> = { ...(result as Record<string, unknown>) };
      for (const f of Object.keys(truncated)) if (typeof out[f] === 'string') out[f] = await readText(callUri(env.call_id, f));
      return out;
    }
    const field = path[0]!;
    if (truncated[field]) return walk(await readText(callUri(env.call_id, field)), path.slice(1));
    return walk(result, path);
  };
  const stepValue = async (id: string, path: string[]): Promise<unknown> => {
    const o = outcomes.get(id);
    if (!o) return a.dry_run && records.some((x) => x.id === id) ? new Deferred(['steps', id, ...path].join('.')) : undefined;
    const meta = path[0];
    if (meta === '_status') return o.status;
    if (meta === '_ok') return o.status === 'ok';
    if (meta === '_error') return walk(o.env && !o.env.ok ? o.env.error : undefined, path.slice(1));
    if (meta === '_call_id') return o.env?.call_id;
    if (o.items) {
      if (path.length === 0) return Promise.all(o.items.map((e) => resultPath(e, [])));
      if (path[0] === 'length') return o.items.length;
      if (!/^\d+$/.test(path[0]!)) return undefined;
      return resultPath(o.items[Number(path[0])], path.slice(1));
    }
    return resultPath(o.env, path);
  };
  const scope = (extra: { item?: unknown; index?: number; result?: Envelope | Deferred } = {}): Scope => ({
    resolve: async (path) => {
      const [ns, ...rest] = path;
      switch (ns) {
        case 'input':
          return walk(r.input, rest);
        case 'steps':
          return rest.length ? stepValue(rest[0]!, rest.slice(1)) : undefined;
        case 'state':
          return rest.length ? walk(services.state.get(rest[0]!)?.value, rest.slice(1)) : undefined;
        case 'item':
          return walk(extra.item, rest);
        case 'index':
          return rest.length ? undefined : extra.index;
        case 'run':
          return walk({ id: runId, name: r.name, started_at: new Date(startedAt).toISOString() }, rest);
        case 'result':
          if (extra.result instanceof Deferred) return new Deferred(path.join('.'));
          return resultPath(extra.result, rest);
        default:
          return undefined;
      }
    },
  });

  // --- run.json ----------------------------------------------------------------------------------
  let writing: Promise<unknown> = Promise.resolve();
  const runDoc = (): Record<string, unknown> => ({
    run_id: runId,
    runbook: r.name,
    source: r.entry.source,
    ...(r.capability ? { capability: r.capability } : {}),
    description: rb.description,
    status: runStatus,
    dry_run: a.dry_run,
    input: r.input,
    call_id: ctx.callId,
    call_artifact: callUri(ctx.callId),
    started_at: new Date(startedAt).toISOString(),
    ...(runStatus !== 'running' ? { ended_at: new Date().toISOString(), duration_ms: Date.now() - startedAt } : {}),
    ...(runError ? { error: runError } : {}),
    steps: records,
  });
  const writeRun = (): Promise<unknown> => {
    const doc = JSON.stringify(runDoc(), null, 2);
    writing = writing
      .catch(() => undefined)
      .then(() => services.artifacts.writeRunFile(r.name, runId, 'run.json', doc))
      .catch((e: unknown) => ctx.log.error('run.json could not be written', { run_id: runId, error: String((e as Error)?.message ?? e) }));
    if (jobId)
      services.jobs.setSteps(
        jobId,
        records.map((s) => ({ id: s.id, status: s.status, call_id: s.call_id ?? null })),
      );
    return writing;
  };
  // a cancel or timeout answers within the pipeline's grace period: record the state at once
  const onAbort = (): void => {
    runStatus = 'cancelled';
    for (const s of records) if (s.status === 'running') s.status = 'cancelled';
    void writeRun();
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });

  // --- one call of a step (with retries) ---------------------------------------------------------
  const callStep = async (step: RunbookStep, rec: CallRecord, extra: { item?: unknown; index?: number }): Promise<Envelope | undefined> => {
    const max = step.retry?.max_attempts ?? 1;
    const started = Date.now();
    rec.attempts = [];
    let last: Envelope | undefined;
    for (let attempt = 1; attempt <= max; attempt++) {
      if (ctx.signal.aborted) {
        rec.status = 'cancelled';
        return last;
      }
      let args: Record<string, unknown>;
      try {
        args = await renderArgs(step, scope(extra));
      } catch (e) {
        rec.status = 'failed';
        rec.error = toStepError(e);
        rec.duration_ms = Date.now() - started;
        return undefined;
      }
      rec.args = clipStrings(args);
      const env = await ctx.call(step.tool, args, step.timeout_ms !== undefined ? { timeoutMs: step.timeout_ms } : undefined);
      last = env;
      rec.call_id = env.call_id;
      if (env.artifact) rec.artifact = env.artifact;
      rec.attempts.push({
        call_id: env.call_id,
        ok: env.ok,
        duration_ms: env.duration_ms,
        ...(env.ok ? {} : { error_code: env.error.code }),
      });
      let failure: StepError | undefined;
      if (!env.ok) failure = { code: env.error.code, message: env.error.message, ...(env.error.hint ? { hint: env.error.hint } : {}) };
      else {
        const s = scope({ ...extra, result: env });
        try {
          if (step.retry?.until !== undefined && !(await evaluate(step.retry.until, s))) {
            failure = {
              code: 'UPSTREAM_ERROR',
              message: `retry.until ${JSON.stringify(step.retry.until)} did not hold after ${attempt} attempt${attempt > 1 ? 's' : ''}`,
            };
          } else if (step.assert !== undefined && !(await evaluate(step.assert, s))) {
            failure = {
              code: 'UPSTREAM_ERROR',
              message: `assert ${JSON.stringify(step.assert)} did not hold`,
              hint: `the step's result is in ${env.artifact ?? 'its artifact'}`,
            };
          }
        } catch (e) {
          failure = toStepError(e);
        }
      }
      if (!failure) {
        rec.status = 'ok';
        delete rec.error;
        break;
      }
      rec.status = ctx.signal.aborted ? 'cancelled' : 'failed';
      rec.error = failure;
      if (ctx.signal.aborted || attempt === max || (env.ok === false && env.error.code === 'DENIED')) break;
      await sleep(step.retry?.delay_ms ?? 0, ctx.signal);
    }
    rec.duration_ms = Date.now() - started;
    if (rec.call_id) {
      await services.audit.recorded(rec.call_id);
      const row = services.audit.get(rec.call_id);
      if (row?.summary) rec.summary = row.summary;
    }
    if (last?.ok) {
      const b = bounded(last.result, RUN_RESULT_BYTES);
      if (b.value !== undefined) rec.result = b.value;
    }
    return last;
  };

  /** Dry run: render without calling; check the rendered args against the action's schema when complete. */
  const planStep = async (step: RunbookStep, rec: CallRecord, extra: { item?: unknown; index?: number }): Promise<void> => {
    try {
      const args = await renderArgs(step, scope({ ...extra }));
      rec.args = args;
      rec.status = 'planned';
      if (!containsDeferred(args)) {
        const { def } = stepAction(services, step.tool, args.action);
        if (def) {
          const { action: _x, ...rest } = args;
          const p = fullActionSchema(def).safeParse(rest);
          if (!p.success) rec.schema_error = formatZodIssues(p.error);
        }
      }
    } catch (e) {
      rec.status = 'failed';
      rec.error = toStepError(e);
    }
  };

  const renderArgs = async (step: RunbookStep, s: Scope): Promise<Record<string, unknown>> => {
    let action = step.args.action;
    if (hasTemplate(action)) action = await render(action, s);
    const { toolName } = stepAction(services, step.tool, action);
    const shellFields = new Set<string>();
    if (toolName === 'ssh' && action === 'exec') shellFields.add('command');
    if (toolName === 'local' && action === 'exec') {
      const shell = hasTemplate(step.args.shell) ? await render(step.args.shell, s) : step.args.shell;
      if (shell === true) shellFields.add('command');
    }
    const rendered = (await render({ ...step.args, action }, s, { shellFields })) as Record<string, unknown>;
    return rendered;
  };

  // --- the steps ----------------------------------------------------------------------------
  let failedAt: StepRecord | undefined;
  let failedSteps = 0;
  try {
    await writeRun();
    for (let i = 0; i < rb.steps.length; i++) {
      const step = rb.steps[i]!;
      const rec = records[i]!;
      if (ctx.signal.aborted) break;
      rec.started_at = new Date().toISOString();
      ctx.progress({
        progress: i,
        total: rb.steps.length,
        message: `${r.name}: step ${i + 1}/${rb.steps.length} ${step.id} (${step.tool}${rec.action ? `.${rec.action}` : ''})`,
      });

      if (step.when !== undefined) {
        let w: boolean | undefined;
        try {
          w = await evaluate(step.when, scope());
        } catch (e) {
          rec.status = 'failed';
          rec.error = toStepError(e);
          outcomes.set(step.id, { status: 'failed' });
          if (!step.continue_on_error) {
            failedAt = rec;
            break;
          }
          failedSteps++;
          continue;
        }
        rec.when_result = w === undefined ? 'unknown' : w;
        if (w === false) {
          rec.status = 'skipped';
          outcomes.set(step.id, { status: 'skipped' });
          await writeRun();
          continue;
        }
      }

      if (step.foreach !== undefined) {
        const spec = step.foreach;
        const itemsSrc = typeof spec === 'object' && !Array.isArray(spec) ? spec.items : spec;
        const parallel = typeof spec === 'object' && !Array.isArray(spec) ? spec.parallel : 1;
        let items: unknown;
        try {
          items = await render(itemsSrc, scope());
        } catch (e) {
          items = undefined;
          rec.error = toStepError(e);
        }
        if (items instanceof Deferred && a.dry_run) {
          rec.status = 'planned';
          rec.args = step.args;
          continue;
        }
        if (!Array.isArray(items) || items.length > MAX_ITEMS) {
          rec.status = 'failed';
          rec.error ??= {
            code: Array.isArray(items) ? 'LIMIT_EXCEEDED' : 'INVALID_ARGUMENT',
            message: Array.isArray(items)
              ? `foreach has ${items.length} items, over the bound of ${MAX_ITEMS}`
              : `foreach did not give a list (got ${JSON.stringify(items)?.slice(0, 100)})`,
          };
          outcomes.set(step.id, { status: 'failed' });
          if (!step.continue_on_error && !a.dry_run) {
            failedAt = rec;
            break;
          }
          failedSteps++;
          continue;
        }
        const list = items;
        rec.items = list.map((item, index) => ({ index, item, status: 'pending' as StepStatus }));
        rec.status = a.dry_run ? 'planned' : 'running';
        const envs: (Envelope | undefined)[] = new Array<Envelope | undefined>(list.length);
        await writeRun();
        const started = Date.now();
        let stop = false;
        let next = 0;
        const worker = async (): Promise<void> => {
          while (!stop && next < list.length && !ctx.signal.aborted) {
            const index = next++;
            const irec: ItemRecord = rec.items![index]!;
            irec.status = 'running' as StepStatus;
            if (a.dry_run) await planStep(step, irec, { item: list[index], index });
            else {
              envs[index] = await callStep(step, irec, { item: list[index], index });
              if (irec.status !== 'ok' && !step.continue_on_error) stop = true;
            }
            void writeRun();
          }
        };
        await Promise.all(Array.from({ length: Math.min(Math.max(1, parallel), Math.max(1, list.length)) }, () => worker()));
        for (const irec of rec.items) if (irec.status === 'pending') irec.status = ctx.signal.aborted ? 'cancelled' : 'not_run';
        rec.duration_ms = Date.now() - started;
        if (!a.dry_run) {
          const bad = rec.items.find((x) => x.status !== 'ok' && x.status !== 'not_run');
          rec.status = ctx.signal.aborted ? 'cancelled' : bad ? 'failed' : 'ok';
          if (bad?.error) rec.error = { ...bad.error, message: `item ${bad.index}: ${bad.error.message}` };
          if (bad?.artifact) rec.artifact = bad.artifact;
        }
        outcomes.set(step.id, { items: envs, status: rec.status });
      } else if (a.dry_run) {
        await planStep(step, rec, {});
      } else {
        rec.status = 'running';
        await writeRun();
        const env = await callStep(step, rec, {});
        outcomes.set(step.id, { env, status: rec.status });
      }
      await writeRun();
      if (rec.status === 'cancelled') break;
      if (rec.status === 'failed') {
        if (a.dry_run || step.continue_on_error) {
          failedSteps++;
          continue;
        }
        failedAt = rec;
        break;
      }
    }
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    activeRuns.delete(ctx.callId);
  }

  const cancelled = ctx.signal.aborted;
  for (const s of records) if (s.status === 'pending') s.status = cancelled ? 'cancelled' : 'not_run';
  if (cancelled) {
    runStatus = 'cancelled';
    const reason = isToolError(ctx.signal.reason) ? ctx.signal.reason : new ToolError('CANCELLED', 'the run was cancelled');
    runError = toStepError(reason);
  } else if (failedAt) {
    runStatus = 'failed';
    runError = {
      code: failedAt.error?.code ?? 'INTERNAL',
      message: `step ${failedAt.id} (${failedAt.tool}${failedAt.action ? `.${failedAt.action}` : ''}) failed: ${failedAt.error?.message ?? 'unknown error'}`,
      ...(failedAt.error?.hint ? { hint: failedAt.error.hint } : {}),
    };
  } else if (!a.dry_run) runStatus = failedSteps ? 'completed_with_errors' : 'ok';
  else runStatus = 'dry_run';
  await writeRun();
  await writing;

  const stepSummaries = summarizeSteps(records, ctx.maxBytes);
  if (cancelled) {
    const reason = isToolError(ctx.signal.reason) ? ctx.signal.reason : new ToolError('CANCELLED', 'the run was cancelled');
    throw new ToolError(reason.code, `runbook ${r.name} stopped: ${reason.message}`, {
      hint: `${runUriStr} shows which steps ran`,
      details: { run_uri: runUriStr, steps: stepSummaries },
    });
  }
  if (failedAt) {
    throw new ToolError(runError!.code, `runbook ${r.name} ${runError!.message}`, {
      hint: `${runUriStr} shows which steps ran, with their inputs and outputs; the failed step's call is ${failedAt.artifact ?? '(none: it failed before its call)'}${failedAt.error?.hint ? `; ${failedAt.error.hint}` : ''}`,
      details: { run_uri: runUriStr, failed_step: failedAt.id, steps: stepSummaries },
    });
  }
  return {
    runbook: r.name,
    run_id: runId,
    source: r.entry.source,
    ...(r.capability ? { capability: r.capability } : {}),
    status: runStatus,
    ...(a.dry_run ? { dry_run: true } : {}),
    run_uri: runUriStr,
    input: r.input,
    steps: stepSummaries,
  };
}

/** run.json keeps rendered args readable: a long string is cut (the step's call.json has it whole). */
function clipStrings(v: unknown, max = 65536): Record<string, unknown> {
  const clip = (x: unknown): unknown => {
    if (typeof x === 'string')
      return x.length > max ? `${x.slice(0, max)}…[${x.length} chars; the step's call.json has the whole value]` : x;
    if (Array.isArray(x)) return x.map(clip);
    if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, clip(y)]));
    return x;
  };
  return clip(v) as Record<string, unknown>;
}

function containsDeferred(v: unknown): boolean {
  if (v instanceof Deferred) return true;
  if (typeof v === 'string') return /\{\{[^{}]*\}\}/.test(v);
  if (Array.isArray(v)) return v.some(containsDeferred);
  if (v && typeof v === 'object') return Object.values(v).some(containsDeferred);
  return false;
}

/** The steps as the reply shows them: each step's result inline while the reply stays within max_bytes. */
function summarizeSteps(records: StepRecord[], maxBytes: number): Record<string, unknown>[] {
  const per = Math.max(512, Math.floor((maxBytes * 0.8) / Math.max(1, records.length)));
  return records.map((s) => {
    const { result, items, attempts, args, started_at: _s, ...rest } = s;
    const out: Record<string, unknown> = { ...rest };
    if (args !== undefined) {
      const b = bounded(args, per);
      if (b.value !== undefined) out.args = b.value;
      else out.args_omitted = `${JSON.stringify(args).length} bytes of rendered args; run.json has them`;
    }
    if (attempts && attempts.length > 1) out.attempts = attempts.length;
    if (items) {
      out.items = items.map((it) => ({
        index: it.index,
        item: it.item,
        status: it.status,
        call_id: it.call_id,
        ...(it.summary ? { summary: it.summary } : {}),
        ...(it.error ? { error: it.error } : {}),
      }));
    }
    if (result !== undefined) {
      const b = bounded(result, per);
      if (b.value !== undefined) out.result = b.value;
      else out.result_omitted = b.omitted;
    }
    return out;
  });
}
