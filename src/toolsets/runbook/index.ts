import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { writeFileAtomic } from '../../artifacts/atomic-file.js';
import { defineAction, defineTool, type Effect } from '../../core/define-action.js';
import { invalid, notFound, ToolError } from '../../core/errors.js';
import type { Services } from '../../core/services.js';
import { parseJsonc } from '../../config/jsonc.js';
import { RUNBOOK_NAME } from '../../config/schemas.js';
import { actionRefusal, listingEffect } from '../../policy/policy.js';
import { addHelpSource } from '../help/index.js';
import {
  allRunbooks,
  builtinRunbooks,
  denyReadOnly,
  findRunbook,
  inputSpecs,
  runbookEffect,
  runbookNeedsConfirm,
  stepAction,
  writingSteps,
  type CatalogEntry,
} from './catalog.js';
import { executeRun, resolveRun, type RunArgs } from './run.js';
import { validateRunbook, type ValidationProblem } from './validate.js';

const nameArg = z.string().min(1).max(64).describe('Runbook name, e.g. "repo.snapshot" (runbook {action:"list"} shows them)');

function intentsFor(services: Pick<Services, 'config'>, name: string): string[] {
  return Object.entries(services.config.capabilities.capabilities)
    .filter(([, c]) => c.runbook === name)
    .map(([n, c]) => c.intent ?? n);
}

function describe(services: Services, e: CatalogEntry): Record<string, unknown> {
  const intents = intentsFor(services, e.name);
  return {
    name: e.name,
    description: e.runbook.description,
    tags: e.runbook.tags,
    source: e.source,
    ...(e.overrides_builtin ? { overrides_builtin: true } : {}),
    inputs: inputSpecs(e.runbook),
    steps: e.runbook.steps.map((s) => `${s.id}: ${s.tool}.${typeof s.args.action === 'string' ? s.args.action : '?'}`),
    ...(intents.length ? { intents } : {}),
  };
}

function problemsText(errors: ValidationProblem[]): string {
  return errors
    .slice(0, 10)
    .map((p) => (p.step ? `step ${p.step}, ${p.field}: ${p.message}` : `${p.field}: ${p.message}`))
    .join('; ');
}

// help {query:"runbook"} finds every runbook with how to run it
addHelpSource((services) =>
  [...allRunbooks(services).values()].map((e) => ({
    kind: 'runbook' as const,
    name: e.name,
    text: `runbook ${e.name} ${e.runbook.description} ${e.runbook.tags.join(' ')} ${inputSpecs(e.runbook)
      .map((i) => i.name)
      .join(' ')} ${e.runbook.steps.map((s) => s.tool).join(' ')} ${intentsFor(services, e.name).join(' ')}`,
    build: () => ({
      ...describe(services, e),
      run: {
        tool: 'runbook',
        args: { action: 'run', name: e.name, input: Object.fromEntries(inputSpecs(e.runbook).map((i) => [i.name, `<${i.type}>`])) },
      },
    }),
  })),
);

/** Reads the project's runbooks.json as written (refusing to overwrite a file it cannot parse). */
function readProjectFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) return {};
  let raw: unknown;
  try {
    raw = parseJsonc(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ToolError('INVALID_ARGUMENT', `${path} is not valid JSON (${(e as Error).message}); refusing to overwrite it`, {
      hint: 'a human should fix or move the file first',
    });
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ToolError('INVALID_ARGUMENT', `${path} does not hold a JSON object of runbooks; refusing to overwrite it`);
  }
  return raw as Record<string, unknown>;
}

