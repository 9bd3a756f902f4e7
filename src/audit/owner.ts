import { readFileSync } from 'node:fs';

/** Process start time as the kernel reports it (clock ticks since boot), or '' off Linux. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name may contain spaces and parentheses: fields start after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

export interface Owner {
  pid: number;
  start: string;
}

export function currentOwner(): Owner {
  return { pid: process.pid, start: processStartTime(process.pid) ?? String(Date.now() - Math.round(process.uptime() * 1000)) };
}

/** Whether the process that recorded `owner` is still the same running process. */
export function ownerAlive(owner: Owner): boolean {
  const start = processStartTime(owner.pid);
  if (start !== undefined) return start === owner.start;
  if (process.platform === 'linux') return false;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch {
    return false;
  }
}
