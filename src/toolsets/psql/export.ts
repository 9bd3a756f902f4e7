import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, promises as fsp, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { defineAction, type ActionContext } from '../../core/define-action.js';
import { ToolError } from '../../core/errors.js';
import type { Services } from '../../core/services.js';
import { expandHome } from '../../config/paths.js';
import type { PgSession } from '../../adapters/pg-pools.js';
import { cleanup, pickProfile, profileArgs, sqlArg, tableArg, withSession } from './common.js';

export interface ExportResult {
  profile: string;
  source: string;
  format: 'csv' | 'jsonl';
  rows: number;
  bytes: number;
  sha256: string;
  /** The artifact holding the data (when no file_path). */
  uri?: string;
  file_path?: string;
  /** Head (and tail) of the data. */
  preview: string;
  /** The artifact hit limits.artifact_max_bytes: later bytes were dropped. */
  artifact_limited?: boolean;
}

const PREVIEW_BYTES = 4096;

export const exportAction = defineAction({
  tool: 'psql',
  action: 'export',
  effect: 'read',
  long: true,
  description:
    "Stream a table or one query to CSV (with header) or JSON lines through COPY … TO STDOUT, inside a READ ONLY transaction, into the call's artifact (flat memory), or to a local file_path (needs INFRA_UNSAFE_LOCAL=1); async: true runs it as a job",
  input: z.strictObject({
    ...profileArgs,
    table: tableArg.optional(),
    sql: sqlArg.optional(),
    format: z.enum(['csv', 'jsonl']).default('csv').describe('csv, or jsonl (one JSON object per row)'),
    csv_header: z.boolean().default(true).describe('First CSV line holds the column names'),
    file_path: z
      .string()
      .min(1)
      .max(4096)
      .optional()
      .describe('Write to this local file instead of the artifact (INFRA_UNSAFE_LOCAL=1; not inside the project .infra directory)'),
  }),
  target: (a) => a.profile ?? a.profile_name,
  gate: (a, services) => {
    pickProfile(services, a);
    if ((a.table === undefined) === (a.sql === undefined)) {
      throw new ToolError('INVALID_ARGUMENT', 'psql export needs exactly one of "table" or "sql"', {
        hint: 'e.g. {"action": "export", "table": "public.events"}',
      });
    }
    if (a.file_path !== undefined) {
      if (!services.flags.unsafeLocal) {
        throw new ToolError('DENIED', 'psql export to file_path needs local access, which is off by default', {
          hint: 'leave out file_path to store the export as an artifact; or a human can start infra with INFRA_UNSAFE_LOCAL=1',
        });
      }
      checkFilePath(services, a.file_path);
    }
  },
  summarize: (r: ExportResult) => `exported ${r.rows} rows (${r.bytes} bytes ${r.format}) from ${r.source} to ${r.file_path ?? r.uri}`,
  handler: async (ctx, a): Promise<ExportResult> => {
    let filePath: string | undefined;
    if (a.file_path !== undefined) {
      ctx.requireLocal('psql export to file_path');
      filePath = checkFilePath(ctx.services, a.file_path);
    }
    return withSession(ctx, a, { read: true }, async (s, picked) => {
      // a long export is bounded by the call's deadline (a job's by limits.job_timeout_ms)
      const timeout = String(Math.max(1000, ctx.deadline - Date.now() + 250));
      const opts =
        a.format === 'csv' ? `(FORMAT csv, HEADER ${a.csv_header ? 'true' : 'false'})` : `(FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')`;
      const begin = [{ text: 'BEGIN READ ONLY' }, { text: "SELECT set_config('statement_timeout', $1, true)", values: [timeout] }];
      let copyText: string;
      let source: string;
      try {
        if (a.table !== undefined) {
          const [, , rel] = await s.run(
            [
              ...begin,
              {
                text: `SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::text FROM pg_catalog.pg_class c
                       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass($1)`,
                values: [a.table],
                rows: { keep: 1 },
              },
            ],
            ctx.cancel,
            'export',
          );
          const row = rel!.rows[0];
          if (!row) {
            throw new ToolError('NOT_FOUND', `no table or view ${JSON.stringify(a.table)} in profile ${picked.name}`, {
              hint: `psql schema {"profile": "${picked.name}"} lists them; schema-qualify names outside the search_path`,
            });
          }
          const qualified = String(row[0]);
          source = `table ${qualified}`;
          const from =
            a.format === 'jsonl'
              ? `(SELECT pg_catalog.row_to_json(t) FROM ${qualified} t)`
              : row[1] === 'r'
                ? qualified
                : `(SELECT * FROM ${qualified})`;
          copyText = `COPY ${from} TO STDOUT WITH ${opts}`;
          // the server's own quoting made the name; parsing the COPY alone proves it is one statement
          await s.run([{ text: copyText, parseOnly: true }], ctx.cancel, 'export');
        } else {
          const sql = a.sql!.replace(/;\s*$/, '');
          source = 'query';
          const from = a.format === 'jsonl' ? `(SELECT pg_catalog.row_to_json(q) FROM (\n${sql}\n) q)` : `(\n${sql}\n)`;
          copyText = `COPY ${from} TO STDOUT WITH ${opts}`;
          // the query alone first (stacked statements are refused at Parse), then the COPY that
          // wraps it: pg-copy-streams sends COPY as a simple query, so it must be one statement
          await s.run([...begin, { text: a.sql!, parseOnly: true }, { text: copyText, parseOnly: true }], ctx.cancel, 'export');
        }
      } catch (e) {
        await cleanup(s);
        throw e;
      }

      const result = await copyTo(ctx, s, copyText, filePath);
      await s.simple('ROLLBACK; SELECT pg_advisory_unlock_all()').catch(() => (s.broken = true));
      return { profile: picked.name, source, format: a.format, ...result };
    });
  },
});

