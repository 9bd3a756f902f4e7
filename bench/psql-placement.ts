/**
 * Why the psql `select 1` ratio (bench/psql.ts, issue 4) swings from run to run on a small VM:
 * the same three subjects with every process pinned to a CPU (taskset), one placement after
 * another, in alternating rounds.
 *
 *   raw    – `select 1` on a raw pg connection (this process ↔ one Postgres backend)
 *   sdk    – a bare MCP SDK stdio server's echo tool (this process ↔ bench/bare-server.mjs)
 *   infra  – psql.query `select 1` through infra's stdio server (this process ↔ infra ↔ backend)
 *   no poll – the same with INFRA_BUSY_POLL_US=0 (src/server/busy-poll.ts), in its own project
 *
 * Placements name the CPU of the client (this process, C), of both stdio servers (S) and of the
 * cluster (postmaster and every backend, P); "free" leaves it to the scheduler. A round trip
 * between two processes on one CPU is a context switch; across CPUs the sleeper's CPU must be
 * woken, which on a virtual machine costs tens of µs per hop. A free run lands in one placement
 * or another, and the baseline (two separate two-party round trips) gains more from sharing a
 * CPU than infra's three-party chain does.
 *
 * Needs Linux, taskset (util-linux), two CPUs, and the right to set the affinity of the cluster's
 * processes (root, or the same user); otherwise it says which is missing and exits 0.
 *
 * Run: node --import tsx bench/psql-placement.ts [calls per block]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import pg from 'pg';
import { startPostgres } from '../test/fixtures/postgres.js';
import { makeProject } from '../test/helpers/project.js';
import { bundleServer, connectStdio, settleInfra, stats, timeCalls } from './lib.js';

const N = Number(process.argv[2] ?? 300);
const ROUNDS = Number(process.env.BENCH_PLACEMENT_ROUNDS ?? 4);
const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');

/** [name, client CPUs, servers' CPUs, cluster's CPUs] */
const PLACEMENTS: [string, string, string, string][] = [
  ['free', '0,1', '0,1', '0,1'],
  ['C0 S0 P0 (all on one CPU)', '0', '0', '0'],
  ['C0 S1 P0 (client with Postgres)', '0', '1', '0'],
  ['C0 S0 P1 (client with the servers)', '0', '0', '1'],
  ['C0 S1 P1 (servers with Postgres)', '0', '1', '1'],
];

function unavailable(): string | undefined {
  if (process.platform !== 'linux') return 'placement needs Linux (taskset)';
  if (cpus().length < 2) return 'placement needs two CPUs';
  if (spawnSync('taskset', ['-V']).error) return 'taskset (util-linux) is not installed';
  return undefined;
}

function pin(pid: number, cpuList: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpuList, String(pid)], { stdio: 'ignore' });
}

/** The postmaster and its children (backends, background workers): new backends inherit its affinity. */
function clusterPids(dataDir: string): number[] {
  const postmaster = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const children = spawnSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).stdout.trim();
  return [postmaster, ...children.split('\n').filter(Boolean).map(Number)];
}

async function main(): Promise<void> {
  const why = unavailable();
  if (why) {
    console.log(`psql placement bench skipped: ${why}`);
    return;
  }
  const cluster = await startPostgres({ tables: false });
  try {
    const dataDir = join(cluster.dir, 'data');
    try {
      for (const pid of clusterPids(dataDir)) pin(pid, '0,1');
    } catch (e) {
      console.log(
        `psql placement bench skipped: cannot set the affinity of the cluster's processes (${(e as Error).message.split('\n')[0]})`,
      );
      return;
    }
    const cli = await bundleServer('infra-bench');
    const project = makeProject({ 'profiles.json': { db: { type: 'postgres', url: '${env:BENCH_DB_URL}', max_rows: 1000 } } });
    const raw = new pg.Client({ connectionString: cluster.url('reader') });
    await raw.connect();
    const bare = await connectStdio(process.execPath, [join(root, 'bench', 'bare-server.mjs')], {});
    const infra = await connectStdio(process.execPath, [cli], {
      MCP_PROFILES_DIR: project.infraDir,
      BENCH_DB_URL: cluster.url('reader'),
      INFRA_LOG_LEVEL: 'warn',
    });
    const project2 = makeProject({ 'profiles.json': { db: { type: 'postgres', url: '${env:BENCH_DB_URL}', max_rows: 1000 } } });
    const noPoll = await connectStdio(process.execPath, [cli], {
      MCP_PROFILES_DIR: project2.infraDir,
      BENCH_DB_URL: cluster.url('reader'),
      INFRA_LOG_LEVEL: 'warn',
      INFRA_BUSY_POLL_US: '0',
    });
    const psql = async (client: Client): Promise<void> => {
      const r = await client.callTool({ name: 'psql', arguments: { action: 'query', profile: 'db', sql: 'select 1' } });
      if (r.isError) throw new Error(JSON.stringify(r.structuredContent));
    };
    const subjects: [string, () => Promise<unknown>][] = [
      ['raw', () => raw.query('select 1')],
      ['sdk', () => bare.client.callTool({ name: 'echo', arguments: { text: 'x' } })],
      ['infra', () => psql(infra.client)],
      ['no poll', () => psql(noPoll.client)],
    ];
    for (const [, f] of subjects) for (let i = 0; i < 1000; i++) await f();

    console.log(
      `psql placement bench: select 1, ${ROUNDS} rounds × ${N} calls per subject and placement, ${cpus().length} CPUs, node ${process.version}`,
    );
    const samples = new Map<string, number[]>();
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, c, s, p] of PLACEMENTS) {
        pin(process.pid, c);
        pin(bare.transport.pid!, s);
        pin(infra.transport.pid!, s);
        pin(noPoll.transport.pid!, s);
        for (const pid of clusterPids(dataDir)) pin(pid, p);
        for (const [subject, f] of subjects) {
          const key = `${name}\0${subject}`;
          samples.set(key, [...(samples.get(key) ?? []), ...(await timeCalls(N, f, 50))]);
          await settleInfra(infra.client);
          await settleInfra(noPoll.client);
          await new Promise((z) => setTimeout(z, 100));
        }
      }
    }
    pin(process.pid, '0-' + String(cpus().length - 1));
    console.log('');
    console.log('| placement | raw pg p50 | bare SDK p50 | infra p50 | infra / (raw + sdk) | infra, polling off | its ratio |');
    console.log('|---|---|---|---|---|---|---|');
    for (const [name] of PLACEMENTS) {
      const [rawP, sdkP, infraP, offP] = subjects.map(([subject]) => stats(samples.get(`${name}\0${subject}`)!).p50 * 1000);
      const base = rawP! + sdkP!;
      console.log(
        `| ${name} | ${rawP!.toFixed(0)} µs | ${sdkP!.toFixed(0)} µs | ${infraP!.toFixed(0)} µs | ${(infraP! / base).toFixed(2)}× | ${offP!.toFixed(0)} µs | ${(offP! / base).toFixed(2)}× |`,
      );
    }
    await infra.client.close();
    await noPoll.client.close();
    project2.cleanup();
    await bare.client.close();
    await raw.end();
    project.cleanup();
  } finally {
    cluster.stop();
  }
}

await main();
