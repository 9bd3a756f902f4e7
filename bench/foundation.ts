// Foundation figures (issue 2), each against a bare SDK stdio server with one echo tool measured
// in the same run: startup to first tools/list, tools/list bytes, p50/p95 of `state get`; the
// same for the single-file binary (tools/release) when build/infra-linux-x64 exists.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { alternateBlocks, connectStdio, fmt, printFigures, settleInfra, stats, timeCalls } from './lib.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const N = Number(process.env.BENCH_CALLS ?? 4000);
const STARTS = Number(process.env.BENCH_STARTS ?? 10);

async function startupMs(command: string, args: string[], env: Record<string, string>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    const s = await connectStdio(command, args, env);
    out.push(s.startMs);
    await s.client.close();
  }
  return out;
}

/** `state get` on infra vs the bare server's echo, each in its steady state, in alternating blocks (bench/lib.ts alternateBlocks). */
async function stateGetVsEcho(bare: Client, infra: Client): Promise<{ bc: ReturnType<typeof stats>; ic: ReturnType<typeof stats> }> {
  await infra.callTool({ name: 'state', arguments: { action: 'set', key: 'bench', value: 'v' } });
  const { bareCalls, infraCalls } = await alternateBlocks(
    N,
    () => bare.callTool({ name: 'echo', arguments: { text: 'v' } }),
    () => infra.callTool({ name: 'state', arguments: { action: 'get', key: 'bench' } }),
    { settle: () => settleInfra(infra) },
  );
  return { bc: stats(bareCalls), ic: stats(infraCalls) };
}

export async function foundationBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'infra-bench-'));
  const infraEnv = { MCP_PROFILES_DIR: join(dir, '.infra'), INFRA_LOG_LEVEL: 'error' };
  const cli = join(root, 'dist', 'cli.js');
  const bare = join(root, 'bench', 'bare-server.mjs');
  try {
    const bareStart = stats(await startupMs(process.execPath, [bare], {}));
    const infraStart = stats(await startupMs(process.execPath, [cli], infraEnv));

    const b = await connectStdio(process.execPath, [bare], {});
    const i = await connectStdio(process.execPath, [cli], infraEnv);
    const bareList = JSON.stringify((await b.client.listTools()).tools).length;
    const infraList = JSON.stringify((await i.client.listTools()).tools).length;
    const { bc, ic } = await stateGetVsEcho(b.client, i.client);
    // sustained: one long run each, past the record journal's 4,096-record bound, so infra lays
    // out call.json files while it answers (what a burst does not show)
    const SUSTAINED = Number(process.env.BENCH_SUSTAINED ?? 6000);
    const bs = stats(await timeCalls(SUSTAINED, () => b.client.callTool({ name: 'echo', arguments: { text: 'v' } })));
    const is = stats(await timeCalls(SUSTAINED, () => i.client.callTool({ name: 'state', arguments: { action: 'get', key: 'bench' } })));
    await b.client.close();
    await i.client.close();
    printFigures(`foundation (${N} calls, ${STARTS} starts, Node ${process.versions.node})`, [
      {
        name: 'startup to first tools/list (p50)',
        value: fmt(infraStart.p50),
        baseline: fmt(bareStart.p50),
        ratio: infraStart.p50 / bareStart.p50,
      },
      { name: 'tools/list bytes', value: String(infraList), baseline: String(bareList), ratio: null },
      { name: '`state get` p50 vs bare echo', value: fmt(ic.p50), baseline: fmt(bc.p50), ratio: ic.p50 / bc.p50, target: '≤ 1.5×' },
      { name: '`state get` p95 vs bare echo', value: fmt(ic.p95), baseline: fmt(bc.p95), ratio: ic.p95 / bc.p95 },
      {
        name: `\`state get\` p50, ${SUSTAINED.toLocaleString('en')} in a row (sustained)`,
        value: fmt(is.p50),
        baseline: fmt(bs.p50),
        ratio: is.p50 / bs.p50,
      },
      {
        name: `\`state get\` p95, ${SUSTAINED.toLocaleString('en')} in a row (sustained)`,
        value: fmt(is.p95),
        baseline: fmt(bs.p95),
        ratio: is.p95 / bs.p95,
      },
    ]);
    await binaryBench(bare, bareStart.p50, join(dir, 'binary'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The single-file binary as a client runs it (`"command": ".../infra-linux-x64", "args": []`):
 * startup to first tools/list and `state get` against the bare SDK echo server, in alternating
 * blocks. It records reads on its main thread (no record worker: docs/DECISIONS.md).
 */
async function binaryBench(bare: string, bareStartP50: number, projectDir: string): Promise<void> {
  const binary = process.env.BENCH_BINARY ?? join(root, 'build', 'infra-linux-x64');
  if (!existsSync(binary)) {
    process.stdout.write(`\nsingle-file binary: ${binary} not built (tools/release builds it); not measured\n`);
    return;
  }
  const env = { MCP_PROFILES_DIR: join(projectDir, '.infra'), INFRA_LOG_LEVEL: 'error' };
  const start = stats(await startupMs(binary, [], env));
  const b = await connectStdio(process.execPath, [bare], {});
  const i = await connectStdio(binary, [], env);
  try {
    const { bc, ic } = await stateGetVsEcho(b.client, i.client);
    printFigures(`single-file binary (${binary.replace(root + '/', '')}, ${N} calls, ${STARTS} starts)`, [
      { name: 'startup to first tools/list (p50)', value: fmt(start.p50), baseline: fmt(bareStartP50), ratio: start.p50 / bareStartP50 },
      { name: '`state get` p50 vs bare echo', value: fmt(ic.p50), baseline: fmt(bc.p50), ratio: ic.p50 / bc.p50, target: '≤ 1.5×' },
      { name: '`state get` p95 vs bare echo', value: fmt(ic.p95), baseline: fmt(bc.p95), ratio: ic.p95 / bc.p95 },
    ]);
  } finally {
    await b.client.close();
    await i.client.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await foundationBench();
