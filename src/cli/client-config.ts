import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, resolveProject } from '../config/load.js';
import { parseRefs, stringsIn } from '../config/secret-refs.js';

export const CLIENTS = ['claude', 'vscode', 'zed', 'cursor'] as const;
export type ClientKind = (typeof CLIENTS)[number];

/** How this very process was started: the single binary, or node + dist/cli.js. */
export function selfCommand(): { command: string; args: string[] } {
  const isSea = (() => {
    try {
      return (process as unknown as { isSea?: () => boolean }).isSea?.() === true || process.execPath.endsWith('/infra');
    } catch {
      return false;
    }
  })();
  if (isSea) return { command: process.execPath, args: [] };
  const script = process.argv[1] ? resolve(process.argv[1]) : fileURLToPath(new URL('../cli.js', import.meta.url));
  return { command: process.execPath, args: [script] };
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
  for (const s of [...stringsIn(config.targets), ...stringsIn(config.profiles)]) {
    for (const ref of parseRefs(s)) {
      if (ref.kind !== 'env') continue;
      serverEnv[ref.name] = opts.withValues && env[ref.name] ? env[ref.name]! : `<value of ${ref.name}>`;
    }
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
