import type { Database } from '../../audit/db.js';

export interface StateEntry {
  key: string;
  value: unknown;
  updated_at: string;
  expires_at: string | null;
}

interface Row {
  key: string;
  value: string;
  updated_at: string;
  expires_at: number | null;
}

const toEntry = (r: Row): StateEntry => ({
  key: r.key,
  value: JSON.parse(r.value) as unknown,
  updated_at: r.updated_at,
  expires_at: r.expires_at === null ? null : new Date(r.expires_at).toISOString(),
});

/** Project-scoped scratch values in infra.db, with optional expiry. */
export class StateStore {
  private readonly getStmt;
  private readonly setStmt;
  private readonly delStmt;
  private readonly purgeStmt;

  constructor(private readonly db: Database) {
    this.getStmt = db.prepare('SELECT * FROM state WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)');
    this.setStmt = db.prepare(
      `INSERT INTO state (key, value, updated_at, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
    );
    this.delStmt = db.prepare('DELETE FROM state WHERE key = ?');
    this.purgeStmt = db.prepare('DELETE FROM state WHERE expires_at IS NOT NULL AND expires_at <= ?');
  }

  get(key: string, now = Date.now()): StateEntry | undefined {
    const r = this.getStmt.get(key, now) as Row | undefined;
    return r ? toEntry(r) : undefined;
  }

  set(key: string, value: unknown, ttlS?: number, now = Date.now()): StateEntry {
    const updated = new Date(now).toISOString();
    const expires = ttlS === undefined ? null : now + Math.round(ttlS * 1000);
    this.setStmt.run(key, JSON.stringify(value ?? null), updated, expires);
    return { key, value, updated_at: updated, expires_at: expires === null ? null : new Date(expires).toISOString() };
  }

  delete(key: string): boolean {
    return this.delStmt.run(key).changes > 0;
  }

  list(opts: { prefix?: string | undefined; query?: string | undefined; limit?: number | undefined }, now = Date.now()): StateEntry[] {
    this.purgeStmt.run(now);
    const where = ['(expires_at IS NULL OR expires_at > @now)'];
    const params: Record<string, unknown> = { now };
    if (opts.prefix) {
      where.push(`key LIKE @prefix ESCAPE '\\'`);
      params.prefix = `${opts.prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    }
    if (opts.query) {
      where.push(`(key LIKE @q ESCAPE '\\' OR value LIKE @q ESCAPE '\\')`);
      params.q = `%${opts.query.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    }
    const limit = Math.min(Math.max(opts.limit ?? 100, 1), 1000);
    const rows = this.db.prepare(`SELECT * FROM state WHERE ${where.join(' AND ')} ORDER BY key LIMIT ${limit}`).all(params) as Row[];
    return rows.map(toEntry);
  }
}
