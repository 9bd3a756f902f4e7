import { needsConfirm } from '../../policy/policy.js';
import { z } from 'zod';
import type { ActionDef, Effect, ToolDef } from '../../core/define-action.js';
import { EFFECT_RANK } from '../../core/define-action.js';
import { invalid, notFound, ToolError } from '../../core/errors.js';
import type { Services } from '../../core/services.js';
import { formatZodIssues } from '../../config/load.js';
import { RunbooksFileSchema, type Runbook } from '../../config/schemas.js';
import { TOOL_ALIASES } from '../registry.js';
// the single binary carries the built-in runbooks: esbuild inlines these JSON imports
import dbExportTable from '../../../runbooks/db.export.table.json' with { type: 'json' };
import httpCheck from '../../../runbooks/http.check.json' with { type: 'json' };
import pgHealth from '../../../runbooks/pg.health.json' with { type: 'json' };
import repoSnapshot from '../../../runbooks/repo.snapshot.json' with { type: 'json' };
import smokeTargetBaseline from '../../../runbooks/smoke.target.baseline.json' with { type: 'json' };
import sshHealth from '../../../runbooks/ssh.health.json' with { type: 'json' };
import sshSystemInfo from '../../../runbooks/ssh.system_info.json' with { type: 'json' };
import vpsServiceRestart from '../../../runbooks/vps.service.restart.json' with { type: 'json' };

type AnyAction = ActionDef<z.ZodObject, unknown>;

const BUILTIN_FILES: unknown[] = [
  repoSnapshot,
  sshSystemInfo,
  sshHealth,
  httpCheck,
  pgHealth,
  dbExportTable,
  vpsServiceRestart,
  smokeTargetBaseline,
];

function loadBuiltins(): Record<string, Runbook> {
  const out: Record<string, Runbook> = {};
  for (const file of BUILTIN_FILES) {
    const parsed = RunbooksFileSchema.safeParse(file);
    // a broken built-in is a build bug; the tests load every one of them
    if (!parsed.success) throw new Error(`built-in runbook file is invalid: ${formatZodIssues(parsed.error)}`);
    const { $schema: _s, ...rest } = parsed.data as Record<string, unknown>;
    Object.assign(out, rest as Record<string, Runbook>);
  }
  return out;
}

let builtinCache: Record<string, Runbook> | undefined;
export function builtinRunbooks(): Record<string, Runbook> {
  builtinCache ??= loadBuiltins();
  return builtinCache;
}

export type RunbookSource = 'builtin' | 'project';

export interface CatalogEntry {
  name: string;
  runbook: Runbook;
  source: RunbookSource;
  /** A project runbook that replaces a built-in of the same name. */
  overrides_builtin: boolean;
}

/** Built-ins merged with the project's runbooks.json; the project wins by name. */
export function allRunbooks(services: Pick<Services, 'config'>): Map<string, CatalogEntry> {
  const out = new Map<string, CatalogEntry>();
  const builtins = builtinRunbooks();
  for (const [name, runbook] of Object.entries(builtins)) out.set(name, { name, runbook, source: 'builtin', overrides_builtin: false });
  for (const [name, runbook] of Object.entries(services.config.runbooks)) {
    out.set(name, { name, runbook, source: 'project', overrides_builtin: name in builtins });
  }
  return out;
}

export function findRunbook(services: Pick<Services, 'config'>, name: string): CatalogEntry {
  const e = allRunbooks(services).get(name);
  if (!e) {
    const issue = services.config.issues.find((i) => i.file.endsWith('runbooks.json'));
    throw notFound(
      `no runbook named ${JSON.stringify(name)}`,
      `runbook {action:"list"} shows them${issue ? `; the project runbooks.json was not loaded: ${issue.message}` : ''}`,
    );
  }
  return e;
}

/** The tool and action definition a step names (aliases resolved); undefined when unknown. */
export function stepAction(
  services: Pick<Services, 'tools'>,
  tool: string,
  action: unknown,
): { tool: ToolDef | undefined; def: AnyAction | undefined; toolName: string } {
  const toolName = TOOL_ALIASES[tool] ?? tool;
  const t = services.tools.find((x) => x.name === toolName);
  if (!t) return { tool: undefined, def: undefined, toolName };
  let def: AnyAction | undefined;
  if (typeof action === 'string') def = t.actions.find((a) => a.action === action);
  else if (action === undefined && t.actions.length === 1) def = t.actions[0];
  return { tool: t, def, toolName };
}

export interface InputSpec {
  name: string;
  type: string;
  required: boolean;
  default?: unknown;
  description?: string | undefined;
}

/** Inputs in one shape: the seed's list of names (each required, any JSON) or the typed map. */
export function inputSpecs(rb: Runbook): InputSpec[] {
  if (Array.isArray(rb.inputs)) return rb.inputs.map((name) => ({ name, type: 'any', required: true }));
  return Object.entries(rb.inputs).map(([name, s]) => ({
    name,
    type: s.type,
    required: s.required,
    ...(s.default !== undefined ? { default: s.default } : {}),
    description: s.description,
  }));
}

function typeOk(type: string, v: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
    default:
      return true;
  }
}