async function writeProjectFile(path: string, data: Record<string, unknown>): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(data, null, 2)}\n`);
}

const runInput = z.strictObject({
  name: nameArg.optional(),
  intent: z.string().min(1).max(200).optional().describe('Run the runbook capabilities.json maps this intent to (instead of name)'),
  input: z.record(z.string(), z.unknown()).default({}).describe('Values for the runbook inputs'),
  dry_run: z.boolean().default(false).describe('Render every step without running any (read-only)'),
});

export const runbookTool = defineTool({
  name: 'runbook',
  title: 'Runbooks',
  description:
    'Multi-step workflows over ssh, psql, http, repo, state and local steps, each step a full audited call (child of the run). ' +
    'Built-in runbooks plus the project runbooks.json (which overrides them by name); intents from capabilities.json. ' +
    'A run writes artifact://runs/<name>/<run_id>/run.json linking every step call.',
  actions: [
    defineAction({
      tool: 'runbook',
      action: 'list',
      effect: 'read',
      description: 'List runbooks (built-in and project), filtered by words and tag',
      input: z.strictObject({
        query: z.string().max(256).optional().describe('Words matched against name, description, tags and step tools'),
        tag: z.string().max(64).optional(),
        limit: z.number().int().min(1).max(500).default(50),
      }),
      summarize: (r: { runbooks: unknown[]; total: number }) => `${r.runbooks.length} of ${r.total} runbooks`,
      handler: async (ctx, a) => {
        const words = (a.query ?? '')
          .toLowerCase()
          .split(/[\s,]+/)
          .filter(Boolean);
        const all = [...allRunbooks(ctx.services).values()].sort((x, y) => x.name.localeCompare(y.name));
        const hits = all.filter((e) => {
          if (a.tag && !e.runbook.tags.includes(a.tag)) return false;
          const text =
            `${e.name} ${e.runbook.description} ${e.runbook.tags.join(' ')} ${e.runbook.steps.map((s) => s.tool).join(' ')}`.toLowerCase();
          return words.every((w) => text.includes(w));
        });
        const issue = ctx.services.config.issues.find((i) => i.file.endsWith('runbooks.json'));
        return {
          total: hits.length,
          runbooks: hits.slice(0, a.limit).map((e) => describe(ctx.services, e)),
          ...(issue ? { warning: `the project runbooks.json was not loaded: ${issue.message}` } : {}),
        };
      },
    }),
    defineAction({
      tool: 'runbook',
      action: 'get',
      effect: 'read',
      description: 'One runbook in full: inputs, steps with their args and controls, source, effect',
      input: z.strictObject({ name: nameArg }),
      target: (a) => a.name,
      summarize: (r: Record<string, unknown>) => `${String(r.name)} (${String(r.source)})`,
      handler: async (ctx, a) => {
        const e = findRunbook(ctx.services, a.name);
        const effect = await runbookEffect(ctx.services, e.runbook, 0, [e.name]).catch((err: Error) => `unknown: ${err.message}`);
        return { ...describe(ctx.services, e), effect, runbook: e.runbook };
      },
    }),
    defineAction({
      tool: 'runbook',
      action: 'validate',
      effect: 'read',
      description:
        'Check a runbook body (runbook) or a stored one (name): schema, tools, actions, argument names, templates; errors name the step and field',
      input: z.strictObject({
        name: nameArg.optional(),
        runbook: z.record(z.string(), z.unknown()).optional().describe('A runbook body: {description, tags, inputs, steps}'),
      }),
      target: (a) => a.name,
      summarize: (r: { valid: boolean; errors: unknown[] }) => (r.valid ? 'valid' : `${r.errors.length} errors`),
      handler: async (ctx, a) => {
        if (a.name === undefined && a.runbook === undefined) throw invalid('give "runbook" (a body) or "name" (a stored runbook)');
        const body = a.runbook ?? findRunbook(ctx.services, a.name!).runbook;
        const r = validateRunbook(ctx.services, body, a.runbook ? a.name : undefined);
        return {
          valid: r.valid,
          errors: r.errors,
          warnings: r.warnings,
          ...(r.runbook
            ? {
                effect: await runbookEffect(ctx.services, r.runbook, 0, a.name ? [a.name] : []).catch(
                  (err: Error) => `unknown: ${err.message}`,
                ),
              }
            : {}),
        };
      },
    }),
    defineAction({
      tool: 'runbook',
      action: 'run',
      effect: 'irreversible',
      long: true,
      description:
        'Run a runbook by name (or intent) with input; each step is an audited child call. dry_run renders every step without running it; ' +
        'async: true runs it as a job (jobs status shows the steps, jobs cancel stops the current step). Effect: its most severe step',
      input: runInput,
      target: (a) => a.name ?? (a.intent ? `intent:${a.intent}` : undefined),
      effectOf: async (a, services): Promise<Effect> => {
        if (a.dry_run) return 'read';
        const r = resolveRun(services, a as RunArgs);
        const effect = await runbookEffect(services, r.entry.runbook, 0, [r.name]);
        if (services.flags.readOnly && effect !== 'read') throw denyReadOnly(r.name, await writingSteps(services, r.entry.runbook));
        return effect;
      },
      confirmOf: async (a, services) => {
        if (a.dry_run) return false;
        const r = resolveRun(services, a as RunArgs);
        return runbookNeedsConfirm(services, r.entry.runbook);
      },
      gate: (a, services) => {
        const r = resolveRun(services, a as RunArgs);
        if (a.dry_run) return;
        // a step that policy refuses stops the run before its first step, not half-way
        for (const step of r.entry.runbook.steps) {
          const { tool, def } = stepAction(services, step.tool, step.args.action);
          if (!tool || !def) continue;
          const refusal = actionRefusal(tool, def, listingEffect(def), services);
          if (refusal) {
            throw new ToolError(
              'DENIED',
              `runbook ${r.name}: step ${step.id} (${tool.name}.${def.action}) is refused: ${refusal.message}`,
              {
                hint: `${refusal.hint}; nothing was run`,
              },
            );
          }
        }
      },
      summarize: (r: Record<string, unknown>) =>
        `${String(r.runbook)}: ${String(r.status)}, ${Array.isArray(r.steps) ? r.steps.length : 0} steps`,
      handler: async (ctx, a) => executeRun(ctx, resolveRun(ctx.services, a as RunArgs), a as RunArgs),
    }),
    defineAction({
      tool: 'runbook',
      action: 'upsert',
      effect: 'write',
      description: "Create or replace a runbook in the project's runbooks.json (validated first; other entries are kept)",
      input: z.strictObject({
        name: nameArg,
        runbook: z.record(z.string(), z.unknown()).describe('The runbook body: {description, tags, inputs, steps: [{id, tool, args, …}]}'),
      }),
      target: (a) => a.name,
      gate: (a) => {
        if (!RUNBOOK_NAME.test(a.name))
          throw invalid(`runbook name ${JSON.stringify(a.name)} is not allowed`, `names match ${RUNBOOK_NAME.source}`);
      },
      summarize: (r: { name: string; created: boolean }) => `${r.created ? 'created' : 'replaced'} ${r.name}`,
      handler: async (ctx, a) => {
        const report = validateRunbook(ctx.services, a.runbook, a.name);
        if (!report.valid || !report.runbook) {
          throw new ToolError('INVALID_ARGUMENT', `runbook ${a.name} is invalid: ${problemsText(report.errors)}`, {
            hint: 'runbook {action:"validate", runbook:{…}} lists every problem; schemas/runbooks.schema.json describes the format',
            details: { errors: report.errors },
          });
        }
        const path = ctx.services.config.runbooksPath;
        const file = readProjectFile(path);
        const created = !(a.name in file);
        file[a.name] = a.runbook;
        await writeProjectFile(path, file);
        // the loaded config follows the file until the next reload re-reads it
        ctx.services.config.runbooks[a.name] = report.runbook;
        return {
          name: a.name,
          created,
          path,
          overrides_builtin: a.name in builtinRunbooks(),
          effect: await runbookEffect(ctx.services, report.runbook),
          warnings: report.warnings,
        };
      },
    }),
    defineAction({
      tool: 'runbook',
      action: 'delete',
      effect: 'write',
      description: "Delete a runbook from the project's runbooks.json (a built-in of the same name shows again)",
      input: z.strictObject({ name: nameArg }),
      target: (a) => a.name,
      summarize: (r: { name: string }) => `deleted ${r.name}`,
      handler: async (ctx, a) => {
        const path = ctx.services.config.runbooksPath;
        const file = readProjectFile(path);
        if (!(a.name in file) || a.name === '$schema') {
          const builtin = allRunbooks(ctx.services).get(a.name)?.source === 'builtin';
          throw notFound(
            `the project runbooks.json has no runbook ${JSON.stringify(a.name)}`,
            builtin
              ? 'built-in runbooks cannot be deleted; upsert one of the same name to override it'
              : 'runbook {action:"list"} shows the runbooks',
          );
        }
        delete file[a.name];
        await writeProjectFile(path, file);
        delete ctx.services.config.runbooks[a.name];
        return { name: a.name, deleted: true, path, builtin_remains: allRunbooks(ctx.services).has(a.name) };
      },
    }),
  ],
});
