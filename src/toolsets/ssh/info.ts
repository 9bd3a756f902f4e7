import { PassThrough } from 'node:stream';
import { z } from 'zod';
import { sshExec } from '../../adapters/ssh-exec.js';
import { defineAction } from '../../core/define-action.js';
import { ToolError } from '../../core/errors.js';
import { targetArg } from './exec.js';
import { endpointFor, gateTarget, pool } from './resolve.js';

/** One exec of a POSIX script; sections are parsed here. Linux first, other systems give nulls. */
const SCRIPT = [
  'echo @@hostname; hostname 2>/dev/null || uname -n',
  'echo @@uname; uname -s; uname -r; uname -m',
  'echo @@os-release; cat /etc/os-release 2>/dev/null',
  'echo @@uptime; cat /proc/uptime 2>/dev/null',
  'echo @@loadavg; cat /proc/loadavg 2>/dev/null',
  'echo @@nproc; nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null',
  'echo @@meminfo; cat /proc/meminfo 2>/dev/null',
  'echo @@df; df -PkT 2>/dev/null || df -Pk 2>/dev/null',
  'echo @@end',
].join('\n');

const PSEUDO_FS = new Set(['tmpfs', 'devtmpfs', 'squashfs', 'efivarfs', 'proc', 'sysfs', 'devpts', 'cgroup', 'cgroup2', 'ramfs']);

export interface DiskInfo {
  filesystem: string;
  type: string | null;
  size_bytes: number;
  used_bytes: number;
  available_bytes: number;
  use_percent: number | null;
  mount: string;
}

export interface InfoResult {
  hostname: string | null;
  os: { id: string | null; name: string | null; version: string | null; pretty_name: string | null };
  kernel: { name: string | null; release: string | null; machine: string | null };
  uptime_s: number | null;
  load: { '1m': number; '5m': number; '15m': number } | null;
  cpus: number | null;
  memory: { total_bytes: number; available_bytes: number; used_bytes: number; swap_total_bytes: number; swap_free_bytes: number } | null;
  disks: DiskInfo[];
}

function sections(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of text.split('\n')) {
    const m = /^@@([a-z-]+)$/.exec(line.trim());
    if (m) {
      cur = [];
      out.set(m[1]!, cur);
    } else cur?.push(line);
  }
  return out;
}

const num = (s: string | undefined): number | null => {
  const n = Number(s);
  return s !== undefined && s !== '' && Number.isFinite(n) ? n : null;
};

export function parseInfo(text: string): InfoResult {
  const s = sections(text);
  const get = (k: string): string[] => (s.get(k) ?? []).filter((l) => l.trim() !== '');
  const osr = new Map<string, string>();
  for (const l of get('os-release')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(l.trim());
    if (m) osr.set(m[1]!, m[2]!.replace(/^"(.*)"$/, '$1'));
  }
  const uname = get('uname');
  const load = (get('loadavg')[0] ?? '').split(/\s+/).slice(0, 3).map(Number);
  const mem = new Map<string, number>();
  for (const l of get('meminfo')) {
    const m = /^(\w+):\s+(\d+)\s*kB/.exec(l);
    if (m) mem.set(m[1]!, Number(m[2]) * 1024);
  }
  const disks: DiskInfo[] = [];
  const dfLines = get('df');
  const typed = /\bType\b/.test(dfLines[0] ?? '');
  for (const l of dfLines.slice(1)) {
    const f = l.trim().split(/\s+/);
    const [fs, type, size, used, avail, pct, ...mount] = typed ? f : [f[0], null, ...f.slice(1)];
    if (!fs || size === undefined || (type && PSEUDO_FS.has(type))) continue;
    disks.push({
      filesystem: fs,
      type: type ?? null,
      size_bytes: (num(size ?? undefined) ?? 0) * 1024,
      used_bytes: (num(used ?? undefined) ?? 0) * 1024,
      available_bytes: (num(avail ?? undefined) ?? 0) * 1024,
      use_percent: num((pct ?? '').replace('%', '')),
      mount: mount.join(' '),
    });
  }
  const total = mem.get('MemTotal');
  const available = mem.get('MemAvailable') ?? mem.get('MemFree');
  return {
    hostname: get('hostname')[0]?.trim() ?? null,
    os: {
      id: osr.get('ID') ?? null,
      name: osr.get('NAME') ?? null,
      version: osr.get('VERSION_ID') ?? null,
      pretty_name: osr.get('PRETTY_NAME') ?? null,
    },
    kernel: { name: uname[0]?.trim() ?? null, release: uname[1]?.trim() ?? null, machine: uname[2]?.trim() ?? null },
    uptime_s: num((get('uptime')[0] ?? '').split(/\s+/)[0]),
    load: load.length === 3 && load.every(Number.isFinite) ? { '1m': load[0]!, '5m': load[1]!, '15m': load[2]! } : null,
    cpus: num(get('nproc')[0]?.trim()),
    memory:
      total !== undefined && available !== undefined
        ? {
            total_bytes: total,
            available_bytes: available,
            used_bytes: total - available,
            swap_total_bytes: mem.get('SwapTotal') ?? 0,
            swap_free_bytes: mem.get('SwapFree') ?? 0,
          }
        : null,
    disks,
  };
}

export const infoAction = defineAction({
  tool: 'ssh',
  action: 'info',
  effect: 'read',
  description: 'System facts of a target: OS, kernel, uptime, load, CPUs, memory and disks (one exec of a read-only script).',
  input: z.strictObject({ target: targetArg }),
  target: (a) => a.target,
  gate: (a, services) => gateTarget(a.target, services),
  summarize: (r: InfoResult) =>
    `${r.hostname ?? '?'}: ${r.os.pretty_name ?? r.kernel.name ?? '?'}, up ${r.uptime_s === null ? '?' : Math.round(r.uptime_s)} s`,
  handler: async (ctx, a): Promise<InfoResult> => {
    const ep = endpointFor(ctx, a.target);
    const out = ctx.sink('stdout', { inlineBytes: 0 });
    const err = ctx.sink('stderr', { inlineBytes: 0 });
    // keep a private copy to parse (bounded: the script's output is small)
    let text = '';
    const tee = new PassThrough();
    tee.on('data', (c: Buffer) => {
      if (text.length < 1_000_000) text += c.toString('utf8');
    });
    tee.pipe(out);
    try {
      const r = await sshExec(pool(ctx.services), ep, { command: SCRIPT, stdout: tee, stderr: err, signal: ctx.signal, log: ctx.log });
      if (r.exit_code !== 0 && !text.includes('@@end')) {
        throw new ToolError('UPSTREAM_ERROR', `${a.target}: the info script exited with ${r.exit_code ?? r.signal}`, {
          hint: `see ${ctx.artifactUri('stderr')}`,
        });
      }
      return parseInfo(text);
    } finally {
      await Promise.all([out.done(), err.done()]).catch(() => undefined);
    }
  },
});
