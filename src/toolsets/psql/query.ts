import { z } from 'zod';
import { defineAction } from '../../core/define-action.js';
import {
  boundRows,
  columnsOf,
  paramsArg,
  pickProfile,
  profileArgs,
  rowObjects,
  runReadOnly,
  sqlArg,
  statementTimeout,
  withSession,
} from './common.js';

export interface QueryResult {
  profile: string;
  command: string | null;
  columns: { name: string; type: string }[];
  rows: unknown[];
  row_count: number;
  /** More rows exist than max_rows. */
  truncated: boolean;
  max_rows: number;
  /** Set when not every row fits inline: the rows shown, and where all of them are. */
  rows_inline?: number;
  rows_uri?: string;
}

export const queryAction = defineAction({
  tool: 'psql',
  action: 'query',
  effect: 'read',
  description:
    "Run one SQL statement inside a READ ONLY transaction (enforced by Postgres; rolled back after), with $n params, the profile's statement_timeout and max_rows; returns columns with types and rows",
  input: z.strictObject({
    ...profileArgs,
    sql: sqlArg,
    params: paramsArg,
    max_rows: z.number().int().min(1).max(1_000_000).optional().describe("Row limit (at most the profile's max_rows, default it)"),
    row_format: z.enum(['objects', 'arrays']).default('objects').describe('objects keyed by column name, or arrays in column order'),
  }),
  target: (a) => a.profile ?? a.profile_name,
  gate: (a, services) => void pickProfile(services, a),
  summarize: (r: QueryResult) =>
    `${r.command ?? 'statement'}: ${r.row_count} row${r.row_count === 1 ? '' : 's'}${r.truncated ? ` (truncated at max_rows ${r.max_rows})` : ''}`,
  handler: async (ctx, a): Promise<QueryResult> =>
    withSession(ctx, a, { read: true }, async (s, picked) => {
      const maxRows = Math.min(a.max_rows ?? picked.profile.max_rows, picked.profile.max_rows);
      const [r] = await runReadOnly(s, ctx, statementTimeout(ctx, picked.profile), [
        { text: a.sql, values: a.params, rows: { keep: maxRows + 1, fetch: maxRows + 1 } },
      ]);
      const columns = await columnsOf(ctx, s, r!.fields);
      const truncated = r!.rows.length > maxRows;
      const raw = truncated ? r!.rows.slice(0, maxRows) : r!.rows;
      const rows: unknown[] = a.row_format === 'arrays' ? raw : rowObjects(columns, raw);
      const budget = Math.max(0, ctx.maxBytes - JSON.stringify(columns).length - 300);
      const bounded = await boundRows(ctx, rows, budget);
      return {
        profile: picked.name,
        command: r!.command ?? null,
        columns,
        rows: bounded.inline,
        row_count: r!.fields.length ? rows.length : (r!.rowCount ?? 0),
        truncated,
        max_rows: maxRows,
        ...(bounded.uri ? { rows_inline: bounded.inline.length, rows_uri: bounded.uri } : {}),
      };
    }),
});
