import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO_ROOT, 'dist', 'cli.js');

export interface StdioSession {
  client: Client;
  transport: StdioClientTransport;
  pid: number;
  /** Calls a tool and returns the structured envelope. */
  call(name: string, args: Record<string, unknown>): Promise<Record<string, unknown> & { ok: boolean }>;
  close(): Promise<void>;
}

/** Starts `node dist/cli.js` as an MCP client would, with the given environment. */
export async function startStdio(opts: {
  env: Record<string, string>;
  args?: string[];
  cwd?: string;
  capabilities?: Record<string, unknown>;
}): Promise<StdioSession> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, ...(opts.args ?? [])],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', INFRA_LOG_LEVEL: 'warn', ...opts.env },
    cwd: opts.cwd ?? '/',
    stderr: 'pipe',
  });
  const client = new Client({ name: 'infra-tests', version: '1.0.0' }, { capabilities: opts.capabilities ?? {} });
  await client.connect(transport);
  const pid = transport.pid!;
  return {
    client,
    transport,
    pid,
    call: async (name, args) => {
      const r = await client.callTool({ name, arguments: args }, undefined, { timeout: 120_000 });
      return r.structuredContent as Record<string, unknown> & { ok: boolean };
    },
    close: async () => {
      await client.close().catch(() => undefined);
    },
  };
}