/** Checks the caller's input against the runbook's inputs and fills defaults. */
export function resolveInputs(name: string, rb: Runbook, given: Record<string, unknown>): Record<string, unknown> {
  const specs = inputSpecs(rb);
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  const known = new Set(specs.map((s) => s.name));
  for (const k of Object.keys(given)) if (!known.has(k)) problems.push(`unknown input "${k}"`);
  for (const s of specs) {
    const v = given[s.name] === undefined ? s.default : given[s.name];
    if (v === undefined || v === null) {
      if (s.required) problems.push(`input "${s.name}" is required`);
      continue;
    }
    if (!typeOk(s.type, v))
      problems.push(
        `input "${s.name}" must be ${s.type === 'integer' ? 'an integer' : `a ${s.type}`}, got ${JSON.stringify(v).slice(0, 80)}`,
      );
    out[s.name] = v;
  }
  if (problems.length) {
    const list = specs.map((s) => `${s.name}${s.required ? '' : '?'}: ${s.type}`).join(', ');
    throw invalid(
      `runbook ${name}: ${problems.join('; ')}`,
      `its inputs are ${list || '(none)'}; runbook {action:"get", name:"${name}"} describes them`,
    );
  }
  return out;
}

/**
 * The effect of one step: its action's effect, or — for actions whose effect depends on the
 * arguments (http by method) — the effect of its literal arguments. A step whose action is a
 * template counts as the tool's most severe action.
 */
export async function stepEffect(
  services: Services,
  step: { tool: string; args: Record<string, unknown> },
  depth: number,
  chain: string[] = [],
): Promise<Effect> {
  const { tool, def } = stepAction(services, step.tool, step.args.action);
  if (!tool) return 'read'; // unknown tools are refused by validation / by the pipeline at the step
  if (!def) return tool.actions.reduce<Effect>((m, a) => (EFFECT_RANK[a.effect] > EFFECT_RANK[m] ? a.effect : m), 'read');
  if (!def.effectOf) return def.effect;
  if (tool.name === 'runbook' && def.action === 'run') {
    if (depth > MAX_DEPTH) return def.effect;
    const name = step.args.name;
    if (typeof name !== 'string' || /\{\{/.test(name)) return 'irreversible';
    if (chain.includes(name)) {
      throw invalid(
        `runbook ${chain[0]} runs itself through ${[...chain, name].join(' → ')}`,
        'a runbook may not call itself, directly or through others',
      );
    }
    let nested: Runbook;
    try {
      nested = findRunbook(services, name).runbook;
    } catch {
      return 'irreversible';
    }
    return runbookEffect(services, nested, depth + 1, [...chain, name]);
  }
  const { action: _a, ...rest } = step.args;
  const parsed = def.input.safeParse(rest);
  if (!parsed.success) return def.effect;
  try {
    return await def.effectOf(parsed.data, services);
  } catch {
    return def.effect;
  }
}

export const MAX_DEPTH = 4;

/** The most severe effect of a runbook's steps (DESIGN §2: a runbook's effect is its steps'). */
export async function runbookEffect(services: Services, rb: Runbook, depth = 0, chain: string[] = []): Promise<Effect> {
  let e: Effect = 'read';
  for (const s of rb.steps) {
    const se = await stepEffect(services, s, depth, chain);
    if (EFFECT_RANK[se] > EFFECT_RANK[e]) e = se;
  }
  return e;
}

/** Steps whose effect is more than read (for the read-only refusal). */
export async function writingSteps(services: Services, rb: Runbook): Promise<string[]> {
  const out: string[] = [];
  for (const s of rb.steps) {
    const e = await stepEffect(services, s, 0);
    if (e !== 'read') out.push(`${s.id} (${s.tool}.${typeof s.args.action === 'string' ? s.args.action : '?'}: ${e})`);
  }
  return out;
}

export function denyReadOnly(name: string, steps: string[]): ToolError {
  return new ToolError(
    'DENIED',
    `runbook ${name} has steps that are not read-only and infra runs with INFRA_READ_ONLY=1: ${steps.join(', ')}`,
    {
      hint: 'nothing was run; read-only mode refuses a runbook before its first step when any step writes. dry_run: true still renders it',
    },
  );
}

/**
 * Whether any step would be asked for confirmation by policy (DESIGN §1: a runbook asks once,
 * before it starts; its steps then inherit that confirmation).
 */
export async function runbookNeedsConfirm(services: Services, rb: Runbook, depth = 0): Promise<boolean> {
  for (const s of rb.steps) {
    const { tool, def } = stepAction(services, s.tool, s.args.action);
    if (!tool || !def) continue;
    if (tool.name === 'runbook' && def.action === 'run') {
      if (depth >= MAX_DEPTH || typeof s.args.name !== 'string') continue;
      try {
        if (await runbookNeedsConfirm(services, findRunbook(services, s.args.name).runbook, depth + 1)) return true;
      } catch {
        /* unknown nested runbooks are refused when they run */
      }
      continue;
    }
    if (needsConfirm(tool.name, def.action, await stepEffect(services, s, depth), services)) return true;
  }
  return false;
}
