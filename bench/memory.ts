// Memory under a 1 GiB output (issue 11): `local exec` writing 1 GiB through the stdio server
// (INFRA_UNSAFE_LOCAL=1, a temp project): wall time and the server's peak RSS (VmHWM), against
// the same command piped into sha256sum (the floor for producing and hashing the bytes) and the
// server's own peak RSS right after start-up.
// Run: node --import tsx bench/memory.ts [bytes]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectStdio, fmt, printFigures, type Figure } from './lib.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function peakMb(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

export async function memoryBench(bytes = Number(process.env.BENCH_MEMORY_BYTES ?? 1024 ** 3)): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'infra-bench-mem-'));
  const cmd = `seq -f "%012g line of output" 1 ${Math.ceil(bytes / 25) + 10} | head -c ${bytes}`;
  try {
    const b0 = performance.now();
    const base = spawnSync('sh', ['-c', `${cmd} | sha256sum`], { encoding: 'utf8' });
    const baseMs = performance.now() - b0;
    const baseSha = base.stdout.split(' ')[0];

    const s = await connectStdio(process.execPath, [join(root, 'dist', 'cli.js')], {
      MCP_PROFILES_DIR: join(dir, '.infra'),
      INFRA_UNSAFE_LOCAL: '1',
      INFRA_LOG_LEVEL: 'error',
    });
    const pid = s.transport.pid!;
    await s.client.callTool({ name: 'state', arguments: { action: 'get', key: 'warm' } });
    const idlePeak = peakMb(pid);
    const t0 = performance.now();
    const r = await s.client.callTool(
      { name: 'local', arguments: { action: 'exec', command: cmd, shell: true, max_bytes: 4096, timeout_ms: 600_000 } },
      undefined,
      { timeout: 620_000 },
    );
    const ms = performance.now() - t0;
    const peak = peakMb(pid);
    await s.client.close();
    const res = (r.structuredContent as { result?: { stdout_bytes: number; stdout_sha256: string } }).result;
    if (!res || res.stdout_bytes !== bytes || res.stdout_sha256 !== baseSha) {
      throw new Error(`the 1 GiB exec did not store every byte: ${JSON.stringify(r.structuredContent).slice(0, 400)}`);
    }
    const gib = (bytes / 1024 ** 3).toFixed(2);
    const figures: Figure[] = [
      {
        name: `local exec ${gib} GiB: wall time`,
        value: fmt(ms),
        baseline: `${fmt(baseMs)} (sh, piped into sha256sum)`,
        ratio: ms / baseMs,
      },
      {
        name: `local exec ${gib} GiB: server peak RSS`,
        value: `${peak.toFixed(0)} MB`,
        baseline: `${idlePeak.toFixed(0)} MB after start-up`,
        ratio: peak / idlePeak,
        target: '< 200 MB',
      },
      {
        name: `local exec ${gib} GiB: throughput`,
        value: `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`,
        baseline: `${(bytes / 1e6 / (baseMs / 1000)).toFixed(0)} MB/s`,
        ratio: baseMs / ms,
      },
    ];
    printFigures(`memory under a ${gib} GiB output (stdio server, sha256 of every byte checked)`, figures);
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await memoryBench(process.argv[2] ? Number(process.argv[2]) : undefined);
