import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SshPool } from '../../src/adapters/ssh-pool.js';
import { startSshd, type Sshd } from '../fixtures/sshd.js';
import { fail, ok, sshRig, targetFor, type SshRig } from './helpers.js';

const poolOf = (rig: SshRig): SshPool => rig.rt.services.shared<SshPool>('ssh-pool', () => assert.fail('the ssh pool should exist by now'));

describe('ssh connection pool', () => {
  let sshd: Sshd;
  let limited: Sshd;
  let rig: SshRig;

  before(async () => {
    sshd = await startSshd();
    limited = await startSshd({ maxSessions: 2 });
    rig = await sshRig({
      'targets.json': {
        prod: targetFor(sshd, { connect_timeout_ms: 1500 }),
        idle: targetFor(sshd, { idle_timeout_ms: 1000 }),
        limited: targetFor(limited),
      },
    });
  });
  after(async () => {
    await rig?.close();
    await sshd?.stop();
    await limited?.stop();
  });

  const echo = async (target: string, text: string, extra: Record<string, unknown> = {}) =>
    ok(await rig.call({ action: 'exec', target, command: `echo ${text}`, ...extra })).result.stdout;

  it('reuses one connection across calls', async () => {
    await echo('prod', 'a');
    const before = sshd.connectionPids().length;
    for (let i = 0; i < 5; i++) await echo('prod', `x${i}`);
    assert.equal(sshd.connectionPids().length, before, 'no new server-side connection per call');
    assert.equal(poolOf(rig).stats().prod?.connections, 1);
  });

  it('20 concurrent execs share a few connections (≤ 8 channels each)', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => echo('prod', `c${i}`, { command: `sleep 0.5; echo c${i}` })));
    const conns = poolOf(rig).stats().prod?.connections ?? 0;
    assert.ok(conns >= 1 && conns <= 3, `${conns} connections`);
  });

  it('sshd restarted between calls: the next call reconnects transparently', async () => {
    assert.equal(await echo('prod', 'before'), 'before\n');
    await sshd.restart();
    assert.equal(await echo('prod', 'after'), 'after\n');
  });

  it('sshd down: CONNECTION_FAILED; back up: works again', async () => {
    await echo('prod', 'up');
    await sshd.stop();
    fail(await rig.call({ action: 'exec', target: 'prod', command: 'true' }), 'CONNECTION_FAILED');
    await sshd.start();
    assert.equal(await echo('prod', 'again'), 'again\n');
  });

  it('a wedged connection (server frozen) does not hang later calls: dropped and reconnected', async () => {
    await echo('prod', 'warm');
    const frozen = sshd.descendantPids();
    assert.ok(frozen.length > 0);
    for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      assert.equal(await echo('prod', 'unstuck', { timeout_ms: 15_000 }), 'unstuck\n');
      assert.ok(Date.now() - t0 < 8000, `took ${Date.now() - t0} ms`);
    } finally {
      for (const pid of frozen) {
        try {
          process.kill(pid, 'SIGCONT');
          process.kill(pid, 'SIGTERM');
        } catch {
          /* gone */
        }
      }
    }
  });

  it('a server with MaxSessions 2 still runs 10 concurrent execs (channel cap lowered, or more connections)', async () => {
    const all = await Promise.all(
      Array.from({ length: 10 }, (_, i) => rig.call({ action: 'exec', target: 'limited', command: `sleep 0.3; echo m${i}` })),
    );
    all.forEach((e, i) => assert.equal(ok(e).result.stdout, `m${i}\n`));
  });

  it('an idle connection is closed after idle_timeout_ms', async () => {
    await echo('idle', 'i');
    assert.equal(poolOf(rig).stats().idle?.connections, 1);
    await new Promise((r) => setTimeout(r, 1600));
    assert.equal(poolOf(rig).stats().idle?.connections ?? 0, 0);
    assert.equal(await echo('idle', 'reopened'), 'reopened\n');
  });

  it('a changed target config gets a new connection', async () => {
    await echo('prod', 'old');
    rig.project.write('targets.json', {
      prod: targetFor(sshd, { connect_timeout_ms: 1600 }),
      idle: targetFor(sshd),
      limited: targetFor(limited),
    });
    rig.rt.reload();
    assert.equal(await echo('prod', 'new'), 'new\n');
    assert.equal(poolOf(rig).stats().prod?.connections, 1, 'the old connection was closed');
  });
});
