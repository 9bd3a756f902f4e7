import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { z } from 'zod';
import { parseJsonc } from './jsonc.js';
import {
  CapabilitiesFileSchema,
  PolicyFileSchema,
  ProfilesFileSchema,
  RunbooksFileSchema,
  ServersFileSchema,
  TargetsFileSchema,
  type CapabilitiesFile,
  type Policy,
  type Profile,
  type Runbook,
  type SshTarget,
  type UpstreamServer,
} from './schemas.js';

export type ProjectSource = 'MCP_PROFILES_DIR' | '--project' | '.infra' | 'roots' | 'XDG_STATE_HOME';

export interface ProjectInfo {
  /** The `.infra` (or equivalent) directory holding config, infra.db and artifacts/. */
  dir: string;
  /** The project root: parent of `.infra/` (for repo roots and relative paths). */
  root: string;
  source: ProjectSource;
  artifactsDir: string;
  dbPath: string;
}

export interface ConfigIssue {
  file: string;
  message: string;
  hint: string;
}

export interface LoadedConfig {
  targets: Record<string, SshTarget>;
  profiles: Record<string, Profile>;
  policy: Policy;
  /** Project runbooks only (built-ins are merged by the runbook tool). */
  runbooks: Record<string, Runbook>;
  capabilities: CapabilitiesFile;
  /** Upstream MCP servers (servers.json `mcpServers`), federated by src/federation/. */
  servers: Record<string, UpstreamServer>;
  /** Problems found while loading; a file with an issue contributes nothing. */
  issues: ConfigIssue[];
  /** Where the project's runbooks.json is (MCP_RUNBOOKS_PATH honoured): runbook upsert/delete write here. */
  runbooksPath: string;
  /** When policy.json is invalid every call is refused (fail closed) with this issue. */
  policyIssue: ConfigIssue | undefined;
}

export interface ResolveProjectOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  projectFlag?: string | undefined;
}

/**
 * Finds the project directory in DESIGN §3 order: MCP_PROFILES_DIR, --project, nearest .infra/
 * up from cwd, (client roots: see server), $XDG_STATE_HOME/infra.
 */
export function resolveProject(opts: ResolveProjectOptions): ProjectInfo {
  const { env, cwd } = opts;
  if (env.MCP_PROFILES_DIR) return projectAt(resolve(cwd, expandTilde(env.MCP_PROFILES_DIR)), 'MCP_PROFILES_DIR', env);
  if (opts.projectFlag) {
    const p = resolve(cwd, expandTilde(opts.projectFlag));
    // --project may name the project root or its .infra directory
    const dir = basename(p) === '.infra' || (!existsSync(join(p, '.infra')) && isInfraDir(p)) ? p : join(p, '.infra');
    return projectAt(dir, '--project', env);
  }
  const found = findUp(cwd);
  if (found) return projectAt(found, '.infra', env);
  return fallbackProject(env);
}

export function fallbackProject(env: NodeJS.ProcessEnv): ProjectInfo {
  const xdg = env.XDG_STATE_HOME ? expandTilde(env.XDG_STATE_HOME) : join(homedir(), '.local', 'state');
  return projectAt(join(xdg, 'infra'), 'XDG_STATE_HOME', env, true);
}

export function projectAt(dir: string, source: ProjectSource, env: NodeJS.ProcessEnv, isStateDir = false): ProjectInfo {
  const root = isStateDir ? dir : dirname(dir);
  const artifactsDir = env.MCP_CONTEXT_REPO_ROOT ? resolve(expandTilde(env.MCP_CONTEXT_REPO_ROOT)) : join(dir, 'artifacts');
  return { dir, root, source, artifactsDir, dbPath: join(dir, 'infra.db') };
}

function isInfraDir(p: string): boolean {
  return existsSync(join(p, 'policy.json')) || existsSync(join(p, 'infra.db'));
}

