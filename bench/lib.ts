import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.round((p / 100) * (sorted.length - 1))));
  return sorted[i]!;
}

export function stats(samples: number[]): { p50: number; p95: number; n: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), n: s.length };
}

export const fmt = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);

export async function connectStdio(
  command: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ client: Client; transport: StdioClientTransport; startMs: number }> {
  const t0 = performance.now();
  const transport = new StdioClientTransport({
    command,
    args,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stderr: 'ignore',
  });
  const client = new Client({ name: 'bench', version: '1' });
  await client.connect(transport);
  await client.listTools();
  return { client, transport, startMs: performance.now() - t0 };
}

const ROOT = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');

/**
 * The server as clients run it: src/cli.ts bundled like tools/build.mjs, with its record worker
 * next to it, into node_modules/.cache/<name>/ (not the shared dist/). Returns the cli.js path.
 */
export async function bundleServer(name: string): Promise<string> {
  const { bundle } = (await import(join(ROOT, 'tools', 'build.mjs'))) as {
    bundle: (o: { outfile: string; entry?: string }) => Promise<string>;
  };
  const dir = join(ROOT, 'node_modules', '.cache', name);
  const cli = await bundle({ outfile: join(dir, 'cli.js') });
  await bundle({ outfile: join(dir, 'record-worker.js'), entry: join(ROOT, 'src', 'audit', 'record-worker.ts') });
  return cli;
}

/** Times `fn` n times after a warm-up; returns per-call ms. */
export async function timeCalls(n: number, fn: () => Promise<unknown>, warmup = 50): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

/**
 * Times `base` and `subject` in alternating blocks: each block first makes `warmup` untimed
 * calls (the server that sat idle while the other was measured gets back to its steady state),
 * then times `block` calls. Blocks alternate for `rounds` rounds, so slow drifts of the machine
 * hit both alike. `settle` runs untimed after each subject block: infra lays out the call.json
 * of reads when idle (docs/DECISIONS.md), and that work must not land in the next base block.
 * Returns per-call ms of each.
 */
export async function alternateBlocks(
  total: number,
  base: () => Promise<unknown>,
  subject: () => Promise<unknown>,
  opts: { rounds?: number; warmup?: number; settle?: () => Promise<unknown> } = {},
): Promise<{ bareCalls: number[]; infraCalls: number[] }> {
  const rounds = opts.rounds ?? 4;
  const warmup = opts.warmup ?? 100;
  const block = Math.max(1, Math.round(total / rounds));
  const bareCalls: number[] = [];
  const infraCalls: number[] = [];
  for (let r = 0; r < rounds; r++) {
    bareCalls.push(...(await timeCalls(block, base, warmup)));
    infraCalls.push(...(await timeCalls(block, subject, warmup)));
    await opts.settle?.();
  }
  return { bareCalls, infraCalls };
}

/**
 * Untimed: asks infra to list artifact://calls/, which lays out every call.json it holds back,
 * then has the kernel write back what that dirtied (sync), so neither lands in the next block.
 */
export async function settleInfra(client: Client): Promise<void> {
  await client.callTool({ name: 'artifacts', arguments: { action: 'list', uri: 'artifact://calls/', limit: 1 } });
  spawnSync('sync');
}

export interface Figure {
  name: string;
  value: string;
  baseline: string;
  ratio: number | null;
  target?: string;
}

export function printFigures(title: string, figures: Figure[]): void {
  process.stdout.write(`\n## ${title}\n\n| figure | infra | baseline | ratio | target |\n|---|---|---|---|---|\n`);
  for (const f of figures) {
    process.stdout.write(
      `| ${f.name} | ${f.value} | ${f.baseline} | ${f.ratio === null ? '' : `${f.ratio.toFixed(2)}×`} | ${f.target ?? ''} |\n`,
    );
  }
}
