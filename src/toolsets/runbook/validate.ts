import type { z } from 'zod';
import type { Services } from '../../core/services.js';
import { isToolError } from '../../core/errors.js';
import { RunbookSchema, RUNBOOK_NAME, type Runbook, type RunbookStep } from '../../config/schemas.js';
import { fullActionSchema } from '../../exec/schemas.js';
import { inputSpecs, stepAction } from './catalog.js';
import { hasTemplate, refsIn, type TemplateRef } from './template.js';

export interface ValidationProblem {
  /** The step id (or `steps[i]` when it has none), absent for runbook-level problems. */
  step?: string;
  /** The field at fault, as a dotted path inside the step (or the runbook). */
  field: string;
  message: string;
}

export interface ValidationReport {
  valid: boolean;
  errors: ValidationProblem[];
  warnings: ValidationProblem[];
  runbook?: Runbook;
}

function stepLabel(raw: unknown, i: number): string {
  const id = raw && typeof raw === 'object' ? (raw as { id?: unknown }).id : undefined;
  return typeof id === 'string' && id ? id : `steps[${i}]`;
}

/** zod issues turned into step + field problems. */
function schemaProblems(body: unknown, error: z.ZodError): ValidationProblem[] {
  const steps = body && typeof body === 'object' ? (body as { steps?: unknown }).steps : undefined;
  return error.issues.slice(0, 20).map((i) => {
    const path = i.path.map(String);
    const msg =
      i.code === 'unrecognized_keys' ? `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}` : i.message;
    if (path[0] === 'steps' && path.length >= 2) {
      const idx = Number(path[1]);
      const raw = Array.isArray(steps) ? steps[idx] : undefined;
      return { step: stepLabel(raw, idx), field: path.slice(2).join('.') || '(step)', message: msg };
    }
    return { field: path.join('.') || '(runbook)', message: msg };
  });
}

/**
 * Checks a runbook body: its schema, unique step ids, that every step names a known tool and
 * action with known argument names (literal values checked against the action's schema), and
 * that templates only name declared inputs and earlier steps. Errors name the step and field.
 */
export function validateRunbook(services: Pick<Services, 'tools'>, body: unknown, name?: string): ValidationReport {
  const errors: ValidationProblem[] = [];
  const warnings: ValidationProblem[] = [];
  if (name !== undefined && !RUNBOOK_NAME.test(name)) {
    errors.push({ field: 'name', message: `runbook names match ${RUNBOOK_NAME.source} (letters, digits, ".", "_", "-"; max 64)` });
  }
  const parsed = RunbookSchema.safeParse(body);
  if (!parsed.success) return { valid: false, errors: [...errors, ...schemaProblems(body, parsed.error)], warnings };
  const rb = parsed.data;
  const inputs = new Set(inputSpecs(rb).map((s) => s.name));
  const seen = new Set<string>();
  for (const step of rb.steps) {
    if (seen.has(step.id)) errors.push({ step: step.id, field: 'id', message: `step id "${step.id}" is used twice` });
    checkStep(services, step, seen, inputs, errors, warnings);
    seen.add(step.id);
  }
  return { valid: errors.length === 0, errors, warnings, ...(errors.length === 0 ? { runbook: rb } : {}) };
}

function checkStep(
  services: Pick<Services, 'tools'>,
  step: RunbookStep,
  earlier: Set<string>,
  inputs: Set<string>,
  errors: ValidationProblem[],
  warnings: ValidationProblem[],
): void {
  const err = (field: string, message: string): void => void errors.push({ step: step.id, field, message });
  const { tool, def, toolName } = stepAction(services, step.tool, step.args.action);
  if (!tool) {
    err(
      'tool',
      `unknown tool ${JSON.stringify(step.tool)}; tools are ${services.tools.map((t) => t.name).join(', ')} (and the mcp_* aliases)`,
    );
  } else if (!def) {
    if (typeof step.args.action === 'string' && hasTemplate(step.args.action)) {
      warnings.push({ step: step.id, field: 'args.action', message: 'the action is a template: it is checked when the step runs' });
    } else {
      err(
        'args.action',
        `${toolName} has no action ${JSON.stringify(step.args.action)}; its actions are ${tool.actions.map((a) => a.action).join(', ')}`,
      );
    }
  } else {
    const shape = fullActionSchema(def).shape as Record<string, z.ZodType>;
    for (const [k, v] of Object.entries(step.args)) {
      if (k === 'action') continue;
      const field = shape[k];
      if (!field) {
        err(`args.${k}`, `${toolName}.${def.action} has no argument "${k}"; its arguments are ${Object.keys(shape).join(', ')}`);
        continue;
      }
      if (hasTemplate(v)) continue;
      const r = field.safeParse(v);
      if (!r.success)
        err(`args.${k}`, r.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; '));
    }
  }

  const inForeach = step.foreach !== undefined;
  const check = (field: string, value: unknown, allowResult: boolean, allowItem = inForeach): void => {
    let refs: TemplateRef[];
    try {
      refs = refsIn(value);
    } catch (e) {
      err(field, isToolError(e) ? e.message : String(e));
      return;
    }
    for (const r of refs) {
      const [ns, first] = r.path;
      if (ns === 'input') {
        if (!first) err(field, `{{ ${r.expr} }} needs an input name`);
        else if (!inputs.has(first)) err(field, `{{ ${r.expr} }} names input "${first}", which the runbook does not declare in "inputs"`);
      } else if (ns === 'steps') {
        if (!first) err(field, `{{ ${r.expr} }} needs a step id`);
        else if (first === step.id && !allowResult)
          err(field, `{{ ${r.expr} }} refers to this step; use {{ result.… }} in retry.until and assert`);
        else if (first !== step.id && !earlier.has(first))
          err(field, `{{ ${r.expr} }} refers to step "${first}", which does not run before this one`);
      } else if ((ns === 'item' || ns === 'index') && !allowItem) {
        err(field, `{{ ${r.expr} }} is only defined in the args, retry.until and assert of a step with foreach`);
      } else if (ns === 'result' && !allowResult) {
        err(field, `{{ ${r.expr} }} is only defined in retry.until and assert`);
      } else if (ns === 'state' && !first) {
        err(field, `{{ ${r.expr} }} needs a state key`);
      }
    }
  };
  check('args', step.args, false);
  if (step.when !== undefined) check('when', step.when, false, false);
  if (step.foreach !== undefined) {
    const items = typeof step.foreach === 'object' && !Array.isArray(step.foreach) ? step.foreach.items : step.foreach;
    // the item list is rendered before any item exists
    check('foreach', items, false, false);
    if (typeof items === 'string' && !/^\s*\{\{[^{}]*\}\}\s*$/.test(items))
      err('foreach', 'foreach is a list or one template that gives a list, e.g. "{{ input.hosts }}"');
  }
  if (step.retry?.until !== undefined) check('retry.until', step.retry.until, true);
  if (step.assert !== undefined) check('assert', step.assert, true);
}
