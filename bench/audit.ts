// Audit figures on 1,000,000 rows (issue 11), each against a raw SQLite baseline in the same run:
// `audit list` with filters through rt.call vs the same SELECT on a raw better-sqlite3
// connection; `audit verify` over the whole chain vs a raw walk of the rows; and the worst
// latency of `state get` calls made while verify runs (verify is chunked and must not stall them).
// Run: node --import tsx bench/audit.ts [rows]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { rowHash, type AuditRow } from '../src/audit/audit-store.js';
import { createRuntime } from '../src/exec/runtime.js';
import { fmt, printFigures, stats, timeCalls, type Figure } from './lib.js';

const TOOLS: [string, string][] = [
  ['ssh', 'exec'],
  ['psql', 'query'],
  ['http', 'request'],
  ['state', 'get'],
  ['repo', 'status'],
];
const STATUSES = ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'error', 'timeout', 'denied', 'invalid'];

/** Writes `n` closed, chained rows straight into infra.db (the schema comes from a runtime). */
function generate(dbPath: string, n: number): void {
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const insert = db.prepare(
    `INSERT INTO audit (id, seq, parent_id, owner_pid, owner_start, started_at, ended_at, duration_ms, tool, action, target, status, error_code, args, summary, artifact, bytes, client_name, client_version, prev_hash, hash)
     VALUES (@id, @seq, @parent_id, @owner_pid, @owner_start, @started_at, @ended_at, @duration_ms, @tool, @action, @target, @status, @error_code, @args, @summary, @artifact, @bytes, @client_name, @client_version, @prev_hash, @hash)`,
  );
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  let prev = '';
  const batch = 20_000;
  for (let start = 0; start < n; start += batch) {
    db.transaction(() => {
      for (let i = start; i < Math.min(n, start + batch); i++) {
        const [tool, action] = TOOLS[i % TOOLS.length]!;
        const status = STATUSES[(i * 7) % STATUSES.length]!;
        const ts = t0 + i * 1000;
        // ULID-like ids: sortable by time, like real call ids
        const id = `c_${ts.toString(36).padStart(10, '0')}${i.toString(36).padStart(8, '0')}`.toUpperCase();
        const row: Omit<AuditRow, 'hash' | 'artifact_pruned'> = {
          id,
          seq: i + 1,
          parent_id: null,
          owner_pid: 4242,
          owner_start: '1',
          started_at: new Date(ts).toISOString(),
          ended_at: new Date(ts + 40).toISOString(),
          duration_ms: 40 + (i % 100),
          tool,
          action,
          target: tool === 'ssh' ? `host-${i % 50}` : tool === 'psql' ? `db-${i % 5}` : null,
          status: status as AuditRow['status'],
          error_code: status === 'ok' ? null : status === 'error' ? 'CONNECTION_FAILED' : status.toUpperCase(),
          args: JSON.stringify({ action, command: `echo ${i}`, n: i }),
          summary: status === 'ok' ? `exit 0, ${i % 4096} B stdout` : `${status} on call ${i}`,
          artifact: `artifact://calls/${id}/`,
          bytes: i % 4096,
          client_name: 'bench',
          client_version: '1',
          prev_hash: prev,
        };
        const hash = rowHash(row);
        insert.run({ ...row, hash });
        prev = hash;
      }
    })();
  }
  db.prepare('UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1').run(n, prev);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

export async function auditBench(rows = Number(process.env.BENCH_AUDIT_ROWS ?? 1_000_000)): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'infra-bench-audit-'));
  const infraDir = join(dir, '.infra');
  try {
    // the schema, through the real code
    const first = await createRuntime({ projectDir: infraDir, env: { INFRA_LOG_LEVEL: 'error' } });
    await first.close();
    const dbPath = join(infraDir, 'infra.db');
    const g0 = performance.now();
    generate(dbPath, rows);
    const genMs = performance.now() - g0;

    const rt = await createRuntime({ projectDir: infraDir, env: { INFRA_LOG_LEVEL: 'error' } });
    const raw = new Database(dbPath, { readonly: true });
    const figures: Figure[] = [];
    const lists: { name: string; args: Record<string, unknown>; sql: string; params: unknown[] }[] = [
      { name: 'newest 50', args: { limit: 50 }, sql: 'SELECT * FROM audit ORDER BY id DESC LIMIT 50', params: [] },
      {
        name: 'tool+status filter',
        args: { tool: 'ssh', status: 'error', limit: 50 },
        sql: 'SELECT * FROM audit WHERE tool = ? AND status = ? ORDER BY id DESC LIMIT 50',
        params: ['ssh', 'error'],
      },
      {
        name: 'time window',
        args: { since: '2026-01-05T00:00:00Z', until: '2026-01-06T00:00:00Z', limit: 100 },
        sql: 'SELECT * FROM audit WHERE started_at >= ? AND started_at < ? ORDER BY id DESC LIMIT 100',
        params: ['2026-01-05T00:00:00Z', '2026-01-06T00:00:00Z'],
      },
      {
        name: 'text query (LIKE scan)',
        args: { query: 'call 999', limit: 20 },
        sql: `SELECT * FROM audit WHERE (tool LIKE ? OR action LIKE ? OR target LIKE ? OR summary LIKE ? OR args LIKE ?) ORDER BY id DESC LIMIT 20`,
        params: Array(5).fill('%call 999%'),
      },
    ];
    for (const l of lists) {
      const stmt = raw.prepare(l.sql);
      const n = l.name.startsWith('text') ? 5 : 50;
      const base = stats(await timeCalls(n, async () => stmt.all(...l.params), 0));
      const infra = stats(
        await timeCalls(
          n,
          async () => {
            const r = await rt.call('audit', { action: 'list', ...l.args });
            if (!r.ok) throw new Error(JSON.stringify(r.error));
          },
          0,
        ),
      );
      figures.push({ name: `audit list, ${l.name} (p50)`, value: fmt(infra.p50), baseline: fmt(base.p50), ratio: infra.p50 / base.p50 });
    }

    // verify vs a raw walk of every row in chain order
    const w0 = performance.now();
    let walked = 0;
    for (const _r of raw.prepare('SELECT * FROM audit ORDER BY seq').iterate()) walked++;
    const walkMs = performance.now() - w0;

    const idle = stats(
      await timeCalls(
        200,
        async () => {
          await rt.call('state', { action: 'get', key: 'missing' });
        },
        0,
      ),
    );
    let verifying = true;
    const during: number[] = [];
    const prober = (async () => {
      while (verifying) {
        const t = performance.now();
        await rt.call('state', { action: 'get', key: 'missing' });
        during.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const v0 = performance.now();
    const v = await rt.call('audit', { action: 'verify' });
    const verifyMs = performance.now() - v0;
    verifying = false;
    await prober;
    if (!v.ok || !(v.result as { ok: boolean }).ok) throw new Error(`verify failed: ${JSON.stringify(v).slice(0, 400)}`);
    const maxDuring = Math.max(...during);
    figures.push(
      {
        name: `audit verify, ${rows.toLocaleString('en')} rows`,
        value: fmt(verifyMs),
        baseline: `${fmt(walkMs)} (raw walk, no hashing)`,
        ratio: verifyMs / walkMs,
      },
      {
        name: '`state get` max latency while verify runs',
        value: `${fmt(maxDuring)} (${during.length} calls)`,
        baseline: `${fmt(idle.p50)} p50 idle`,
        ratio: maxDuring / idle.p50,
        target: 'no stall (≲ one 5,000-row chunk)',
      },
      { name: 'generating the rows (setup, not a figure)', value: fmt(genMs), baseline: '', ratio: null },
    );
    // the bench's own calls add their rows on top of the generated ones
    if (walked < rows) throw new Error(`walked ${walked} rows, expected at least ${rows}`);
    raw.close();
    await rt.close();
    printFigures(`audit on ${rows.toLocaleString('en')} rows (raw SQLite baselines on the same file)`, figures);
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await auditBench(process.argv[2] ? Number(process.argv[2]) : undefined);
