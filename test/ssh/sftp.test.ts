import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PASSWORD, PASSWORD_USER, startSshd, type Sshd } from '../fixtures/sshd.js';
import { fail, ok, sshRig, targetFor, type SshRig } from './helpers.js';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

describe('ssh upload and download over SFTP', () => {
  let sshd: Sshd;
  let rig: SshRig;
  let locked: SshRig;
  let dir: string;

  before(async () => {
    sshd = await startSshd();
    const targets = {
      prod: targetFor(sshd),
      // a target whose password is a registered secret (for the redaction test)
      pw: {
        host: sshd.host,
        port: sshd.port,
        username: PASSWORD_USER,
        password: '${env:TEST_SSH_PASSWORD}',
        host_key_sha256: sshd.fingerprint,
      },
    };
    rig = await sshRig({ 'targets.json': targets }, { INFRA_UNSAFE_LOCAL: '1', TEST_SSH_PASSWORD: PASSWORD });
    locked = await sshRig({ 'targets.json': targets }, { INFRA_UNSAFE_LOCAL: '' });
    dir = `/tmp/infra-sftp-${process.pid}-${randomBytes(3).toString('hex')}`;
    ok(await rig.call({ action: 'exec', target: 'prod', command: `mkdir -p ${dir}` }));
  });
  after(async () => {
    await rig?.call({ action: 'exec', target: 'prod', command: `rm -rf ${dir}` });
    await rig?.close();
    await locked?.close();
    await sshd?.stop();
  });

  const sh = async (command: string): Promise<string> => ok(await rig.call({ action: 'exec', target: 'prod', command })).result.stdout;

  it('uploads inline content atomically with a mode', async () => {
    const r = ok(
      await rig.call({ action: 'upload', target: 'prod', remote_path: `${dir}/a.txt`, content: 'hello sftp\n', mode: '0640' }),
    ).result;
    assert.deepEqual([r.bytes, r.sha256, r.atomic], [11, sha('hello sftp\n'), true]);
    assert.equal(await sh(`cat ${dir}/a.txt; stat -c %a ${dir}/a.txt`), 'hello sftp\n640\n');
    assert.equal(await sh(`ls -a ${dir} | grep -c infra || true`), '0\n', 'no temp file left behind');
  });

  it('overwriting keeps the existing mode unless one is given; overwrite:false refuses', async () => {
    ok(await rig.call({ action: 'upload', target: 'prod', remote_path: `${dir}/a.txt`, content: 'v2' }));
    assert.equal(await sh(`cat ${dir}/a.txt; echo; stat -c %a ${dir}/a.txt`), 'v2\n640\n');
    fail(
      await rig.call({ action: 'upload', target: 'prod', remote_path: `${dir}/a.txt`, content: 'v3', overwrite: false }),
      'INVALID_ARGUMENT',
    );
  });

  it('uploads binary content_base64 intact', async () => {
    const bytes = randomBytes(300_000);
    const r = ok(
      await rig.call({ action: 'upload', target: 'prod', remote_path: `${dir}/bin`, content_base64: bytes.toString('base64') }),
    ).result;
    assert.equal(r.sha256, sha(bytes));
    assert.equal((await sh(`sha256sum ${dir}/bin`)).split(' ')[0], sha(bytes));
  });

  it('uploads an artifact (content_ref) and creates missing directories', async () => {
    const first = ok(await rig.call({ action: 'exec', target: 'prod', command: 'seq 1 500' }));
    ok(
      await rig.call({
        action: 'upload',
        target: 'prod',
        remote_path: `${dir}/x/y/z.txt`,
        content_ref: `${first.artifact}stdout`,
        create_dirs: true,
      }),
    );
    assert.equal(await sh(`wc -l < ${dir}/x/y/z.txt`), '500\n');
  });

  it('uploads a local file with INFRA_UNSAFE_LOCAL=1; refused without it', async () => {
    const f = join(rig.project.root, 'local.txt');
    writeFileSync(f, 'local bytes');
    ok(await rig.call({ action: 'upload', target: 'prod', remote_path: `${dir}/local.txt`, local_path: f }));
    assert.equal(await sh(`cat ${dir}/local.txt`), 'local bytes');
    const e = fail(await locked.call({ action: 'upload', target: 'prod', remote_path: `${dir}/l2.txt`, local_path: f }), 'DENIED');
    assert.match(e.error.message, /INFRA_UNSAFE_LOCAL/);
    assert.equal(locked.rt.services.audit.get(e.call_id)?.status, 'denied');
  });

  it('needs exactly one source; a directory is not a file', async () => {
    fail(
      await rig.call({ action: 'upload', target: 'prod', remote_path: `${dir}/n`, content: 'a', content_base64: 'Yg==' }),
      'INVALID_ARGUMENT',
    );
    fail(await rig.call({ action: 'upload', target: 'prod', remote_path: `${dir}/n` }), 'INVALID_ARGUMENT');
    fail(await rig.call({ action: 'upload', target: 'prod', remote_path: dir, content: 'a' }), 'INVALID_ARGUMENT');
  });

  it('downloads into the artifact; small text also inline', async () => {
    const e = ok(await rig.call({ action: 'download', target: 'prod', remote_path: `${dir}/a.txt` }));
    assert.deepEqual([e.result.content, e.result.bytes, e.result.sha256, e.result.mode], ['v2', 2, sha('v2'), '0640']);
    assert.equal(readFileSync(join(rig.rt.project.artifactsDir, 'calls', e.call_id, 'download'), 'utf8'), 'v2');
    assert.equal(rig.rt.services.audit.get(e.call_id)?.artifact, e.artifact);
  });

  it('downloads binary into the artifact byte for byte (not inline)', async () => {
    const e = ok(await rig.call({ action: 'download', target: 'prod', remote_path: `${dir}/bin` }));
    assert.equal(e.result.content, undefined);
    assert.equal(sha(readFileSync(join(rig.rt.project.artifactsDir, 'calls', e.call_id, 'download'))), e.result.sha256);
  });

  it('attack: reading a file holding a configured secret returns it redacted inline (stored as is for the human)', async () => {
    ok(await rig.call({ action: 'upload', target: 'pw', remote_path: `/home/${PASSWORD_USER}/leak.txt`, content: `pw=${PASSWORD}\n` }));
    const e = ok(await rig.call({ action: 'download', target: 'pw', remote_path: `/home/${PASSWORD_USER}/leak.txt` }));
    assert.ok(!JSON.stringify(e).includes(PASSWORD), 'no secret in the reply');
    assert.match(e.result.content, /^pw=/);
    const x = ok(await rig.call({ action: 'exec', target: 'pw', command: 'cat leak.txt' }));
    assert.ok(!JSON.stringify(x).includes(PASSWORD), 'exec output is redacted too');
  });

  it('a missing remote file is NOT_FOUND', async () => {
    fail(await rig.call({ action: 'download', target: 'prod', remote_path: `${dir}/nope` }), 'NOT_FOUND');
  });

  it('downloads to a local path with INFRA_UNSAFE_LOCAL=1; refuses to overwrite unless asked', async () => {
    const dest = join(rig.project.root, 'out', 'a.txt');
    mkdirSync(join(rig.project.root, 'out'));
    const r = ok(await rig.call({ action: 'download', target: 'prod', remote_path: `${dir}/a.txt`, local_path: dest })).result;
    assert.equal(readFileSync(dest, 'utf8'), 'v2');
    assert.equal(r.uri, undefined);
    fail(await rig.call({ action: 'download', target: 'prod', remote_path: `${dir}/a.txt`, local_path: dest }), 'INVALID_ARGUMENT');
    ok(await rig.call({ action: 'download', target: 'prod', remote_path: `${dir}/bin`, local_path: dest, overwrite: true }));
    assert.equal(readFileSync(dest).length, 300_000);
    fail(
      await locked.call({ action: 'download', target: 'prod', remote_path: `${dir}/a.txt`, local_path: join(rig.project.root, 'l.txt') }),
      'DENIED',
    );
  });

  it('attack: a download aimed at the project directory (policy.json) is refused', async () => {
    ok(await rig.call({ action: 'upload', target: 'prod', remote_path: `${dir}/evil-policy.json`, content: '{"ssh":{}}' }));
    for (const dest of [
      join(rig.project.infraDir, 'policy.json'),
      join(rig.project.infraDir, 'artifacts', 'x'),
      `${rig.project.root}/./.infra/targets.json`,
    ]) {
      const e = fail(
        await rig.call({ action: 'download', target: 'prod', remote_path: `${dir}/evil-policy.json`, local_path: dest, overwrite: true }),
      );
      assert.ok(['DENIED', 'NOT_FOUND'].includes(e.error.code), `${dest}: ${e.error.code}`);
    }
    assert.ok(!existsSync(join(rig.project.infraDir, 'policy.json')));
  });

  it('attack: a download through a symlinked local path is refused', async () => {
    const link = join(rig.project.root, 'link.txt');
    symlinkSync('/etc/passwd-infra-test-target', link);
    fail(await rig.call({ action: 'download', target: 'prod', remote_path: `${dir}/a.txt`, local_path: link, overwrite: true }), 'DENIED');
    assert.ok(!existsSync('/etc/passwd-infra-test-target'));
  });
});
