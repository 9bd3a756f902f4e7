/**
 * Where a psql `select 1` call waits (bench/psql.ts, issue 4; docs/DECISIONS.md, "The event loop
 * polls while a call is in flight"): the time from wake to running of each process in the chain,
 * read from the kernel's scheduler events (`perf record` of sched_waking and sched_switch on
 * every CPU) while 1,000 calls run, for the same three subjects as bench/psql.ts:
 *
 *   raw    – `select 1` on a raw pg connection (this process ↔ one Postgres backend)
 *   sdk    – a bare MCP SDK stdio server's echo tool (this process ↔ bench/bare-server.mjs)
 *   infra  – psql.query `select 1` through infra's stdio server (this process ↔ infra ↔ backend)
 *
 * For each party it prints the wakes per call (a party that is still running, or polling, when
 * its message arrives is not woken), where they ran (on the waker's own CPU, or on another CPU
 * that was idle or running something else), and the wake-to-run time (p50 and mean). "chain's
 * wake→run per call" adds up, call by call, the wake-to-run of the client, the server and
 * Postgres: time in the round trip that is none of theirs to spend. Recording slows every
 * process, the baselines more than infra, so the call times printed here are not bench/psql.ts's.
 *
 * Needs Linux, perf (Debian: linux-perf) and the right to record scheduler tracepoints on every
 * CPU (root, or kernel.perf_event_paranoid ≤ -1); otherwise it says which is missing and exits 0.
 *
 * Run: node --import tsx bench/psql-wakes.ts [calls]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startPostgres } from '../test/fixtures/postgres.js';
import { makeProject } from '../test/helpers/project.js';
import { bundleServer, connectStdio, percentile, settleInfra } from './lib.js';

const N = Number(process.argv[2] ?? 1000);
const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
/** A wake's start (sched_waking) and the switch that runs the woken thread (sched_switch). */
const EVENTS = ['sched:sched_waking', 'sched:sched_switch'];

function unavailable(dir: string): string | undefined {
  if (process.platform !== 'linux') return 'it needs Linux (perf and scheduler tracepoints)';
  const probe = spawnSync(
    'perf',
    ['record', '-q', '-a', ...EVENTS.flatMap((e) => ['-e', e]), '-o', join(dir, 'probe.data'), '--', 'true'],
    {
      encoding: 'utf8',
    },
  );
  if (probe.error) return 'perf is not installed (Debian: apt-get install linux-perf)';
  if (probe.status !== 0) {
    const said = probe.stderr.trim().split('\n')[0] || `exit ${probe.status}`;
    return `perf cannot record scheduler events on every CPU here (${said}); it needs root, or kernel.perf_event_paranoid ≤ -1`;
  }
  return undefined;
}

/** Records scheduler events on every CPU while `work` runs. */
async function recordWhile(file: string, work: () => Promise<void>): Promise<void> {
  const rec = spawn('perf', ['record', '-q', '-k', 'monotonic', '-a', ...EVENTS.flatMap((e) => ['-e', e]), '-o', file], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => rec.once('exit', () => resolve()));
  await new Promise((r) => setTimeout(r, 1000)); // perf is recording
  try {
    await work();
  } finally {
    rec.kill('SIGINT');
    await exited;
  }
}

interface Wake {
  /** When the wake began (sched_waking). */
  t: number;
  wakerCpu: number;
  /** What each CPU ran at that moment (thread id; 0 = idle). */
  running: Map<number, number>;
}

interface Landing {
  party: string;
  /** When the wake began, in seconds of CLOCK_MONOTONIC (process.hrtime's clock). */
  t: number;
  us: number;
  where: 'waker' | 'idle' | 'busy';
}

