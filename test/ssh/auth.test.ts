import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KEY_PASSPHRASE, PASSWORD, PASSWORD_USER, startAgent, startSshd, type Agent, type Sshd } from '../fixtures/sshd.js';
import { answerPrompts, mapConnectError } from '../../src/adapters/ssh-pool.js';
import { fail, ok, sshRig, targetFor, type SshRig } from './helpers.js';

describe('ssh authentication against a real sshd', () => {
  let sshd: Sshd;
  let agent: Agent;
  let rig: SshRig;

  before(async () => {
    sshd = await startSshd();
    agent = await startAgent();
    const base = { host: sshd.host, port: sshd.port, host_key_sha256: sshd.fingerprint };
    rig = await sshRig(
      {
        'targets.json': {
          key: targetFor(sshd),
          enckey: targetFor(sshd, { key_file: sshd.keys.encKey, passphrase: '${env:TEST_KEY_PASSPHRASE}' }),
          enckey_nopass: targetFor(sshd, { key_file: sshd.keys.encKey }),
          keyref: { ...base, username: sshd.user, private_key: '${file:' + sshd.keys.key + '}' },
          pw: { ...base, username: PASSWORD_USER, password: '${env:TEST_SSH_PASSWORD}' },
          pw_wrong: { ...base, username: PASSWORD_USER, password: '${env:TEST_SSH_WRONG}' },
          pw_missing: { ...base, username: PASSWORD_USER, password: '${env:TEST_SSH_UNSET_VAR}' },
          agent: { ...base, username: sshd.user, agent: true },
          agent_path: { ...base, username: sshd.user, agent: agent.sock },
          wrongkey: targetFor(sshd, { key_file: sshd.keys.wrongKey }),
          nocreds: { ...base, username: sshd.user },
          down: targetFor(sshd, { port: 1, connect_timeout_ms: 2000 }),
        },
      },
      {
        TEST_KEY_PASSPHRASE: KEY_PASSPHRASE,
        TEST_SSH_PASSWORD: PASSWORD,
        TEST_SSH_WRONG: 'not the password',
        SSH_AUTH_SOCK: agent.sock,
      },
    );
  });
  after(async () => {
    await rig?.close();
    agent?.stop();
    await sshd?.stop();
  });

  const whoami = async (target: string): Promise<string> =>
    ok(await rig.call({ action: 'exec', target, command: 'id -un' })).result.stdout.trim();

  it('key_file authenticates', async () => {
    assert.equal(await whoami('key'), sshd.user);
  });

  it('an encrypted key with its passphrase by ${env:…} reference authenticates', async () => {
    assert.equal(await whoami('enckey'), sshd.user);
  });

  it('an encrypted key without a passphrase is AUTH_FAILED naming the passphrase', async () => {
    const e = fail(await rig.call({ action: 'exec', target: 'enckey_nopass', command: 'true' }), 'AUTH_FAILED');
    assert.match(e.error.hint ?? '', /passphrase/);
  });

  it('private_key by ${file:…} reference authenticates', async () => {
    assert.equal(await whoami('keyref'), sshd.user);
  });

  it('password by ${env:…} reference authenticates (a real local user)', async () => {
    assert.equal(await whoami('pw'), PASSWORD_USER);
  });

  it('agent: true uses SSH_AUTH_SOCK; agent: "<path>" uses that socket', async () => {
    assert.equal(await whoami('agent'), sshd.user);
    assert.equal(await whoami('agent_path'), sshd.user);
  });

  it('a wrong password is AUTH_FAILED, not retryable', async () => {
    const e = fail(await rig.call({ action: 'exec', target: 'pw_wrong', command: 'true' }), 'AUTH_FAILED');
    assert.equal(e.error.retryable, false);
    assert.match(e.error.message, /password/);
    assert.ok(!JSON.stringify(e).includes('not the password'), 'the password never appears in the reply');
  });

  it('a key the server does not authorize is AUTH_FAILED', async () => {
    fail(await rig.call({ action: 'exec', target: 'wrongkey', command: 'true' }), 'AUTH_FAILED');
  });

  it('an unset password reference is AUTH_FAILED with missing_credentials and how to set it', async () => {
    const e = fail(await rig.call({ action: 'exec', target: 'pw_missing', command: 'true' }), 'AUTH_FAILED');
    assert.equal(e.error.details?.status, 'missing_credentials');
    assert.match(e.error.hint ?? '', /TEST_SSH_UNSET_VAR/);
  });

  it('a target without credentials is refused with what to add', async () => {
    const e = fail(await rig.call({ action: 'exec', target: 'nocreds', command: 'true' }), 'INVALID_ARGUMENT');
    assert.match(e.error.hint ?? '', /key_file/);
  });

  it('an unreachable target is CONNECTION_FAILED and retryable', async () => {
    const e = fail(await rig.call({ action: 'exec', target: 'down', command: 'true' }), 'CONNECTION_FAILED');
    assert.equal(e.error.retryable, true);
  });

  it('check reports auth failure as a result, and success with timings', async () => {
    const good = ok(await rig.call({ action: 'check', target: 'key' })).result;
    assert.equal(good.ok, true);
    assert.equal(good.auth_ok, true);
    assert.equal(good.host_key_sha256, sshd.fingerprint);
    assert.ok(good.connect_ms >= 0 && good.latency_ms >= 0);
    const bad = ok(await rig.call({ action: 'check', target: 'pw_wrong' })).result;
    assert.deepEqual([bad.ok, bad.reachable, bad.host_key_ok, bad.auth_ok, bad.error.code], [false, true, true, false, 'AUTH_FAILED']);
    const down = ok(await rig.call({ action: 'check', target: 'down' })).result;
    assert.deepEqual([down.ok, down.reachable, down.error.code], [false, false, 'CONNECTION_FAILED']);
  });
});

