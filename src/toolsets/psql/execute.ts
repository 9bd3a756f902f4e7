import { z } from 'zod';
import { defineAction } from '../../core/define-action.js';
import { ToolError } from '../../core/errors.js';
import type { BatchStep, StepResult } from '../../adapters/pg-batch.js';
import {
  boundRows,
  cleanup,
  columnsOf,
  paramsArg,
  pickProfile,
  profileArgs,
  rowObjects,
  sqlArg,
  statementTimeout,
  withSession,
} from './common.js';

export interface ExecuteResult {
  profile: string;
  command: string | null;
  row_count: number | null;
  committed: boolean;
  columns?: { name: string; type: string }[];
  rows?: unknown[];
  rows_truncated?: boolean;
  rows_inline?: number;
  rows_uri?: string;
}

export const executeAction = defineAction({
  tool: 'psql',
  action: 'execute',
  effect: 'irreversible',
  description:
    'Run one write statement (INSERT/UPDATE/DELETE/DDL) on a profile with "mode": "read_write", in a transaction that commits when it succeeds; returns the row count (and RETURNING rows)',
  input: z.strictObject({
    ...profileArgs,
    sql: sqlArg,
    params: paramsArg,
    transaction: z
      .boolean()
      .default(true)
      .describe(
        'false runs the statement on its own, for statements that cannot run in a transaction block (VACUUM, CREATE INDEX CONCURRENTLY)',
      ),
  }),
  target: (a) => a.profile ?? a.profile_name,
  gate: (a, services) => {
    const { name, profile } = pickProfile(services, a);
    if (profile.mode !== 'read_write') {
      throw new ToolError('DENIED', `psql execute is refused: profile ${name} is read_only`, {
        hint: `a human can allow writes by setting "mode": "read_write" for ${name} in profiles.json (every execute still asks for confirmation unless policy.json "confirm": { "psql.execute": false })`,
        details: { profile: name, mode: profile.mode, setting: 'mode' },
      });
    }
  },
  summarize: (r: ExecuteResult) =>
    `${r.command ?? 'statement'}${r.row_count !== null ? ` ${r.row_count} row${r.row_count === 1 ? '' : 's'}` : ''}${r.committed ? ', committed' : ''}`,
  handler: async (ctx, a): Promise<ExecuteResult> =>
    withSession(ctx, a, { read: false }, async (s, picked) => {
      const keep = picked.profile.max_rows;
      const user: BatchStep = { text: a.sql, values: a.params, rows: { keep, fetch: 0 } };
      const timeout = String(statementTimeout(ctx, picked.profile));
      let r: StepResult;
      s.markWritten();
      try {
        if (a.transaction) {
          const results = await s.run(
            [{ text: 'BEGIN' }, { text: "SELECT set_config('statement_timeout', $1, true)", values: [timeout] }, user, { text: 'COMMIT' }],
            ctx.cancel,
            'execute',
          );
          r = results[2]!;
        } else {
          // alone before its Sync: VACUUM and friends refuse to run in a (pipelined) block
          await s.run([{ text: "SELECT set_config('statement_timeout', $1, false)", values: [timeout] }], ctx.cancel, 'execute');
          r = (await s.run([user], ctx.cancel, 'execute'))[0]!;
          await s.simple('RESET statement_timeout');
        }
      } catch (e) {
        await cleanup(s);
        if (!a.transaction && !s.broken) await s.simple('RESET statement_timeout').catch(() => (s.broken = true));
        throw e;
      }
      const columns = r.fields.length ? await columnsOf(ctx, s, r.fields) : undefined;
      const base: ExecuteResult = {
        profile: picked.name,
        command: r.command ?? null,
        row_count: r.rowCount ?? (r.fields.length ? r.seen : null),
        committed: a.transaction,
      };
      if (!columns) return base;
      const rows = rowObjects(columns, r.rows);
      const bounded = await boundRows(ctx, rows, Math.max(0, ctx.maxBytes - 600));
      return {
        ...base,
        columns,
        rows: bounded.inline,
        rows_truncated: r.seen > r.rows.length,
        ...(bounded.uri ? { rows_inline: bounded.inline.length, rows_uri: bounded.uri } : {}),
      };
    }),
});
