import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { registerSshCommands, setTargetPin } from '../../src/cli/ssh-commands.js';
import { parseJsonc } from '../../src/config/jsonc.js';
import { startSshd, type Sshd } from '../fixtures/sshd.js';
import { fail, ok, sshRig, type SshRig } from './helpers.js';

const PIN = 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU';

describe('setTargetPin edits targets.json text in place', () => {
  it('inserts the pin, keeping comments, order and indentation', () => {
    const text = `{\n  // production\n  "prod": {\n    "host": "h", // the box\n    "port": 22\n  },\n  "b": { "host": "x" }\n}\n`;
    const out = setTargetPin(text, 'prod', PIN);
    assert.equal(
      out,
      `{\n  // production\n  "prod": {\n    "host_key_sha256": "${PIN}",\n    "host": "h", // the box\n    "port": 22\n  },\n  "b": { "host": "x" }\n}\n`,
    );
  });

  it('replaces an existing pin and handles one-line and empty objects', () => {
    const a = setTargetPin(`{"b":{"host":"x","host_key_sha256":"SHA256:old"}}`, 'b', PIN);
    assert.equal((parseJsonc(a) as any).b.host_key_sha256, PIN);
    const b = setTargetPin(`{"b": {"host": "x"}}`, 'b', PIN);
    assert.equal(b, `{"b": {"host_key_sha256": "${PIN}", "host": "x"}}`);
    const c = setTargetPin(`{"b": {}}`, 'b', PIN);
    assert.equal((parseJsonc(c) as any).b.host_key_sha256, PIN);
  });

  it('a key named like the target inside another target is not mistaken for it', () => {
    const t = `{"a": {"host": "x", "prod": 1}, "prod": {"host": "y"}}`;
    const out = parseJsonc(setTargetPin(t, 'prod', PIN)) as any;
    assert.equal(out.prod.host_key_sha256, PIN);
    assert.equal(out.a.host_key_sha256, undefined);
  });

  it('refuses an unknown target', () => {
    assert.throws(() => setTargetPin(`{"a": {}}`, 'prod', PIN), /no object for target/);
  });
});

describe('infra ssh trust', () => {
  let sshd: Sshd;
  let rig: SshRig;

  before(async () => {
    sshd = await startSshd();
    const t = { host: sshd.host, port: sshd.port, username: sshd.user, key_file: sshd.keys.key };
    rig = await sshRig({
      'targets.json': `{\n  // managed by a human\n  "prod": {\n    "host": "${t.host}",\n    "port": ${t.port},\n    "username": "${t.username}",\n    "key_file": "${t.key_file}",\n    "known_hosts": "${join(sshd.dir, 'kh')}"\n  }\n}\n`,
    });
  });
  after(async () => {
    await rig?.close();
    await sshd?.stop();
  });

  const run = async (...args: string[]): Promise<number> => {
    const program = new Command().exitOverride();
    registerSshCommands(program, async () => rig.rt.services);
    process.exitCode = 0;
    await program.parseAsync(['node', 'infra', 'ssh', 'trust', ...args]);
    const code = Number(process.exitCode ?? 0);
    process.exitCode = 0;
    return code;
  };

  it('an unknown host is refused until a human trusts it; then calls work', async () => {
    const e = fail(await rig.call({ action: 'exec', target: 'prod', command: 'true' }), 'HOST_KEY_MISMATCH');
    assert.equal(e.error.details?.reason, 'unknown');
    assert.equal(await run('prod', '--print'), 2, '--print reports untrusted');
    assert.equal(await run('prod', '--yes', '--known-hosts', join(sshd.dir, 'kh')), 0);
    assert.match(readFileSync(join(sshd.dir, 'kh'), 'utf8'), new RegExp(`^\\[127\\.0\\.0\\.1\\]:${sshd.port} ssh-ed25519 `));
    rig.rt.reload();
    assert.equal(ok(await rig.call({ action: 'exec', target: 'prod', command: 'echo trusted' })).result.stdout, 'trusted\n');
  });

  it('--yes pins host_key_sha256 in targets.json, keeping its comments', async () => {
    const file = join(rig.project.infraDir, 'targets.json');
    rig.project.write('targets.json', readFileSync(file, 'utf8').replace(join(sshd.dir, 'kh'), join(sshd.dir, 'kh-empty')));
    rig.rt.reload();
    assert.equal(await run('prod', '--yes'), 0);
    const text = readFileSync(join(rig.project.infraDir, 'targets.json'), 'utf8');
    assert.match(text, /\/\/ managed by a human/);
    assert.equal((parseJsonc(text) as any).prod.host_key_sha256, sshd.fingerprint);
    rig.rt.reload();
    assert.equal(ok(await rig.call({ action: 'exec', target: 'prod', command: 'echo pinned' })).result.stdout, 'pinned\n');
    assert.equal(await run('prod', '--print'), 0, 'now trusted');
  });

  it('without a terminal and without --yes nothing is written', async () => {
    rig.project.write('targets.json', {
      prod: { host: sshd.host, port: sshd.port, username: sshd.user, key_file: sshd.keys.key, known_hosts: '/nonexistent' },
    });
    rig.rt.reload();
    const before = readFileSync(join(rig.project.infraDir, 'targets.json'), 'utf8');
    assert.equal(await run('prod'), 1);
    assert.equal(readFileSync(join(rig.project.infraDir, 'targets.json'), 'utf8'), before);
  });
});