async function copyTo(
  ctx: ActionContext,
  s: PgSession,
  copyText: string,
  filePath: string | undefined,
): Promise<Omit<ExportResult, 'profile' | 'source' | 'format'>> {
  let copy: Awaited<ReturnType<PgSession['copyOut']>> | undefined;
  let progress: NodeJS.Timeout | undefined;
  let tmp: string | undefined;
  try {
    copy = await s.copyOut(copyText, ctx.cancel);
    if (filePath) {
      tmp = join(dirname(filePath), `.${basename(filePath)}.infra-${process.pid}-${Date.now()}.tmp`);
      const meter = new Meter(PREVIEW_BYTES);
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600, highWaterMark: 1 << 20 });
      const started = Date.now();
      progress = setInterval(
        () => ctx.progress({ progress: meter.bytes, message: `${meter.bytes} bytes in ${Math.round((Date.now() - started) / 1000)} s` }),
        1000,
      );
      progress.unref();
      await pipeline(copy.stream, meter, out);
      await fsp.rename(tmp, filePath);
      tmp = undefined;
      return { rows: copy.rowCount(), bytes: meter.bytes, sha256: meter.sha256(), file_path: filePath, preview: meter.preview() };
    }
    const sink = ctx.sink('rows.' + (copyText.includes("QUOTE E'") ? 'jsonl' : 'csv'), {
      raw: true,
      inlineBytes: Math.min(ctx.maxBytes, PREVIEW_BYTES),
    });
    const started = Date.now();
    progress = setInterval(
      () =>
        ctx.progress({
          progress: sink.bytesWritten,
          message: `${sink.bytesWritten} bytes in ${Math.round((Date.now() - started) / 1000)} s`,
        }),
      1000,
    );
    progress.unref();
    await pipeline(copy.stream, sink);
    const r = await sink.done();
    return {
      rows: copy.rowCount(),
      bytes: r.bytes,
      sha256: r.sha256,
      uri: r.uri,
      preview: r.inline,
      ...(r.artifact_limited ? { artifact_limited: true } : {}),
    };
  } catch (e) {
    if (tmp) await fsp.unlink(tmp).catch(() => undefined);
    throw s.wrapError(e, ctx.cancel, 'export');
  } finally {
    if (progress) clearInterval(progress);
    copy?.done();
  }
}

/** Counts and hashes what passes, keeping the first bytes as a preview. */
class Meter extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');
  private head: Buffer[] = [];
  private headLen = 0;

  constructor(private readonly previewBytes: number) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    if (this.headLen < this.previewBytes) {
      const part = chunk.subarray(0, this.previewBytes - this.headLen);
      this.head.push(Buffer.from(part));
      this.headLen += part.length;
    }
    cb(null, chunk);
  }

  sha256(): string {
    return this.hash.digest('hex');
  }

  preview(): string {
    const text = Buffer.concat(this.head).toString('utf8');
    return this.bytes > this.headLen ? `${text.replace(/\uFFFD$/, '')}\n…[${this.bytes - this.headLen} more bytes in the file]` : text;
  }
}

/**
 * An export path: absolute or relative to the project root, its directory existing, not a
 * directory itself, and (after resolving symlinks) outside the project's .infra directory and
 * the artifacts root, which only infra's stores write.
 */
export function checkFilePath(services: Services, p: string): string {
  if (p.includes('\0')) throw new ToolError('INVALID_ARGUMENT', 'file_path contains a NUL byte');
  const abs = expandHome(p, services.project.root);
  let parent: string;
  try {
    parent = realpathSync(dirname(abs));
  } catch {
    throw new ToolError('INVALID_ARGUMENT', `the directory of file_path ${abs} does not exist`, { hint: 'create the directory first' });
  }
  const full = join(parent, basename(abs));
  let real = full;
  if (existsSync(full)) {
    real = realpathSync(full);
    if (statSync(real).isDirectory()) throw new ToolError('INVALID_ARGUMENT', `file_path ${abs} is a directory`, { hint: 'name a file' });
  }
  for (const guarded of [services.project.dir, services.project.artifactsDir]) {
    const g = realOr(guarded);
    if (inside(full, g) || inside(real, g)) {
      throw new ToolError('DENIED', `file_path ${abs} is inside ${guarded}, which only infra's own stores write`, {
        hint: 'leave out file_path to keep the export as an artifact, or choose a path outside the project directory',
      });
    }
  }
  return full;
}

function realOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

function inside(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}
