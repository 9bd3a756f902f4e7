import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fingerprintOf, hostsFieldMatches, knownHostsName, parseKnownHosts, verifyHostKey } from '../../src/adapters/ssh-host-keys.js';
import { startSshd, type Sshd } from '../fixtures/sshd.js';
import { fail, ok, sshRig, targetFor, type SshRig } from './helpers.js';

function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

/** Another ed25519 public key, as an impostor or a reinstalled host would present. */
function otherKey(dir: string): string {
  const p = join(dir, `other-${randomBytes(3).toString('hex')}`);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', p]);
  return readFileSync(`${p}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
}

describe('ssh host key verification', () => {
  let sshd: Sshd;
  let rig: SshRig;
  let hostPub: string;

  before(async () => {
    sshd = await startSshd();
    hostPub = sshd.knownHostsLine.split(' ').slice(1).join(' ');
    const name = `[127.0.0.1]:${sshd.port}`;
    const kh = (file: string, text: string): string => {
      const p = join(sshd.dir, file);
      writeFileSync(p, text);
      return p;
    };
    const plain = kh('kh_plain', `# comment\n${sshd.knownHostsLine}\n`);
    const hashedFile = kh('kh_hashed', `${hashed(name)} ${hostPub}\n`);
    const wildcard = kh('kh_wild', `[127.0.0.*]:${sshd.port},!other ${hostPub}\n`);
    const negated = kh('kh_negated', `[127.0.0.*]:*,!${name} ${hostPub}\n`);
    const changed = kh('kh_changed', `${name} ${otherKey(sshd.dir)}\n`);
    const revoked = kh('kh_revoked', `${sshd.knownHostsLine}\n@revoked * ${hostPub}\n`);
    const empty = kh('kh_empty', '');
    const noPin = { ...targetFor(sshd) };
    delete noPin.host_key_sha256;
    rig = await sshRig({
      'targets.json': {
        pin: targetFor(sshd),
        pin_wrong: targetFor(sshd, { host_key_sha256: fingerprintOf(randomBytes(51)) }),
        kh_plain: { ...noPin, known_hosts: plain },
        kh_hashed: { ...noPin, known_hosts: hashedFile },
        kh_wild: { ...noPin, known_hosts: wildcard },
        kh_negated: { ...noPin, known_hosts: negated },
        kh_changed: { ...noPin, known_hosts: changed },
        kh_revoked: { ...noPin, known_hosts: revoked },
        kh_empty: { ...noPin, known_hosts: empty },
        kh_absent: { ...noPin, known_hosts: join(sshd.dir, 'no-such-file') },
      },
    });
  });
  after(async () => {
    await rig?.close();
    await sshd?.stop();
  });

  const run = (target: string) => rig.call({ action: 'exec', target, command: 'echo connected' });

  it('a matching host_key_sha256 pin connects', async () => {
    assert.equal(ok(await run('pin')).result.stdout, 'connected\n');
  });

  for (const t of ['kh_plain', 'kh_hashed', 'kh_wild']) {
    it(`known_hosts entry (${t.slice(3)}) for [host]:port connects`, async () => {
      assert.equal(ok(await run(t)).result.stdout, 'connected\n');
    });
  }

  it('attack: man-in-the-middle with another key than the pin is refused (HOST_KEY_MISMATCH, changed, fingerprint in the hint)', async () => {
    const e = fail(await run('pin_wrong'), 'HOST_KEY_MISMATCH');
    assert.equal(e.error.details?.reason, 'changed');
    assert.equal(e.error.details?.fingerprint, sshd.fingerprint);
    assert.ok(e.error.hint?.includes(sshd.fingerprint), e.error.hint);
    assert.match(e.error.hint ?? '', /infra ssh trust pin_wrong/);
    assert.equal(e.error.retryable, false);
  });

  it('attack: man-in-the-middle with another key than known_hosts is refused (changed)', async () => {
    const e = fail(await run('kh_changed'), 'HOST_KEY_MISMATCH');
    assert.equal(e.error.details?.reason, 'changed');
    assert.ok(e.error.hint?.includes(sshd.fingerprint));
  });

  it('attack: a key marked @revoked is refused even when also listed as known', async () => {
    const e = fail(await run('kh_revoked'), 'HOST_KEY_MISMATCH');
    assert.equal(e.error.details?.reason, 'changed');
    assert.equal(e.error.details?.revoked, true);
  });

  it('attack: a negated pattern (!host) does not count as known', async () => {
    const e = fail(await run('kh_negated'), 'HOST_KEY_MISMATCH');
    assert.equal(e.error.details?.reason, 'unknown');
  });

  for (const t of ['kh_empty', 'kh_absent']) {
    it(`an unknown host (${t}) is refused with reason unknown and the presented fingerprint`, async () => {
      const e = fail(await run(t), 'HOST_KEY_MISMATCH');
      assert.equal(e.error.details?.reason, 'unknown');
      assert.ok(e.error.hint?.includes(sshd.fingerprint));
    });
  }

  it('check reports a host key mismatch as a result', async () => {
    const r = ok(await rig.call({ action: 'check', target: 'kh_changed' })).result;
    assert.deepEqual(
      [r.ok, r.reachable, r.host_key_ok, r.host_key_sha256, r.error.code],
      [false, true, false, sshd.fingerprint, 'HOST_KEY_MISMATCH'],
    );
  });
});

describe('known_hosts parsing (units)', () => {
  const blob = Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ', 'base64');
  const line = `ssh-ed25519 ${blob.toString('base64')}`;

  it('fingerprints like ssh-keygen -lf (SHA256:, unpadded base64)', () => {
    assert.match(fingerprintOf(blob), /^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it('names hosts as OpenSSH does: bare on port 22, [host]:port otherwise, lowercased', () => {
    assert.equal(knownHostsName('Example.COM', 22), 'example.com');
    assert.equal(knownHostsName('10.0.0.1', 2222), '[10.0.0.1]:2222');
  });

  it('matches comma lists, wildcards, ? and negation', () => {
    assert.ok(hostsFieldMatches('a.example.com,b.example.com', 'b.example.com'));
    assert.ok(hostsFieldMatches('*.example.com', 'x.example.com'));
    assert.ok(hostsFieldMatches('web?.example.com', 'web1.example.com'));
    assert.ok(!hostsFieldMatches('*.example.com,!db.example.com', 'db.example.com'));
    assert.ok(!hostsFieldMatches('example.com', '[example.com]:2222'), 'a port-22 entry does not cover another port');
    assert.ok(!hostsFieldMatches('*.example.com', 'example.com.evil.net'));
  });

  it('ignores comments, blank lines, unknown markers and bad lines; keeps @revoked and @cert-authority', () => {
    const e = parseKnownHosts(`# c\n\n@bogus h ${line}\nh\n@revoked * ${line}\n@cert-authority *.x ${line}\nh1 ${line} comment\n`);
    assert.deepEqual(
      e.map((x) => [x.marker, x.hosts]),
      [
        ['@revoked', '*'],
        ['@cert-authority', '*.x'],
        ['', 'h1'],
      ],
    );
  });

  it('a @cert-authority line does not make a plain key known', () => {
    const dir = process.env.TMPDIR ?? '/tmp';
    const f = join(dir, `kh-ca-${randomBytes(3).toString('hex')}`);
    writeFileSync(f, `@cert-authority * ${line}\n`);
    const v = verifyHostKey({ kind: 'known_hosts', files: [f], explicit: true }, 'h', 22, blob);
    assert.deepEqual([v.ok, v.reason], [false, 'unknown']);
  });
});