/** Wake-to-run of the given threads, from `perf script` of a recording. */
function landings(file: string, partyOf: (tid: number, comm: string) => string | undefined): Landing[] {
  const out = spawnSync('perf', ['script', '-i', file, '-F', 'cpu,time,event,trace'], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const running = new Map<number, number>();
  const pending = new Map<number, Wake & { party: string }>();
  const result: Landing[] = [];
  for (const line of out.stdout.split('\n')) {
    const m = /^\s*\[(\d+)\]\s+([\d.]+):\s+sched:(sched_\w+):\s+(.*)$/.exec(line);
    if (!m) continue;
    const cpu = Number(m[1]);
    const t = Number(m[2]);
    const ev = m[3]!;
    const rest = m[4]!;
    if (ev === 'sched_waking') {
      const w = /comm=(.*) pid=(\d+) prio=/.exec(rest);
      if (!w) continue;
      const party = partyOf(Number(w[2]), w[1]!);
      if (party) pending.set(Number(w[2]), { t, wakerCpu: cpu, running: new Map(running), party });
    } else if (ev === 'sched_switch') {
      const s = /==> next_comm=(.*) next_pid=(\d+)/.exec(rest);
      if (!s) continue;
      const tid = Number(s[2]);
      running.set(cpu, tid);
      const w = pending.get(tid);
      if (!w) continue;
      pending.delete(tid);
      const before = w.running.get(cpu) ?? 0;
      result.push({ party: w.party, t: w.t, us: (t - w.t) * 1e6, where: cpu === w.wakerCpu ? 'waker' : before === 0 ? 'idle' : 'busy' });
    }
  }
  return result;
}

function threadsOf(pid: number): Set<number> {
  try {
    return new Set(readdirSync(`/proc/${pid}/task`).map(Number));
  } catch {
    return new Set([pid]);
  }
}

const fmt = (us: number): string => `${us.toFixed(0)} µs`;

/** Per call: the wake-to-run of the chain's parties whose wake began during that call. */
function waitingPerCall(windows: [number, number][], ls: Landing[], chain: string[]): number[] {
  const sums = windows.map(() => 0);
  const wakes = ls.filter((l) => chain.includes(l.party)).sort((a, b) => a.t - b.t);
  let i = 0;
  for (const l of wakes) {
    while (i < windows.length && windows[i]![1] < l.t) i++;
    if (i < windows.length && windows[i]![0] <= l.t) sums[i]! += l.us;
  }
  return sums.sort((a, b) => a - b);
}

function table(subject: string, windows: [number, number][], ls: Landing[], chain: string[]): string[] {
  const rows: string[] = [];
  const calls = windows.length;
  const order = (p: string): number => (chain.includes(p) ? chain.indexOf(p) : chain.length);
  const parties = [...new Set(ls.map((l) => l.party))].sort((a, b) => order(a) - order(b));
  for (const party of parties) {
    const mine = ls.filter((l) => l.party === party);
    const us = mine.map((l) => l.us).sort((a, b) => a - b);
    const mean = us.reduce((s, x) => s + x, 0) / us.length;
    const share = (w: Landing['where']): string => `${((100 * mine.filter((l) => l.where === w).length) / mine.length).toFixed(0)}%`;
    const perCall = mine.length / calls;
    rows.push(
      `| ${subject} | ${party} | ${perCall.toFixed(2)} | ${share('waker')} | ${share('idle')} | ${share('busy')} | ${fmt(percentile(us, 50))} | ${fmt(mean)} |`,
    );
  }
  const waiting = waitingPerCall(windows, ls, chain);
  const durations = windows.map(([a, b]) => (b - a) * 1e6).sort((a, b) => a - b);
  rows.push(
    `| ${subject} | **chain's wake→run per call** | | | | | **${fmt(percentile(waiting, 50))}** | **${fmt(waiting.reduce((s, x) => s + x, 0) / calls)}** |`,
    `| ${subject} | call (under recording) | | | | | ${fmt(percentile(durations, 50))} | ${fmt(durations.reduce((s, x) => s + x, 0) / calls)} |`,
  );
  return rows;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'infra-wakes-'));
  try {
    const why = unavailable(dir);
    if (why) {
      console.log(`psql wakes bench skipped: ${why}`);
      return;
    }
    const cluster = await startPostgres({ tables: false });
    const cli = await bundleServer('infra-bench');
    const profiles = { 'profiles.json': { db: { type: 'postgres', url: '${env:BENCH_DB_URL}', max_rows: 1000 } } };
    const infra = await connectStdio(process.execPath, [cli], {
      MCP_PROFILES_DIR: makeProject(profiles).infraDir,
      BENCH_DB_URL: cluster.url('reader'),
      INFRA_LOG_LEVEL: 'warn',
    });
    const bare = await connectStdio(process.execPath, [join(root, 'bench', 'bare-server.mjs')], {});
    const pool = new pg.Pool({ connectionString: cluster.url('reader'), max: 1 });
    try {
      const subjects: { name: string; server?: number; call: () => Promise<unknown> }[] = [
        { name: 'raw', call: () => pool.query('select 1') },
        { name: 'sdk', server: bare.transport.pid!, call: () => bare.client.callTool({ name: 'echo', arguments: { text: 'x' } }) },
        {
          name: 'infra',
          server: infra.transport.pid!,
          call: async () => {
            const r = await infra.client.callTool({ name: 'psql', arguments: { action: 'query', profile: 'db', sql: 'select 1' } });
            if (r.isError) throw new Error(`psql.query failed: ${JSON.stringify(r.content)}`);
          },
        },
      ];
      for (const s of subjects) for (let i = 0; i < 2000; i++) await s.call();
      await settleInfra(infra.client);
      const lines = [
        `## psql select 1: wake to running, per party (${N} calls each, recorded with perf)`,
        '',
        "| subject | party | wakes per call | ran on the waker's CPU | on an idle CPU | on a busy CPU | wake→run p50 | mean |",
        '|---|---|---|---|---|---|---|---|',
      ];
      for (const s of subjects) {
        const file = join(dir, `${s.name}.data`);
        const windows: [number, number][] = [];
        const now = (): number => Number(process.hrtime.bigint()) / 1e9;
        await recordWhile(file, async () => {
          for (let i = 0; i < N; i++) {
            const t = now();
            await s.call();
            windows.push([t, now()]);
          }
        });
        await settleInfra(infra.client);
        const serverThreads = s.server ? threadsOf(s.server) : new Set<number>();
        const partyOf = (tid: number, comm: string): string | undefined => {
          if (tid === process.pid) return 'client';
          if (s.server && tid === s.server) return 'server';
          if (serverThreads.has(tid)) return "server's other threads";
          if (comm === 'postgres' && s.name !== 'sdk') return 'postgres';
          return undefined;
        };
        lines.push(...table(s.name, windows, landings(file, partyOf), ['client', 'server', 'postgres']));
      }
      console.log(lines.join('\n'));
    } finally {
      await infra.client.close();
      await bare.client.close();
      await pool.end();
      cluster.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
