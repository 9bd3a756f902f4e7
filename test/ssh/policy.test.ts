import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KEY_PASSPHRASE, PASSWORD, PASSWORD_USER, startSshd, type Sshd } from '../fixtures/sshd.js';
import { fail, ok, sshRig, targetFor, type SshRig } from './helpers.js';

describe('ssh policy: allowed targets, action toggles, read-only, secrets', () => {
  let sshd: Sshd;
  let rig: SshRig;
  let ro: SshRig;
  let targets: Record<string, unknown>;

  before(async () => {
    sshd = await startSshd();
    targets = {
      prod: targetFor(sshd, { tags: ['web', 'eu'], description: 'the shop' }),
      'web-1': targetFor(sshd),
      staging: targetFor(sshd, { key_file: sshd.keys.encKey, passphrase: '${env:TEST_KEY_PASSPHRASE}' }),
      pw: {
        host: sshd.host,
        port: sshd.port,
        username: PASSWORD_USER,
        password: '${env:TEST_SSH_PASSWORD}',
        host_key_sha256: sshd.fingerprint,
        jump: 'prod',
      },
    };
    const env = { TEST_SSH_PASSWORD: PASSWORD, TEST_KEY_PASSPHRASE: KEY_PASSPHRASE };
    rig = await sshRig(
      {
        'targets.json': targets,
        'policy.json': { ssh: { allow_targets: ['prod', 'web-*', 'pw'] }, tools: { ssh: { actions: { upload: false } } } },
      },
      env,
    );
    ro = await sshRig({ 'targets.json': targets }, { ...env, INFRA_READ_ONLY: '1' });
  });
  after(async () => {
    await rig?.close();
    await ro?.close();
    await sshd?.stop();
  });

  it('a target outside ssh.allow_targets is DENIED (audited as denied) with the allowed ones in the hint', async () => {
    const e = fail(await rig.call({ action: 'exec', target: 'staging', command: 'true' }), 'DENIED');
    assert.match(e.error.message, /allow_targets/);
    assert.match(e.error.hint ?? '', /prod, web-1, pw/);
    const row = rig.rt.services.audit.get(e.call_id)!;
    assert.deepEqual([row.status, row.tool, row.action], ['denied', 'ssh', 'exec']);
    assert.match(row.args ?? '', /staging/);
  });

  it('allow_targets accepts globs; an allowed target runs', async () => {
    assert.equal(ok(await rig.call({ action: 'exec', target: 'web-1', command: 'echo ok' })).result.stdout, 'ok\n');
  });

  it('a jump host needs no allow_targets entry of its own when the human configured the jump', async () => {
    // pw jumps through prod; prod is allowed anyway, but the check is on the named target only
    assert.equal(ok(await rig.call({ action: 'exec', target: 'pw', command: 'id -un' })).result.stdout, `${PASSWORD_USER}\n`);
  });

  it('an unknown target is NOT_FOUND with the known targets in the hint', async () => {
    const e = fail(await ro.call({ action: 'info', target: 'nope' }), 'NOT_FOUND');
    assert.match(e.error.hint ?? '', /known targets: prod, web-1, staging, pw/);
  });

  it('a per-action toggle in policy.json refuses that action', async () => {
    const e = fail(await rig.call({ action: 'upload', target: 'prod', remote_path: '/tmp/x', content: 'x' }), 'DENIED');
    assert.match(e.error.message, /tools\.ssh\.actions\.upload/);
  });

  it('INFRA_READ_ONLY=1 refuses exec and upload, allows info, check, download and targets', async () => {
    fail(await ro.call({ action: 'exec', target: 'prod', command: 'true' }), 'DENIED');
    fail(await ro.call({ action: 'upload', target: 'prod', remote_path: '/tmp/x', content: 'x' }), 'DENIED');
    const info = ok(await ro.call({ action: 'info', target: 'prod' })).result;
    assert.equal(info.kernel.name, 'Linux');
    assert.ok(info.memory.total_bytes > 0);
    assert.ok(info.disks.length > 0);
    assert.ok(info.uptime_s > 0);
    assert.equal(ok(await ro.call({ action: 'check', target: 'prod' })).result.ok, true);
    ok(await ro.call({ action: 'download', target: 'prod', remote_path: '/etc/hostname' }));
  });

  it('attack: listing targets leaks no secret, reference, key path or key', async () => {
    const e = ok(await rig.call({ action: 'targets' }));
    const text = JSON.stringify(e);
    for (const needle of [PASSWORD, KEY_PASSPHRASE, 'TEST_SSH_PASSWORD', 'TEST_KEY_PASSPHRASE', sshd.keys.key, 'PRIVATE KEY']) {
      assert.ok(!text.includes(needle), `targets output contains ${needle}`);
    }
    const prod = (e.result.targets as Array<Record<string, unknown>>).find((t) => t.name === 'prod')!;
    assert.deepEqual(
      [prod.host, prod.port, prod.tags, prod.auth, prod.host_key, prod.allowed],
      [sshd.host, sshd.port, ['web', 'eu'], ['key'], 'pin', true],
    );
    const staging = (e.result.targets as Array<Record<string, unknown>>).find((t) => t.name === 'staging')!;
    assert.equal(staging.allowed, false);
    assert.equal(ok(await rig.call({ action: 'targets', query: 'shop' })).result.total, 1);
  });

  it('attack: a secret from targets.json printed by a command is redacted in the reply, artifact and audit', async () => {
    const e = ok(await rig.call({ action: 'exec', target: 'prod', command: `echo "${PASSWORD}"` }));
    assert.ok(!JSON.stringify(e).includes(PASSWORD));
    const row = rig.rt.services.audit.get(e.call_id)!;
    assert.ok(!JSON.stringify(row).includes(PASSWORD));
  });
});
