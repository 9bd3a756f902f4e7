import { z } from 'zod';
import { defineAction, defineTool } from '../../core/define-action.js';
import { notFound } from '../../core/errors.js';
import type { AuditRow } from '../../audit/audit-store.js';

const STATUSES = ['running', 'ok', 'error', 'denied', 'invalid', 'timeout', 'cancelled', 'interrupted'] as const;

function present(r: AuditRow): Record<string, unknown> {
  let args: unknown = r.args;
  try {
    args = r.args ? JSON.parse(r.args) : null;
  } catch {
    /* keep the text */
  }
  return {
    id: r.id,
    seq: r.seq,
    parent_id: r.parent_id,
    started_at: r.started_at,
    ended_at: r.ended_at,
    duration_ms: r.duration_ms,
    tool: r.tool,
    action: r.action,
    target: r.target,
    status: r.status,
    error_code: r.error_code,
    summary: r.summary,
    artifact: r.artifact,
    artifact_pruned: r.artifact_pruned === 1,
    bytes: r.bytes,
    client: r.client_name ? `${r.client_name}${r.client_version ? `/${r.client_version}` : ''}` : null,
    owner_pid: r.owner_pid,
    args,
    hash: r.hash,
  };
}

export const auditTool = defineTool({
  name: 'audit',
  title: 'Audit log',
  description:
    'The audit index of every call (SQLite, hash-chained): list with filters, get one call with its child calls, stats, and verify the chain. No tool can edit or delete audit rows.',
  actions: [
    defineAction({
      tool: 'audit',
      action: 'list',
      effect: 'read',
      description: 'Recent calls, newest first, filtered by tool, action, status, target, parent_id, since/until (ISO time) or query text',
      input: z.strictObject({
        tool: z.string().max(128).optional(),
        action: z.string().max(128).optional(),
        status: z.enum(STATUSES).optional(),
        target: z.string().max(256).optional(),
        parent_id: z.string().max(64).optional(),
        since: z.string().max(40).optional().describe('ISO-8601 time, inclusive'),
        until: z.string().max(40).optional().describe('ISO-8601 time, exclusive'),
        before: z.string().max(64).optional().describe('Page: calls older than this call id'),
        query: z.string().max(256).optional(),
        limit: z.number().int().min(1).max(1000).default(50),
      }),
      summarize: (r: { rows: unknown[] }) => `${r.rows.length} rows`,
      handler: async (ctx, a) => {
        // calls answered a moment ago may still be writing their record
        await ctx.services.audit.settle();
        const rows = ctx.services.audit.list(a).map(present);
        const last = rows[rows.length - 1];
        return { rows, next_before: rows.length === a.limit && last ? last.id : null };
      },
    }),
    defineAction({
      tool: 'audit',
      action: 'get',
      effect: 'read',
      description: 'One call by id (call_id), with the calls it made (runbook steps)',
      input: z.strictObject({ id: z.string().min(1).max(64).describe('The call_id') }),
      target: (a) => a.id,
      summarize: (r: { row: Record<string, unknown> }) => `status ${String(r.row.status)}`,
      handler: async (ctx, a) => {
        await ctx.services.audit.settle();
        const row = ctx.services.audit.get(a.id);
        if (!row) throw notFound(`no audit row ${a.id}`, 'audit {action:"list"} shows recent call ids');
        const children = ctx.services.audit.list({ parent_id: a.id, limit: 1000 }).reverse().map(present);
        return { row: present(row), children };
      },
    }),
    defineAction({
      tool: 'audit',
      action: 'stats',
      effect: 'read',
      description: 'Counts by status and by tool/action with durations, optionally since a time',
      input: z.strictObject({ since: z.string().max(40).optional() }),
      summarize: (r: { total: number }) => `${r.total} calls`,
      handler: async (ctx, a) => {
        await ctx.services.audit.settle();
        return ctx.services.audit.stats(a.since);
      },
    }),
    defineAction({
      tool: 'audit',
      action: 'verify',
      effect: 'read',
      description: 'Walk the hash chain and report the first broken row, if any',
      input: z.strictObject({}),
      summarize: (r: { ok: boolean; rows: number }) => (r.ok ? `chain ok (${r.rows} rows)` : 'chain BROKEN'),
      handler: async (ctx) => ctx.services.audit.verify(),
    }),
  ],
});
