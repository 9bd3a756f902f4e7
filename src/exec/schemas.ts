import { z } from 'zod';
import type { ActionDef, ToolDef } from '../core/define-action.js';

type AnyAction = ActionDef<z.ZodObject, unknown>;

export const COMMON_ARGS = {
  timeout_ms: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 3600 * 1000)
    .optional()
    .describe('Bound on this call in ms (default limits.default_timeout_ms, 50 s)'),
  max_bytes: z
    .number()
    .int()
    .min(0)
    .max(16 * 1024 * 1024)
    .optional()
    .describe('Inline cap of the reply in bytes; full output stays in the artifact'),
};
export const ASYNC_ARG = { async: z.boolean().optional().describe('Run as a job and return a job_id at once (see the jobs tool)') };

/** The exact schema the pipeline validates one action's arguments with. */
export function fullActionSchema(def: AnyAction): z.ZodObject {
  // an action that defines a common argument itself (artifacts get: max_bytes with a default) keeps its own
  const own = def.input.shape as Record<string, unknown>;
  const common = Object.fromEntries(Object.entries({ ...COMMON_ARGS, ...(def.long ? ASYNC_ARG : {}) }).filter(([k]) => !(k in own)));
  return def.input.extend(common).strict();
}

export type JsonSchema = Record<string, unknown>;

/** JSON Schema of an action's input, as clients see it (defaults do not make fields required). */
export function actionJsonSchema(def: AnyAction): JsonSchema {
  const s = z.toJSONSchema(fullActionSchema(def), { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  delete s.$schema;
  return portable(s) as JsonSchema;
}

const ANY_JSON = ['object', 'array', 'string', 'number', 'boolean', 'null'];
const KEYWORDS = new Set(['type', 'anyOf', 'oneOf', 'allOf', 'enum', 'const', '$ref', 'not', 'properties', 'items']);

/**
 * Makes a schema portable across clients: a sub-schema with no validation keyword (zod's
 * `unknown`) says explicitly that any JSON value is accepted.
 */
function portable(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(portable);
  if (!node || typeof node !== 'object') return node;
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    if (k === 'properties' && v && typeof v === 'object') {
      o[k] = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([pk, pv]) => [pk, anyIfBare(portable(pv))]));
    } else if (k === 'items' || k === 'additionalProperties') {
      o[k] = typeof v === 'object' ? anyIfBare(portable(v)) : v;
    } else o[k] = portable(v);
  }
  return o;
}

function anyIfBare(v: unknown): unknown {
  if (v && typeof v === 'object' && !Array.isArray(v) && !Object.keys(v).some((k) => KEYWORDS.has(k))) {
    return { ...(v as Record<string, unknown>), anyOf: ANY_JSON.map((type) => ({ type })) };
  }
  return v;
}

/**
 * A tool's inputSchema: a plain object with an `action` enum and every action's fields as
 * optional properties (no top-level oneOf/anyOf: clients differ). The pipeline validates the
 * exact per-action schema.
 */
export function toolInputSchema(tool: ToolDef, actions: AnyAction[]): JsonSchema {
  const properties: Record<string, unknown> = {
    action: {
      type: 'string',
      enum: actions.map((a) => a.action),
      description: actions.map((a) => `${a.action}: ${a.description}`).join(' | '),
    },
  };
  for (const def of actions) {
    const s = actionJsonSchema(def);
    const props = (s.properties ?? {}) as Record<string, Record<string, unknown>>;
    for (const [k, v] of Object.entries(props)) {
      if (!(k in properties)) properties[k] = v;
      else if (k !== 'action') properties[k] = mergeProp(properties[k] as Record<string, unknown>, v);
    }
  }
  const schema: JsonSchema = { type: 'object', properties, additionalProperties: false };
  if (actions.length > 1 || tool.actions.length > 1) schema.required = ['action'];
  return schema;
}

/** Two actions may type one field differently; then the listing accepts either. */
function mergeProp(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const ja = JSON.stringify(a);
  const jb = JSON.stringify(b);
  if (ja === jb) return a;
  const strip = (o: Record<string, unknown>): Record<string, unknown> => {
    const { description: _d, default: _def, ...rest } = o;
    return rest;
  };
  if (JSON.stringify(strip(a)) === JSON.stringify(strip(b))) return a;
  const ta = a.type;
  const tb = b.type;
  if (typeof ta === 'string' && typeof tb === 'string' && ta !== tb && !a.anyOf && !b.anyOf) {
    return { type: [ta, tb], ...(a.description ? { description: a.description } : {}) };
  }
  // different shapes under one name: keep the first, described; the pipeline checks the exact one
  return a;
}

/** The one output schema of every tool: both envelopes satisfy it (only `ok` required). */
export const OUTPUT_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    ok: { type: 'boolean' },
    tool: { type: 'string' },
    action: { type: 'string' },
    call_id: { type: 'string' },
    duration_ms: { type: 'number' },
    result: { type: 'object', additionalProperties: true },
    truncated: {
      type: 'object',
      additionalProperties: { type: 'object', properties: { bytes: { type: 'number' }, inline: { type: 'number' } } },
    },
    artifact: { type: 'string' },
    job_id: { type: 'string' },
    error: {
      type: 'object',
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        hint: { type: 'string' },
        retryable: { type: 'boolean' },
        details: { type: 'object' },
      },
      required: ['code', 'message'],
    },
  },
  required: ['ok'],
};
