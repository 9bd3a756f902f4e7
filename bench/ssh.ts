/**
 * ssh exec latency through infra vs OpenSSH, in one run over the same sshd:
 *   warm: `ssh exec true` through the runtime on a pooled connection
 *         vs `ssh` multiplexed through a ControlMaster (ControlPersist)
 *   cold: the first call on a fresh runtime (connect, host key, auth, exec)
 *         vs a fresh `ssh` process (no multiplexing)
 * Samples are interleaved so that load from other processes hits both sides alike.
 * Run: node --import tsx bench/ssh.ts [--warm N] [--cold N]
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRuntime } from '../src/exec/runtime.js';
import { startSshd } from '../test/fixtures/sshd.js';
import { makeProject } from '../test/helpers/project.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const WARM = arg('warm', 40);
const COLD = arg('cold', 10);

const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};
const run = (cmd: string, args: string[]): Promise<void> =>
  new Promise((resolve, reject) =>
    execFile(cmd, args, (e, _o, stderr) => (e ? reject(new Error(`${cmd} failed: ${stderr || e.message}`)) : resolve())),
  );

async function main(): Promise<void> {
  const sshd = await startSshd({ maxSessions: 64 });
  const kh = join(sshd.dir, 'known_hosts');
  writeFileSync(kh, `${sshd.knownHostsLine}\n`);
  const target = { host: sshd.host, port: sshd.port, username: sshd.user, key_file: sshd.keys.key, host_key_sha256: sshd.fingerprint };
  const project = makeProject({ 'targets.json': { prod: target } });
  const env = { ...process.env, INFRA_LOG_LEVEL: 'error' };
  const sshBase = [
    '-p',
    String(sshd.port),
    '-i',
    sshd.keys.key,
    '-o',
    'BatchMode=yes',
    '-o',
    `UserKnownHostsFile=${kh}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'LogLevel=ERROR',
  ];
  const ctl = join(sshd.dir, 'cm.sock');
  const sshMux = [
    ...sshBase,
    '-o',
    'ControlMaster=auto',
    '-o',
    `ControlPath=${ctl}`,
    '-o',
    'ControlPersist=120',
    `${sshd.user}@${sshd.host}`,
    'true',
  ];
  const sshFresh = [...sshBase, '-o', 'ControlMaster=no', '-o', 'ControlPath=none', `${sshd.user}@${sshd.host}`, 'true'];

  const exec = async (rt: Awaited<ReturnType<typeof createRuntime>>): Promise<number> => {
    const t0 = now();
    const r = await rt.call('ssh', { action: 'exec', target: 'prod', command: 'true' });
    const ms = now() - t0;
    if (!r.ok) throw new Error(`infra call failed: ${JSON.stringify(r.error)}`);
    return ms;
  };
  const timed = async (f: () => Promise<void>): Promise<number> => {
    const t0 = now();
    await f();
    return now() - t0;
  };

  try {
    // cold: a fresh runtime (empty pool) per sample vs a fresh ssh process
    const coldInfra: number[] = [];
    const coldSsh: number[] = [];
    let firstEver = 0;
    for (let i = 0; i < COLD; i++) {
      const rt = await createRuntime({ projectDir: project.infraDir, env });
      const ms = await exec(rt);
      if (i === 0) firstEver = ms;
      coldInfra.push(ms);
      await rt.close();
      coldSsh.push(await timed(() => run('ssh', sshFresh)));
    }

    // warm: one runtime with its pooled connection vs a ControlMaster
    const rt = await createRuntime({ projectDir: project.infraDir, env });
    await run('ssh', sshMux); // starts the master
    for (let i = 0; i < 5; i++) {
      await exec(rt);
      await run('ssh', sshMux);
    }
    const warmInfra: number[] = [];
    const warmMux: number[] = [];
    for (let i = 0; i < WARM; i++) {
      warmInfra.push(await exec(rt));
      warmMux.push(await timed(() => run('ssh', sshMux)));
    }
    await rt.close();
    await run('ssh', ['-o', `ControlPath=${ctl}`, '-O', 'exit', `${sshd.user}@${sshd.host}`]).catch(() => undefined);

    const f = (x: number): string => x.toFixed(1).padStart(7);
    const row = (name: string, xs: number[]): string =>
      `${name.padEnd(44)} p50 ${f(pct(xs, 50))} ms   p95 ${f(pct(xs, 95))} ms   n=${xs.length}`;
    const lines = [
      `ssh exec true, same sshd (127.0.0.1:${sshd.port}), ${new Date().toISOString()}`,
      row('warm: infra rt.call (pooled connection)', warmInfra),
      row('warm: OpenSSH ssh via ControlMaster', warmMux),
      `warm ratio infra/ControlMaster p50: ${(pct(warmInfra, 50) / pct(warmMux, 50)).toFixed(2)}x (target <= 1.5x)`,
      row('cold: infra first call, fresh runtime', coldInfra),
      row('cold: OpenSSH fresh ssh process', coldSsh),
      `cold ratio infra/fresh ssh p50: ${(pct(coldInfra, 50) / pct(coldSsh, 50)).toFixed(2)}x (target <= 1.0x)`,
      `first call of the process (includes importing ssh2): ${firstEver.toFixed(1)} ms`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await sshd.stop();
    project.cleanup();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
