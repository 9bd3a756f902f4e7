import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { bootstrapSea, cacheRoot, extractSqliteAddon, SQLITE_ASSET, type SeaApi } from '../../src/sea/bootstrap.js';

const ADDON = new Uint8Array(Buffer.from('\x7fELF pretend addon bytes'.repeat(100)));
const SHA = createHash('sha256').update(ADDON).digest('hex');
const fakeSea = (bytes: Uint8Array = ADDON): SeaApi & { reads: number } => {
  const api = {
    reads: 0,
    isSea: () => true,
    getRawAsset: (key: string): ArrayBuffer => {
      assert.equal(key, SQLITE_ASSET);
      api.reads++;
      return bytes.slice().buffer;
    },
  };
  return api;
};
const hashOf = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

void describe('single-binary start-up: the embedded sqlite addon is extracted privately and verified', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'infra-sea-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  let n = 0;
  const envFor = (): NodeJS.ProcessEnv => ({ XDG_CACHE_HOME: join(tmp, `cache${n++}`) });

  void it('writes the addon to $XDG_CACHE_HOME/infra/<sha256>/ with a 0700 directory, then reuses it without reading the asset', () => {
    const env = envFor();
    const sea = fakeSea();
    const p = extractSqliteAddon({ sea, expectedSha256: SHA, env });
    assert.equal(p, join(env.XDG_CACHE_HOME!, 'infra', SHA, SQLITE_ASSET));
    assert.equal(hashOf(p), SHA);
    assert.equal(statSync(dirname(p)).mode & 0o777, 0o700);
    assert.equal(statSync(p).mode & 0o022, 0, 'the addon is not writable by group or others');
    const again = fakeSea();
    assert.equal(extractSqliteAddon({ sea: again, expectedSha256: SHA, env }), p);
    assert.equal(again.reads, 0, 'a verified copy is reused');
  });

  void it('replaces a tampered cached addon instead of loading it', () => {
    const env = envFor();
    const p = extractSqliteAddon({ sea: fakeSea(), expectedSha256: SHA, env });
    chmodSync(p, 0o700);
    writeFileSync(p, 'evil code');
    chmodSync(p, 0o500);
    const again = fakeSea();
    assert.equal(extractSqliteAddon({ sea: again, expectedSha256: SHA, env }), p);
    assert.equal(again.reads, 1);
    assert.equal(hashOf(p), SHA);
  });

  void it('does not use a cache directory others can write to (falls back to a private temporary copy)', () => {
    const env = envFor();
    const dir = join(env.XDG_CACHE_HOME!, 'infra', SHA);
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o777);
    writeFileSync(join(dir, SQLITE_ASSET), ADDON, { mode: 0o500 });
    const p = extractSqliteAddon({ sea: fakeSea(), expectedSha256: SHA, env });
    assert.notEqual(dirname(p), dir);
    assert.equal(statSync(dirname(p)).mode & 0o077, 0);
    assert.equal(hashOf(p), SHA);
  });

  void it('does not follow a cache directory that is a symlink planted by someone else', () => {
    const env = envFor();
    const elsewhere = join(tmp, `elsewhere${n}`);
    mkdirSync(elsewhere, { mode: 0o700 });
    mkdirSync(join(env.XDG_CACHE_HOME!, 'infra'), { recursive: true });
    symlinkSync(elsewhere, join(env.XDG_CACHE_HOME!, 'infra', SHA));
    const p = extractSqliteAddon({ sea: fakeSea(), expectedSha256: SHA, env });
    assert.ok(!p.startsWith(join(env.XDG_CACHE_HOME!, 'infra')), p);
    assert.equal(hashOf(p), SHA);
  });

  void it('refuses to start when the embedded bytes do not match the recorded hash (a damaged binary)', () => {
    const env = envFor();
    assert.throws(
      () => extractSqliteAddon({ sea: fakeSea(new Uint8Array(Buffer.from('damaged'))), expectedSha256: SHA, env }),
      /binary is damaged/,
    );
  });

  void it('does nothing outside the binary, and finds the cache under $HOME without XDG_CACHE_HOME', () => {
    const env: NodeJS.ProcessEnv = {};
    bootstrapSea({ isSea: () => false, getRawAsset: () => assert.fail('not read outside the binary') }, env);
    assert.equal(env.INFRA_SQLITE_BINDING, undefined);
    assert.equal(cacheRoot({ HOME: '/home/someone' }), '/home/someone/.cache/infra');
    assert.equal(cacheRoot({ HOME: '/home/someone', XDG_CACHE_HOME: 'relative' }), '/home/someone/.cache/infra');
  });
});