describe('ssh password authentication by keyboard-interactive (a host that checks passwords through PAM)', () => {
  let sshd: Sshd;
  let rig: SshRig;

  before(async () => {
    sshd = await startSshd({ passwordAuth: 'keyboard-interactive' });
    const base = { host: sshd.host, port: sshd.port, host_key_sha256: sshd.fingerprint, username: PASSWORD_USER };
    rig = await sshRig(
      {
        'targets.json': {
          pw: { ...base, password: '${env:TEST_SSH_PASSWORD}' },
          pw_wrong: { ...base, password: '${env:TEST_SSH_WRONG}' },
        },
      },
      { TEST_SSH_PASSWORD: PASSWORD, TEST_SSH_WRONG: 'not the password' },
    );
  });
  after(async () => {
    await rig?.close();
    await sshd?.stop();
  });

  it('the password answers the PAM "Password:" prompt', async () => {
    const r = ok(await rig.call({ action: 'exec', target: 'pw', command: 'id -un' }));
    assert.equal(r.result.stdout.trim(), PASSWORD_USER);
    assert.match(sshd.log(), /Accepted keyboard-interactive\/pam for infra-sshtest/);
  });

  it('a wrong password is AUTH_FAILED naming both methods tried, without the password', async () => {
    const e = fail(await rig.call({ action: 'exec', target: 'pw_wrong', command: 'true' }), 'AUTH_FAILED');
    assert.match(e.error.message, /tried: password, keyboard-interactive/);
    assert.equal(e.error.retryable, false);
    assert.ok(!JSON.stringify(e).includes('not the password'));
  });
});

describe('keyboard-interactive prompts infra answers', () => {
  it('the password goes to hidden password prompts only, never to a one-time code, a visible prompt or a re-prompt', () => {
    assert.deepEqual(answerPrompts([{ prompt: 'Password: ', echo: false }], 'pw', 1), { answers: ['pw'] });
    assert.deepEqual(answerPrompts([{ prompt: "admin@db1's password:", echo: false }], 'pw', 2), { answers: ['pw'] });
    assert.deepEqual(answerPrompts([{ prompt: 'Passwort: ', echo: false }], 'pw', 1), { answers: ['pw'] }, "PAM's German prompt");
    assert.deepEqual(answerPrompts([{ prompt: 'Mot de passe : ', echo: false }], 'pw', 1), { answers: ['pw'] });
    assert.deepEqual(answerPrompts([], 'pw', 1), { answers: [] }, 'an instructions-only round');
    assert.deepEqual(answerPrompts([{ prompt: 'Verification code: ', echo: false }], 'pw', 1), {
      answers: [''],
      unanswered: 'Verification code:',
    });
    assert.deepEqual(answerPrompts([{ prompt: "One-time password (OATH) for `u': ", echo: false }], 'pw', 1).answers, ['']);
    assert.deepEqual(answerPrompts([{ prompt: 'Password: ', echo: true }], 'pw', 1).answers, [''], 'a visible prompt');
    assert.deepEqual(
      answerPrompts(
        [
          { prompt: 'Password: ', echo: false },
          { prompt: 'Duo passcode: ', echo: false },
        ],
        'pw',
        1,
      ),
      { answers: ['pw', ''], unanswered: 'Duo passcode:' },
    );
    assert.deepEqual(
      answerPrompts([{ prompt: 'Password: ', echo: false }], 'pw', 3),
      { answers: [''] },
      'a third round (a re-prompt loop)',
    );
  });

  it('a failure after an unanswered prompt says what the server asked and what to use instead', () => {
    const ep = { name: 'bastion', username: 'u', host: 'h', port: 22, password: 'pw' } as unknown as Parameters<typeof mapConnectError>[2];
    const err = Object.assign(new Error('All configured authentication methods failed'), { level: 'client-authentication' });
    const e = mapConnectError(err, undefined, ep, 'Verification code:');
    assert.equal(e.code, 'AUTH_FAILED');
    assert.match(e.message, /asked "Verification code:" \(keyboard-interactive\), which infra does not answer/);
    assert.match(e.hint ?? '', /key_file/);
  });
});
