import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

export type Database = BetterSqlite3.Database;

const MIGRATIONS: string[] = [
  `CREATE TABLE audit (
     id TEXT PRIMARY KEY,
     seq INTEGER UNIQUE,
     parent_id TEXT,
     owner_pid INTEGER NOT NULL,
     owner_start TEXT NOT NULL,
     started_at TEXT NOT NULL,
     ended_at TEXT,
     duration_ms INTEGER,
     tool TEXT NOT NULL,
     action TEXT,
     target TEXT,
     status TEXT NOT NULL,
     error_code TEXT,
     args TEXT,
     summary TEXT,
     artifact TEXT,
     bytes INTEGER,
     client_name TEXT,
     client_version TEXT,
     prev_hash TEXT,
     hash TEXT,
     artifact_pruned INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX audit_started ON audit(started_at);
   CREATE INDEX audit_status ON audit(status);
   CREATE INDEX audit_tool ON audit(tool, action);
   CREATE INDEX audit_parent ON audit(parent_id);
   CREATE TABLE chain_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
   INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '');
   CREATE TABLE state (
     key TEXT PRIMARY KEY,
     value TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     expires_at INTEGER
   );
   CREATE TABLE jobs (
     id TEXT PRIMARY KEY,
     call_id TEXT NOT NULL,
     tool TEXT NOT NULL,
     action TEXT NOT NULL,
     status TEXT NOT NULL,
     owner_pid INTEGER NOT NULL,
     owner_start TEXT NOT NULL,
     started_at TEXT NOT NULL,
     ended_at TEXT,
     progress TEXT,
     envelope TEXT
   );
   CREATE INDEX jobs_status ON jobs(status);
   CREATE TABLE tool_pins (
     server TEXT NOT NULL,
     tool TEXT NOT NULL,
     hash TEXT NOT NULL,
     definition TEXT NOT NULL,
     approved_at TEXT NOT NULL,
     PRIMARY KEY (server, tool)
   );`,
];

let driver: typeof BetterSqlite3 | undefined;

/**
 * Loads better-sqlite3. The single-file binary sets INFRA_SQLITE_BINDING to the native addon
 * it extracted (DESIGN §7); otherwise the package finds its own build.
 */
function loadDriver(): typeof BetterSqlite3 {
  if (!driver) {
    const req = createRequire(import.meta.url);
    driver = req('better-sqlite3') as typeof BetterSqlite3;
  }
  return driver;
}

export function openDatabase(path: string): Database {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const Driver = loadDriver();
  const binding = process.env.INFRA_SQLITE_BINDING;
  const db = binding ? new Driver(path, { nativeBinding: binding }) : new Driver(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

function migrate(db: Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version >= MIGRATIONS.length) return;
  db.transaction(() => {
    const again = db.pragma('user_version', { simple: true }) as number;
    for (let v = again; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
}
