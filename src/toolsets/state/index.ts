import { z } from 'zod';
import { defineAction, defineTool } from '../../core/define-action.js';
import { notFound, ToolError } from '../../core/errors.js';

const key = z.string().min(1).max(256).describe('State key');

export const stateTool = defineTool({
  name: 'state',
  title: 'Project state',
  description: 'Project-scoped scratch values persisted in infra.db (JSON values, optional ttl_s). Runbooks read them as {{ state.key }}.',
  actions: [
    defineAction({
      tool: 'state',
      action: 'get',
      effect: 'read',
      description: 'Read one value by key',
      input: z.strictObject({ key }),
      target: (a) => a.key,
      summarize: (r: { key: string }) => `got ${r.key}`,
      handler: async (ctx, a) => {
        const e = ctx.services.state.get(a.key);
        if (!e)
          throw notFound(
            `no state value for key ${JSON.stringify(a.key)}`,
            'state {action:"list"} shows the keys; values with ttl_s expire',
          );
        return e;
      },
    }),
    defineAction({
      tool: 'state',
      action: 'list',
      effect: 'read',
      description: 'List keys and values (prefix or query filter)',
      input: z.strictObject({
        prefix: z.string().max(256).optional(),
        query: z.string().max(256).optional(),
        limit: z.number().int().min(1).max(1000).default(100),
      }),
      summarize: (r: { entries: unknown[] }) => `${r.entries.length} entries`,
      handler: async (ctx, a) => ({ entries: ctx.services.state.list(a) }),
    }),
    defineAction({
      tool: 'state',
      action: 'set',
      effect: 'write',
      description: 'Set a value (any JSON) with an optional ttl_s',
      input: z.strictObject({
        key,
        value: z.unknown().describe('Any JSON value'),
        ttl_s: z
          .number()
          .positive()
          .max(10 * 365 * 86400)
          .optional()
          .describe('Expire after this many seconds'),
      }),
      target: (a) => a.key,
      summarize: (r: { key: string }) => `set ${r.key}`,
      handler: async (ctx, a) => {
        const value = a.value === undefined ? null : a.value;
        if (JSON.stringify(value).length > 1024 * 1024) {
          throw new ToolError('LIMIT_EXCEEDED', 'state values are limited to 1 MiB of JSON', {
            hint: 'keep large data in artifacts and store its artifact:// URI in state',
          });
        }
        return ctx.services.state.set(a.key, value, a.ttl_s);
      },
    }),
    defineAction({
      tool: 'state',
      action: 'delete',
      effect: 'write',
      description: 'Delete a key',
      input: z.strictObject({ key }),
      target: (a) => a.key,
      summarize: (r: { deleted: boolean; key: string }) => (r.deleted ? `deleted ${r.key}` : `${r.key} was not set`),
      handler: async (ctx, a) => ({ key: a.key, deleted: ctx.services.state.delete(a.key) }),
    }),
  ],
});