function findUp(start: string): string | undefined {
  let dir = resolve(start);
  for (;;) {
    const candidate = join(dir, '.infra');
    try {
      if (statSync(candidate).isDirectory()) return candidate;
    } catch {
      /* not here */
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function expandTilde(p: string): string {
  return p === '~' ? homedir() : p.startsWith('~/') ? join(homedir(), p.slice(2)) : p;
}

/** Reads and validates one config file; absent → the schema's empty value. */
export function loadConfigFile<S extends z.ZodType>(
  path: string,
  schema: S,
  issues: ConfigIssue[],
): { value: z.output<S>; ok: boolean; present: boolean } {
  const empty = schema.parse({}) as z.output<S>;
  if (!existsSync(path)) return { value: empty, ok: true, present: false };
  let raw: unknown;
  try {
    raw = parseJsonc(readFileSync(path, 'utf8'));
  } catch (e) {
    issues.push({
      file: path,
      message: `${path}: not valid JSON: ${(e as Error).message}`,
      hint: 'fix the syntax (comments and trailing commas are accepted)',
    });
    return { value: empty, ok: false, present: true };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    issues.push({ file: path, message: `${path}: ${formatZodIssues(parsed.error)}`, hint: schemaHint(path) });
    return { value: empty, ok: false, present: true };
  }
  return { value: parsed.data as z.output<S>, ok: true, present: true };
}

function schemaHint(path: string): string {
  const base = path.split('/').pop() ?? path;
  return `see schemas/${base.replace(/\.json$/, '.schema.json')} (add "$schema" to the file for editor completion) and docs/CONFIG.md`;
}

/** One readable line per zod issue: `key.path: message`. */
export function formatZodIssues(error: z.ZodError): string {
  // keys come from the input: a message names a few, each cut short, however many were sent
  const name = (k: PropertyKey): string => {
    const s = String(k);
    return s.length > 64 ? `${s.slice(0, 64)}…` : s;
  };
  const shown = error.issues.slice(0, 8).map((i) => {
    const path = i.path.length ? i.path.map(name).join('.') : '(top level)';
    if (i.code === 'unrecognized_keys') {
      const keys = i.keys.slice(0, 10).map((k) => JSON.stringify(name(k)));
      const more = i.keys.length > 10 ? ` and ${i.keys.length - 10} more` : '';
      return `${path}: unknown key${i.keys.length > 1 ? 's' : ''} ${keys.join(', ')}${more}`;
    }
    return `${path}: ${i.message}`;
  });
  const rest = error.issues.length > 8 ? `; and ${error.issues.length - 8} more problems` : '';
  return shown.join('; ') + rest;
}

export function loadConfig(project: ProjectInfo, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const issues: ConfigIssue[] = [];
  const f = (name: string, envOverride?: string): string =>
    envOverride && env[envOverride] ? resolve(expandTilde(env[envOverride]!)) : join(project.dir, name);
  const targets = loadConfigFile(f('targets.json'), TargetsFileSchema, issues).value;
  const profiles = loadConfigFile(f('profiles.json'), ProfilesFileSchema, issues).value;
  const policyFile = loadConfigFile(f('policy.json'), PolicyFileSchema, issues);
  const runbooks = loadConfigFile(f('runbooks.json', 'MCP_RUNBOOKS_PATH'), RunbooksFileSchema, issues).value;
  const capabilities = loadConfigFile(f('capabilities.json', 'MCP_CAPABILITIES_PATH'), CapabilitiesFileSchema, issues).value;
  const servers = loadConfigFile(f('servers.json'), ServersFileSchema, issues).value.mcpServers;
  const policyIssue = policyFile.ok ? undefined : issues.find((i) => i.file.endsWith('policy.json'));
  return {
    targets: withoutSchemaKey(targets) as Record<string, SshTarget>,
    profiles: withoutSchemaKey(profiles) as Record<string, Profile>,
    policy: policyFile.value,
    runbooks: withoutSchemaKey(runbooks) as Record<string, Runbook>,
    capabilities,
    servers,
    issues,
    policyIssue,
    runbooksPath: runbooksPath(project, env),
  };
}

export function runbooksPath(project: ProjectInfo, env: NodeJS.ProcessEnv = process.env): string {
  return env.MCP_RUNBOOKS_PATH ? resolve(expandTilde(env.MCP_RUNBOOKS_PATH)) : join(project.dir, 'runbooks.json');
}

function withoutSchemaKey(o: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _drop, ...rest } = o;
  return rest;
}
