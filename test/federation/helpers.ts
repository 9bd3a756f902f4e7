import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/client.js';
import { makeProject, type TempProject } from '../helpers/project.js';
import { createRuntime, type Runtime } from '../../src/exec/runtime.js';

export const FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'mcp-fixture-server.ts');
export const EVERYTHING = join(REPO_ROOT, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
export const MEMORY = join(REPO_ROOT, 'node_modules', '@modelcontextprotocol', 'server-memory', 'dist', 'index.js');

/** servers.json entry for our fixture server; `marker` lets `ps` find its processes. */
export function fixtureServer(
  marker: string,
  env: Record<string, string> = {},
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { command: process.execPath, args: ['--import', 'tsx', FIXTURE, marker], env, cwd: REPO_ROOT, ...extra };
}

export function everythingServer(marker: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { command: process.execPath, args: [EVERYTHING, 'stdio', marker], ...extra };
}

export function memoryServer(file: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { command: process.execPath, args: [MEMORY], env: { MEMORY_FILE_PATH: file }, ...extra };
}

export interface Rig {
  p: TempProject;
  rt: Runtime;
  close(): Promise<void>;
}

export async function rig(
  servers: Record<string, unknown>,
  opts: { env?: Record<string, string>; files?: Record<string, unknown>; startUpstreams?: boolean } = {},
): Promise<Rig> {
  const p = makeProject({ 'servers.json': { mcpServers: servers }, ...(opts.files ?? {}) });
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    INFRA_LOG_LEVEL: process.env.INFRA_LOG_LEVEL ?? 'error',
    ...(opts.env ?? {}),
  };
  const rt = await createRuntime({ projectDir: p.infraDir, env, startUpstreams: opts.startUpstreams ?? false });
  return {
    p,
    rt,
    close: async () => {
      await rt.close();
      p.cleanup();
    },
  };
}

/** pids of live processes whose command line contains `marker` (zombies excluded). */
export function pidsWith(marker: string): number[] {
  const outp = execFileSync('ps', ['-eo', 'pid=,stat=,args='], { encoding: 'utf8' });
  return outp
    .split('\n')
    .filter((l) => l.includes(marker) && !l.includes('ps -eo'))
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => !f[1]?.startsWith('Z'))
    .map((f) => Number(f[0]));
}

/** Polls until `check` holds (generous bound: the machine is shared). */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

export const uniq = (s: string): string => `${s}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
