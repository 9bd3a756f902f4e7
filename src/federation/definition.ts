import { createHash } from 'node:crypto';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import stringify from 'safe-stable-stringify';
import type { Effect } from '../core/define-action.js';

/** The parts of an upstream tool that are pinned: what the model reads and what it may send. */
export interface PinnedDefinition {
  name: string;
  title?: string | undefined;
  description?: string | undefined;
  inputSchema: Record<string, unknown>;
  outputSchema?: Record<string, unknown> | undefined;
  annotations?: Record<string, unknown> | undefined;
}

export function pinnedDefinition(t: Tool | PinnedDefinition): PinnedDefinition {
  return {
    name: t.name,
    ...(t.title !== undefined ? { title: t.title } : {}),
    ...(t.description !== undefined ? { description: t.description } : {}),
    inputSchema: t.inputSchema as Record<string, unknown>,
    ...(t.outputSchema !== undefined ? { outputSchema: t.outputSchema as Record<string, unknown> } : {}),
    ...(t.annotations !== undefined ? { annotations: t.annotations as Record<string, unknown> } : {}),
  };
}

/** sha256 over canonical JSON (sorted keys) of the pinned parts: the trust-on-first-use pin. */
export function definitionHash(d: PinnedDefinition): string {
  return `sha256:${createHash('sha256')
    .update(stringify(pinnedDefinition(d)) ?? '')
    .digest('hex')}`;
}

/**
 * An upstream tool's effect, from its own annotations: only `readOnlyHint: true` makes it a read
 * (INFRA_READ_ONLY keeps it); an explicit `destructiveHint: true` makes it irreversible (asked
 * for confirmation); everything else is a write.
 */
export function upstreamEffect(annotations: Record<string, unknown> | undefined): Effect {
  if (annotations?.readOnlyHint === true) return 'read';
  if (annotations?.destructiveHint === true) return 'irreversible';
  return 'write';
}

const ANNOTATION_KEYS = ['title', 'readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint'] as const;

/** The upstream annotations as listed to our client: known keys of the right type only. */
export function listedAnnotations(a: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!a) return undefined;
  const out: Record<string, unknown> = {};
  for (const k of ANNOTATION_KEYS) {
    const v = a[k];
    if (k === 'title' ? typeof v === 'string' : typeof v === 'boolean') out[k] = v;
  }
  return Object.keys(out).length ? out : undefined;
}

/**
 * The inputSchema as listed: a portable plain object schema (DESIGN §2: no top-level
 * oneOf/anyOf/allOf, no `$schema` dialect marker that some clients refuse). The full upstream
 * schema is still what arguments are validated against.
 */
export function listedInputSchema(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _s, oneOf: _o, anyOf: _a, allOf: _all, not: _n, ...rest } = schema;
  const out: Record<string, unknown> = { ...rest, type: 'object' };
  if (!out.properties || typeof out.properties !== 'object' || Array.isArray(out.properties)) out.properties = {};
  return out;
}

let ajv: AjvJsonSchemaValidator | undefined;

/** Compiles the upstream inputSchema; the returned function gives an error message or undefined. */
export function compileValidator(schema: Record<string, unknown>): (args: Record<string, unknown>) => string | undefined {
  ajv ??= new AjvJsonSchemaValidator();
  const { $schema: _drop, ...body } = schema;
  try {
    const validate = ajv.getValidator(body as never);
    return (args) => {
      const r = validate(args);
      return r.valid ? undefined : (r.errorMessage ?? 'does not match the inputSchema');
    };
  } catch (e) {
    const msg = `the upstream inputSchema cannot be compiled (${(e as Error).message}); refusing calls rather than skipping validation`;
    return () => msg;
  }
}
