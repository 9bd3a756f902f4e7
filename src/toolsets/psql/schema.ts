import { z } from 'zod';
import { defineAction } from '../../core/define-action.js';
import { ToolError } from '../../core/errors.js';
import { pickProfile, profileArgs, runReadOnly, statementTimeout, tableArg, withSession } from './common.js';

const KINDS: Record<string, string> = { r: 'table', p: 'partitioned table', v: 'view', m: 'materialized view', f: 'foreign table' };
const CONSTRAINTS: Record<string, string> = {
  p: 'primary key',
  u: 'unique',
  f: 'foreign key',
  c: 'check',
  x: 'exclusion',
  t: 'trigger',
  n: 'not null',
};
const SYSTEM = `(n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%')`;

export interface SchemaResult {
  profile: string;
  schemas?: { name: string; owner: string; relations: number }[];
  tables?: { schema: string; name: string; kind: string; row_estimate: number | null; total_bytes: number }[];
  tables_truncated?: boolean;
  table?: { schema: string; name: string; kind: string; row_estimate: number | null; total_bytes: number; comment: string | null };
  columns?: {
    name: string;
    type: string;
    nullable: boolean;
    default: string | null;
    identity?: string;
    generated?: boolean;
    comment?: string;
  }[];
  indexes?: { name: string; definition: string; unique: boolean; primary: boolean; bytes: number }[];
  constraints?: { name: string; type: string; definition: string }[];
}

const estimate = (v: unknown): number | null => (v === null || Number(v) < 0 ? null : Number(v));

export const schemaAction = defineAction({
  tool: 'psql',
  action: 'schema',
  effect: 'read',
  description:
    'Describe the database: without table, its schemas and tables (row estimates, sizes); with table, its columns, indexes and constraints',
  input: z.strictObject({
    ...profileArgs,
    schema: z.string().min(1).max(128).optional().describe('Only this schema (exact name)'),
    table: tableArg.optional(),
    include_system: z.boolean().default(false).describe('Include pg_catalog and information_schema'),
    limit: z.number().int().min(1).max(10_000).default(500).describe('Most tables to list'),
  }),
  target: (a) => a.profile ?? a.profile_name,
  gate: (a, services) => void pickProfile(services, a),
  summarize: (r: SchemaResult) =>
    r.table
      ? `${r.table.schema}.${r.table.name}: ${r.columns?.length ?? 0} columns, ${r.indexes?.length ?? 0} indexes`
      : `${r.schemas?.length ?? 0} schemas, ${r.tables?.length ?? 0} tables`,
  handler: async (ctx, a): Promise<SchemaResult> =>
    withSession(ctx, a, { read: true }, async (s, picked) => {
      const timeout = statementTimeout(ctx, picked.profile);
      if (a.table) {
        const name = a.schema && !a.table.includes('.') ? `${quoteIdent(a.schema)}.${a.table}` : a.table;
        const rel = [name];
        const [t, cols, idx, cons] = await runReadOnly(s, ctx, timeout, [
          {
            text: `SELECT n.nspname::text, c.relname::text, c.relkind::text, c.reltuples::float8, pg_catalog.pg_total_relation_size(c.oid), pg_catalog.obj_description(c.oid, 'pg_class')
                   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass($1)`,
            values: rel,
            rows: { keep: 1 },
          },
          {
            text: `SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, pg_catalog.pg_get_expr(d.adbin, d.adrelid),
                          a.attidentity::text, a.attgenerated::text, pg_catalog.col_description(a.attrelid, a.attnum)
                   FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                   WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
            values: rel,
            rows: { keep: 2000 },
          },
          {
            text: `SELECT i.relname::text, pg_catalog.pg_get_indexdef(x.indexrelid), x.indisunique, x.indisprimary, pg_catalog.pg_relation_size(x.indexrelid)
                   FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = pg_catalog.to_regclass($1) ORDER BY 1`,
            values: rel,
            rows: { keep: 1000 },
          },
          {
            text: `SELECT conname::text, contype::text, pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint WHERE conrelid = pg_catalog.to_regclass($1) ORDER BY 1`,
            values: rel,
            rows: { keep: 1000 },
          },
        ]);
        const row = t!.rows[0];
        if (!row) {
          throw new ToolError('NOT_FOUND', `no table or view ${JSON.stringify(name)} in profile ${picked.name}`, {
            hint: 'psql schema without "table" lists them; schema-qualify names outside the search_path (schema.name)',
          });
        }
        return {
          profile: picked.name,
          table: {
            schema: String(row[0]),
            name: String(row[1]),
            kind: KINDS[String(row[2])] ?? String(row[2]),
            row_estimate: estimate(row[3]),
            total_bytes: Number(row[4]),
            comment: (row[5] as string | null) ?? null,
          },
          columns: cols!.rows.map((c) => ({
            name: String(c[0]),
            type: String(c[1]),
            nullable: c[2] === true,
            default: (c[3] as string | null) ?? null,
            ...(c[4] ? { identity: c[4] === 'a' ? 'always' : 'by default' } : {}),
            ...(c[5] ? { generated: true } : {}),
            ...(c[6] ? { comment: String(c[6]) } : {}),
          })),
          indexes: idx!.rows.map((i) => ({
            name: String(i[0]),
            definition: String(i[1]),
            unique: i[2] === true,
            primary: i[3] === true,
            bytes: Number(i[4]),
          })),
          constraints: cons!.rows.map((c) => ({
            name: String(c[0]),
            type: CONSTRAINTS[String(c[1])] ?? String(c[1]),
            definition: String(c[2]),
          })),
        };
      }
      const [schemas, tables] = await runReadOnly(s, ctx, timeout, [
        {
          text: `SELECT n.nspname::text, pg_catalog.pg_get_userbyid(n.nspowner)::text,
                        (SELECT count(*) FROM pg_catalog.pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r','p','v','m','f'))
                 FROM pg_catalog.pg_namespace n WHERE ($1::text IS NULL OR n.nspname = $1) AND ($2::bool OR ${SYSTEM}) ORDER BY 1`,
          values: [a.schema ?? null, a.include_system],
          rows: { keep: 10_000 },
        },
        {
          text: `SELECT n.nspname::text, c.relname::text, c.relkind::text, c.reltuples::float8, pg_catalog.pg_total_relation_size(c.oid)
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('r','p','v','m','f') AND NOT c.relispartition AND ($1::text IS NULL OR n.nspname = $1) AND ($2::bool OR ${SYSTEM})
                 ORDER BY 1, 2 LIMIT $3`,
          values: [a.schema ?? null, a.include_system, a.limit + 1],
          rows: { keep: a.limit },
        },
      ]);
      return {
        profile: picked.name,
        schemas: schemas!.rows.map((r) => ({ name: String(r[0]), owner: String(r[1]), relations: Number(r[2]) })),
        tables: tables!.rows.map((r) => ({
          schema: String(r[0]),
          name: String(r[1]),
          kind: KINDS[String(r[2])] ?? String(r[2]),
          row_estimate: estimate(r[3]),
          total_bytes: Number(r[4]),
        })),
        ...(tables!.seen > a.limit ? { tables_truncated: true } : {}),
      };
    }),
});

function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}
