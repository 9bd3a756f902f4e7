import { z } from 'zod';
import { defineAction } from '../../core/define-action.js';
import { paramsArg, pickProfile, profileArgs, runReadOnly, sqlArg, statementTimeout, withSession } from './common.js';

export interface ExplainResult {
  profile: string;
  analyze: boolean;
  /** Postgres' JSON plan (EXPLAIN FORMAT JSON), or a summary when it is too big to inline. */
  plan?: unknown;
  summary?: Record<string, unknown>;
  plan_uri?: string;
}

export const explainAction = defineAction({
  tool: 'psql',
  action: 'explain',
  effect: 'read',
  description:
    'The plan of one statement as JSON (EXPLAIN FORMAT JSON); analyze: true runs it, inside the same READ ONLY transaction as query (so a write is refused by Postgres)',
  input: z.strictObject({
    ...profileArgs,
    sql: sqlArg,
    params: paramsArg,
    analyze: z.boolean().default(false).describe('Run the statement and report actual times and rows (with BUFFERS)'),
  }),
  target: (a) => a.profile ?? a.profile_name,
  gate: (a, services) => void pickProfile(services, a),
  summarize: (r: ExplainResult) => {
    const top = (r.summary ?? topNode(r.plan)) as Record<string, unknown> | undefined;
    return `plan${r.analyze ? ' (analyzed)' : ''}: ${String(top?.node_type ?? '?')} cost ${String(top?.total_cost ?? '?')}`;
  },
  handler: async (ctx, a): Promise<ExplainResult> =>
    withSession(ctx, a, { read: true }, async (s, picked) => {
      const options = a.analyze ? 'FORMAT JSON, ANALYZE, BUFFERS' : 'FORMAT JSON';
      const [r] = await runReadOnly(s, ctx, statementTimeout(ctx, picked.profile), [
        { text: `EXPLAIN (${options})\n${a.sql}`, values: a.params, rows: { keep: 1 } },
      ]);
      let plan = r!.rows[0]?.[0];
      if (typeof plan === 'string') plan = JSON.parse(plan);
      const root = Array.isArray(plan) && plan.length === 1 ? plan[0] : plan;
      const json = JSON.stringify(root);
      if (json.length <= ctx.maxBytes) return { profile: picked.name, analyze: a.analyze, plan: root };
      const art = await ctx.writeArtifact('plan.json', JSON.stringify(root, null, 2));
      return { profile: picked.name, analyze: a.analyze, summary: topNode(root) ?? {}, plan_uri: art.uri };
    }),
});

function topNode(plan: unknown): Record<string, unknown> | undefined {
  const root = (Array.isArray(plan) ? plan[0] : plan) as Record<string, unknown> | undefined;
  const p = root?.Plan as Record<string, unknown> | undefined;
  if (!p) return undefined;
  const out: Record<string, unknown> = { node_type: p['Node Type'], total_cost: p['Total Cost'], plan_rows: p['Plan Rows'] };
  if (p['Actual Total Time'] !== undefined) out.actual_total_time_ms = p['Actual Total Time'];
  if (p['Actual Rows'] !== undefined) out.actual_rows = p['Actual Rows'];
  if (root?.['Execution Time'] !== undefined) out.execution_time_ms = root['Execution Time'];
  return out;
}
