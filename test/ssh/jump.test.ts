import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSshd, type Sshd } from '../fixtures/sshd.js';
import { fail, ok, sshRig, targetFor, type SshRig } from './helpers.js';

describe('ssh through jump hosts (ProxyJump)', () => {
  let target: Sshd;
  let bastion: Sshd;
  let rig: SshRig;

  before(async () => {
    target = await startSshd();
    bastion = await startSshd({ logLevel: 'DEBUG1' });
    rig = await sshRig({
      'targets.json': {
        bastion: targetFor(bastion),
        prod: targetFor(target, { jump: 'bastion' }),
        // two hops: deep → (target's sshd as a hop) mid → bastion
        mid: targetFor(target, { jump: 'bastion' }),
        deep: targetFor(bastion, { jump: 'mid' }),
        wrongpin: targetFor(target, { jump: 'bastion', host_key_sha256: bastion.fingerprint }),
        loop_a: targetFor(target, { jump: 'loop_b' }),
        loop_b: targetFor(target, { jump: 'loop_a' }),
        nowhere: targetFor(target, { jump: 'bastion', port: 1 }),
      },
    });
  });
  after(async () => {
    await rig?.close();
    await target?.stop();
    await bastion?.stop();
  });

  it('reaches the target through the jump host (the bastion opened the forward)', async () => {
    const r = ok(await rig.call({ action: 'exec', target: 'prod', command: 'echo via-jump' })).result;
    assert.equal(r.stdout, 'via-jump\n');
    assert.match(bastion.log(), new RegExp(`direct-tcpip.*127\\.0\\.0\\.1 port ${target.port}|target 127\\.0\\.0\\.1 port ${target.port}`));
  });

  it('jumps at any depth (two hops)', async () => {
    assert.equal(ok(await rig.call({ action: 'exec', target: 'deep', command: 'echo two-hops' })).result.stdout, 'two-hops\n');
  });

  it('the final host key is verified through the jump (mismatch refused)', async () => {
    const e = fail(await rig.call({ action: 'exec', target: 'wrongpin', command: 'true' }), 'HOST_KEY_MISMATCH');
    assert.equal(e.error.details?.fingerprint, target.fingerprint);
  });

  it('a jump loop in targets.json is refused clearly', async () => {
    const e = fail(await rig.call({ action: 'exec', target: 'loop_a', command: 'true' }), 'INVALID_ARGUMENT');
    assert.match(e.error.message, /loop/);
  });

  it('a target the jump host cannot reach is CONNECTION_FAILED naming the jump', async () => {
    const e = fail(await rig.call({ action: 'exec', target: 'nowhere', command: 'true' }), 'CONNECTION_FAILED');
    assert.match(e.error.message, /bastion/);
  });

  it('sftp and check work through the jump', async () => {
    ok(await rig.call({ action: 'upload', target: 'prod', remote_path: `/tmp/infra-jump-${process.pid}`, content: 'hop' }));
    const d = ok(await rig.call({ action: 'download', target: 'prod', remote_path: `/tmp/infra-jump-${process.pid}` })).result;
    assert.equal(d.content, 'hop');
    const c = ok(await rig.call({ action: 'check', target: 'prod' })).result;
    assert.deepEqual([c.ok, c.jump], [true, 'bastion']);
  });
});
