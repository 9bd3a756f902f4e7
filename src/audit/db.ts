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
  // fewer, better indexes: time ranges use the ULID primary key, lists read newest first
  `DROP INDEX audit_started;
   DROP INDEX audit_status;
   DROP INDEX audit_tool;
   CREATE INDEX audit_status_id ON audit(status, id);
   CREATE INDEX audit_tool_id ON audit(tool, action, id);`,
];

let driver: typeof BetterSqlite3 | undefined;
const addons = new Map<string, object>();

/**
 * Loads better-sqlite3. In the CommonJS bundle of the single-file binary `require` exists and
 * esbuild bundles the package's JavaScript; elsewhere (ESM) it is required from node_modules.
 */
function loadDriver(): typeof BetterSqlite3 {
  if (!driver) {
    driver = (
      typeof require === 'function'
        ? // eslint-disable-next-line @typescript-eslint/no-require-imports
          require('better-sqlite3')
        : createRequire(import.meta.url)('better-sqlite3')
    ) as typeof BetterSqlite3;
  }
  return driver;
}

/**
 * The native addon named by INFRA_SQLITE_BINDING (the binary's extracted copy, DESIGN §7),
 * loaded here and passed to the driver as an object: inside the binary the bundle's own
 * `require` only reaches built-in modules, so a file path given to the driver would not load.
 */
function loadBinding(path: string): object {
  let addon = addons.get(path);
  if (!addon) {
    addon = createRequire(path)(path) as object;
    addons.set(path, addon);
  }
  return addon;
}

export function openDatabase(path: string): Database {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const Driver = loadDriver();
  const binding = process.env.INFRA_SQLITE_BINDING;
  // @types/better-sqlite3 says string; the driver also takes the loaded addon (lib/database.js)
  const db = binding ? new Driver(path, { nativeBinding: loadBinding(binding) } as unknown as BetterSqlite3.Options) : new Driver(path);
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
