import { z } from 'zod';
import { defineAction, defineTool } from '../../core/define-action.js';
import { callUri } from '../../artifacts/uri.js';

const uri = z
  .string()
  .min(1)
  .max(1024)
  .describe('artifact://calls/<call_id>/<file> or artifact://runs/<runbook>/<run_id>/run.json; a directory URI lists its files');
const maxBytes = (d: number) =>
  z
    .number()
    .int()
    .min(1)
    .max(16 * 1024 * 1024)
    .default(d);

export const artifactsTool = defineTool({
  name: 'artifacts',
  title: 'Artifacts',
  description:
    'Browse and read the file-backed artifacts every call leaves (call.json, stdout, stderr, body, rows.csv, run.json). Reads are redacted. Also served as MCP resources artifact://…',
  actions: [
    defineAction({
      tool: 'artifacts',
      action: 'list',
      effect: 'read',
      description: 'Without uri: the most recent calls with their artifact URIs. With a directory uri: its files.',
      input: z.strictObject({
        uri: uri.optional(),
        query: z.string().max(256).optional().describe('Filter recent calls by tool, action, target or summary'),
        limit: z.number().int().min(1).max(500).default(20),
      }),
      summarize: (r: { entries: unknown[] }) => `${r.entries.length} entries`,
      handler: async (ctx, a) => {
        if (a.uri) return { uri: a.uri, entries: (await ctx.services.artifacts.listDir(a.uri)).slice(0, a.limit) };
        await ctx.services.audit.settle();
        const rows = ctx.services.audit.list({ query: a.query, limit: a.limit });
        return {
          entries: rows.map((r) => ({
            uri: r.artifact ?? callUri(r.id),
            call_id: r.id,
            tool: r.tool,
            action: r.action,
            target: r.target,
            status: r.status,
            started_at: r.started_at,
            summary: r.summary,
            pruned: r.artifact_pruned === 1,
          })),
        };
      },
    }),
    defineAction({
      tool: 'artifacts',
      action: 'get',
      effect: 'read',
      description: 'Read an artifact file (from offset, up to max_bytes); a directory uri lists its files',
      input: z.strictObject({ uri, offset: z.number().int().min(0).default(0), max_bytes: maxBytes(16384) }),
      summarize: (r: { uri: string }) => `read ${r.uri}`,
      handler: async (ctx, a) => {
        const { type } = await ctx.services.artifacts.resolve(a.uri);
        if (type === 'dir') return { uri: a.uri, type: 'dir', entries: await ctx.services.artifacts.listDir(a.uri) };
        return { type: 'file', ...(await ctx.services.artifacts.read(a.uri, { offset: a.offset, maxBytes: a.max_bytes })) };
      },
    }),
    defineAction({
      tool: 'artifacts',
      action: 'tail',
      effect: 'read',
      description: 'Read the last max_bytes of an artifact file',
      input: z.strictObject({ uri, max_bytes: maxBytes(4096) }),
      summarize: (r: { uri: string }) => `tail ${r.uri}`,
      handler: async (ctx, a) => ctx.services.artifacts.read(a.uri, { maxBytes: a.max_bytes, tail: true }),
    }),
  ],
});
