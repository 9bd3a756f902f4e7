// The whole bench suite in one command (`npm run bench`, after a build): every bench of the
// issues so far, each printing its figures side by side with a baseline measured in the same
// run, one after the other (never in parallel, so they do not disturb each other). The output
// is also written to bench/results/<YYYY-MM-DD>-<hostname|ci>.md with the machine and its load.
//
//   foundation  startup to first tools/list and `state get` vs a bare SDK echo server
//   ssh         warm/cold exec vs OpenSSH (ControlMaster / plain)
//   psql        select 1 / pk lookup vs raw pg; 1,000,000-row export vs psql \copy
//   placement   psql select 1 vs raw pg + bare SDK with each process pinned to a CPU (why the
//               select 1 ratio swings between runs on a small VM)
//   wakes       psql select 1, raw pg and bare SDK: time from wake to running of each process in
//               the chain, from the scheduler's events (perf; skipped without it)
//   http        request vs raw undici (and the bare SDK floor)
//   audit       audit list / verify on 1,000,000 rows vs raw SQLite; state get during verify
//   memory      1 GiB local exec through the stdio server: peak RSS and time vs sh | sha256sum
//
// BENCH_ONLY=audit,memory runs a subset; BENCH_QUICK=1 shrinks the sizes (for a smoke run).
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.env.BENCH_QUICK === '1';

interface Bench {
  name: string;
  file: string;
  args: string[];
  env?: Record<string, string>;
}

const BENCHES: Bench[] = [
  { name: 'foundation', file: 'foundation.ts', args: [], env: quick ? { BENCH_CALLS: '500', BENCH_STARTS: '3' } : {} },
  { name: 'ssh', file: 'ssh.ts', args: quick ? ['--warm', '50', '--cold', '5'] : [] },
  { name: 'psql', file: 'psql.ts', args: quick ? ['300'] : [] },
  { name: 'placement', file: 'psql-placement.ts', args: quick ? ['100'] : [], env: quick ? { BENCH_PLACEMENT_ROUNDS: '1' } : {} },
  { name: 'wakes', file: 'psql-wakes.ts', args: quick ? ['200'] : [] },
  { name: 'http', file: 'http.ts', args: quick ? ['300'] : [] },
  { name: 'audit', file: 'audit.ts', args: quick ? ['100000'] : [] },
  { name: 'memory', file: 'memory.ts', args: quick ? ['134217728'] : [] },
];

function run(b: Bench): Promise<{ out: string; code: number | null; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'bench', b.file), ...b.args], {
      cwd: root,
      env: { ...process.env, INFRA_LOG_LEVEL: 'error', ...b.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      process.stdout.write(d);
    });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      err = (err + d).slice(-4000);
      process.stderr.write(d);
    });
    child.on('close', (code) =>
      resolve({ out: code === 0 ? out : `${out}\n\nFAILED (exit ${code}):\n${err}`, code, ms: performance.now() - t0 }),
    );
  });
}

/** A bench's output as markdown: its tables as they are, plain text lines fenced. */
function asMarkdown(text: string): string {
  const blocks: string[] = [];
  let plain: string[] = [];
  const flush = (): void => {
    while (plain.length && !plain[0]!.trim()) plain.shift();
    while (plain.length && !plain[plain.length - 1]!.trim()) plain.pop();
    if (plain.length) blocks.push('```\n' + plain.join('\n') + '\n```');
    plain = [];
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('|') || line.startsWith('## ')) {
      flush();
      blocks.push(line.startsWith('## ') ? `\n### ${line.slice(3)}\n` : line);
    } else plain.push(line);
  }
  flush();
  return blocks.join('\n').replace(/\n{3,}/g, '\n\n');
}

async function main(): Promise<void> {
  const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
  const selected = BENCHES.filter((b) => !only || only.includes(b.name));
  const uptimeBefore = spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
  const load0 = loadavg()[0]!;
  const started = new Date();
  const sections: string[] = [];
  let failed = 0;
  for (const b of selected) {
    process.stdout.write(`\n# ${b.name}\n`);
    const r = await run(b);
    if (r.code !== 0) failed++;
    sections.push(`## ${b.name} (${(r.ms / 1000).toFixed(0)} s)\n\n${asMarkdown(r.out)}\n`);
  }
  const uptimeAfter = spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
  const cores = cpus();
  const day = started.toISOString().slice(0, 10);
  const host = process.env.CI ? 'ci' : hostname().replace(/[^A-Za-z0-9._-]/g, '_') || 'host';
  const busy = Math.max(load0, loadavg()[0]!) > cores.length;
  const doc = [
    `# Bench results ${day} (${host})`,
    '',
    `- date: ${started.toISOString()}`,
    `- machine: ${cores.length} cores (${cores[0]?.model ?? 'unknown'}), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB memory, Node ${process.versions.node}, ${process.platform}-${process.arch}`,
    `- command: \`npm run bench\`${quick ? ' (BENCH_QUICK=1)' : ''}${only ? ` (BENCH_ONLY=${only.join(',')})` : ''}`,
    `- uptime before: \`${uptimeBefore}\``,
    `- uptime after: \`${uptimeAfter}\``,
    busy
      ? `- note: the load average was above the core count: other work (other engineers' test suites) ran on this machine during the run, so absolute figures are noisy; the ratios compare against baselines measured in the same run, under the same load.`
      : '- note: the machine was otherwise quiet (load average below the core count).',
    '',
    'Each figure is printed beside its baseline from the same run; ratio = infra / baseline (for throughput, baseline / infra).',
    '',
    ...sections,
  ].join('\n');
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${day}-${host}.md`);
  writeFileSync(file, doc.replace(/\n{3,}/g, '\n\n'));
  process.stdout.write(`\nwrote ${file}${failed ? `; ${failed} bench(es) failed` : ''}\n`);
  if (failed) process.exit(1);
}

await main();
