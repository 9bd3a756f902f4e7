import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, resolveProject } from '../config/load.js';
import { parseRefs, stringsIn } from '../config/secret-refs.js';
import { KEY_FILE } from '../secrets/store.js';

export const CLIENTS = ['claude', 'vscode', 'zed', 'cursor'] as const;
export type ClientKind = (typeof CLIENTS)[number];

/** True inside the single-file binary (Node's single executable application). */
export function isSingleExecutable(): boolean {
  try {
    // node:sea exists from Node 20.12; a plain `node` answers false
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sea = (typeof require === 'function' ? require('node:sea') : createRequire(import.meta.url)('node:sea')) as {
      isSea(): boolean;
    };
    return sea.isSea();
  } catch {
    return false;
  }
}

/** How this very process was started: the single binary, or node + dist/cli.js. */
export function selfCommand(): { command: string; args: string[] } {
  if (isSingleExecutable()) return { command: process.execPath, args: [] };
  const script = process.argv[1] ? resolve(process.argv[1]) : fileURLToPath(new URL('../cli.js', import.meta.url));
  // a development run through tsx (node --import tsx src/cli.ts) needs its loader flags too
  const loader = script.endsWith('.ts') ? process.execArgv : [];
  return { command: process.execPath, args: [...loader, realpathOr(script)] };
}

function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/**
 * The exact snippet for one client, with absolute paths, MCP_PROFILES_DIR and every environment
 * variable the project's config refers to (values are placeholders unless `withValues`).
 */
export function clientSnippet(
  client: ClientKind,
  opts: { projectFlag?: string | undefined; withValues?: boolean; env?: NodeJS.ProcessEnv } = {},
): string {
  const env = opts.env ?? process.env;
  const project = resolveProject({ env, cwd: process.cwd(), projectFlag: opts.projectFlag });
  const config = loadConfig(project, env);
  const serverEnv: Record<string, string> = { MCP_PROFILES_DIR: project.dir };
  // references are honoured in these files only (secret-refs.ts)
  const referencing = [config.targets, config.profiles, config.servers];
  let usesSecrets = false;
  for (const s of referencing.flatMap((v) => [...stringsIn(v)])) {
    for (const ref of parseRefs(s)) {
      if (ref.kind === 'secret') usesSecrets = true;
      if (ref.kind !== 'env') continue;
      serverEnv[ref.name] = opts.withValues && env[ref.name] ? env[ref.name]! : `<value of ${ref.name}>`;
    }
  }
  // ${secret:…} needs the store's key: the project's secrets.key, or else INFRA_SECRETS_KEY
  if (usesSecrets && !existsSync(join(project.dir, KEY_FILE)) && !serverEnv.INFRA_SECRETS_KEY) {
    serverEnv.INFRA_SECRETS_KEY = opts.withValues && env.INFRA_SECRETS_KEY ? env.INFRA_SECRETS_KEY : '<value of INFRA_SECRETS_KEY>';
  }
  const { command, args } = selfCommand();
  const server = { command, args, env: serverEnv };
  let doc: unknown;
  switch (client) {
    case 'vscode':
      doc = { servers: { infra: { type: 'stdio', ...server } } };
      break;
    case 'zed':
      doc = { context_servers: { infra: server } };
      break;
    case 'claude':
    case 'cursor':
      doc = { mcpServers: { infra: server } };
      break;
  }
  return JSON.stringify(doc, null, 2);
}
