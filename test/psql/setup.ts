import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Envelope, ErrorEnvelope, OkEnvelope } from '../../src/core/envelope.js';
import { createRuntime, type Runtime } from '../../src/exec/runtime.js';
import type { CallOptions } from '../../src/exec/pipeline.js';
import { NATIVE_TOOLS } from '../../src/toolsets/registry.js';
import { startPostgres, type PgCluster } from '../fixtures/postgres.js';
import { makeProject, type TempProject } from '../helpers/project.js';

export interface PsqlEnv {
  pg: PgCluster;
  project: TempProject;
  rt: Runtime;
  call(args: Record<string, unknown>, opts?: CallOptions): Promise<Envelope>;
  ok<T = Record<string, unknown>>(args: Record<string, unknown>, opts?: CallOptions): Promise<T>;
  fail(args: Record<string, unknown>, opts?: CallOptions): Promise<ErrorEnvelope['error']>;
  /** Bytes of one artifact file of a call. */
  artifact(uri: string): Buffer;
  close(): Promise<void>;
}

/**
 * A real cluster plus a project whose profiles point at it:
 * ro (reader, read_only), su (superuser, read_only), rw (writer, read_write),
 * fast (reader, statement_timeout_ms 300), tiny (reader, max_rows 5).
 */
export async function psqlEnv(
  opts: { profiles?: Record<string, unknown>; policy?: Record<string, unknown>; env?: Record<string, string>; pg?: PgCluster } = {},
): Promise<PsqlEnv> {
  const pg = opts.pg ?? (await startPostgres());
  const project = makeProject({
    'profiles.json': {
      ro: { type: 'postgres', url: '${env:RO_URL}', mode: 'read_only' },
      su: { type: 'postgres', url: '${env:SU_URL}' },
      rw: {
        type: 'postgres',
        host: '127.0.0.1',
        port: pg.port,
        database: 'app',
        user: 'writer',
        password: '${env:RW_PASSWORD}',
        mode: 'read_write',
      },
      fast: { type: 'postgres', url: '${env:RO_URL}', statement_timeout_ms: 300 },
      tiny: { type: 'postgres', url: '${env:RO_URL}', max_rows: 5 },
      ...(opts.profiles ?? {}),
    },
    'policy.json': opts.policy ?? { confirm: { 'psql.execute': false } },
  });
  const rt = await createRuntime({
    projectDir: project.infraDir,
    env: {
      ...process.env,
      RO_URL: pg.url('reader'),
      SU_URL: pg.url('postgres'),
      RW_PASSWORD: pg.passwords.writer,
      RW_URL: pg.url('writer'),
      ...(opts.env ?? {}),
    },
    tools: NATIVE_TOOLS,
  });
  const call = (args: Record<string, unknown>, o?: CallOptions): Promise<Envelope> => rt.call('psql', args, o);
  return {
    pg,
    project,
    rt,
    call,
    async ok<T>(args: Record<string, unknown>, o?: CallOptions): Promise<T> {
      const r = await call(args, o);
      if (!r.ok) throw new Error(`expected ok, got ${JSON.stringify(r.error)}`);
      return (r as OkEnvelope).result as T;
    },
    async fail(args: Record<string, unknown>, o?: CallOptions) {
      const r = await call(args, o);
      if (r.ok) throw new Error(`expected an error, got ${JSON.stringify(r.result).slice(0, 500)}`);
      return r.error;
    },
    artifact(uri: string): Buffer {
      const rel = uri.replace(/^artifact:\/\//, '');
      return readFileSync(join(rt.project.artifactsDir, rel));
    },
    async close() {
      await rt.close();
      project.cleanup();
      if (!opts.pg) pg.stop();
    },
  };
}

export { eventually } from '../helpers/wait.js';

/** Backends (other than psql's own) whose query text contains `marker`. */
export function backendsRunning(pg: PgCluster, marker: string): number {
  return Number(pg.psql(`SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%${marker}%' AND pid <> pg_backend_pid()`, 'postgres'));
}
