import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { watchConfig } from '../../src/federation/config-watch.js';
import { eventually } from '../helpers/wait.js';

const log = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** Waits (up to 3 s) until `count()` passes `n`; returns the count then. */
async function until(count: () => number, n: number): Promise<number> {
  await eventually(() => count() > n, 3000, 20);
  return count();
}

describe('config watch (src/federation/config-watch.ts)', () => {
  it('sees a config file edited in place, replaced by a rename, created and removed; one reload per burst', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'infra-watch-'));
    let reloads = 0;
    const w = watchConfig(dir, () => reloads++, log, { debounceMs: 50, intervalMs: 50 });
    try {
      await sleep(120);
      writeFileSync(join(dir, 'profiles.json'), '{}');
      assert.equal(await until(() => reloads, 0), 1, 'created');

      writeFileSync(join(dir, 'profiles.json'), '{"db": {}}');
      assert.equal(await until(() => reloads, 1), 2, 'edited in place');

      // an editor's save: write a temp file, rename it over the original
      writeFileSync(join(dir, '.policy.json.tmp'), '{"limits": {}}');
      renameSync(join(dir, '.policy.json.tmp'), join(dir, 'policy.json'));
      assert.equal(await until(() => reloads, 2), 3, 'replaced by a rename');

      rmSync(join(dir, 'policy.json'));
      assert.equal(await until(() => reloads, 3), 4, 'removed');

      // a burst of saves within the debounce is one reload
      for (let i = 0; i < 5; i++) writeFileSync(join(dir, 'targets.json'), `{"n": ${i}}`);
      await until(() => reloads, 4);
      await sleep(300);
      assert.equal(reloads, 5, 'one reload for the burst');
    } finally {
      w.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ignores the audit database and any other file in the directory (they change on every call)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'infra-watch-'));
    let reloads = 0;
    const w = watchConfig(dir, () => reloads++, log, { debounceMs: 20, intervalMs: 50 });
    try {
      for (let i = 0; i < 20; i++) {
        writeFileSync(join(dir, 'infra.db-wal'), `frame ${i}`);
        writeFileSync(join(dir, 'notes.json'), `{"i": ${i}}`);
        await sleep(10);
      }
      await sleep(300);
      assert.equal(reloads, 0);
      w.close();
      writeFileSync(join(dir, 'profiles.json'), '{}');
      await sleep(300);
      assert.equal(reloads, 0, 'nothing after close');
    } finally {
      w.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes to the audit database beside the config do not wake the event loop', async () => {
    // the record worker writes infra.db-wal after every call; a watch on the directory woke the
    // thread that answers the client for each of those writes
    const dir = mkdtempSync(join(tmpdir(), 'infra-watch-'));
    const switches = (): number =>
      Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/self/task/${process.pid}/status`, 'utf8'))?.[1] ?? 0);
    const w = watchConfig(dir, () => undefined, log);
    try {
      const wal = join(dir, 'infra.db-wal');
      const writer = spawn(
        process.execPath,
        [
          '-e',
          `const fs = require('fs'); const end = Date.now() + 600; let i = 0; while (Date.now() < end) { fs.writeFileSync(${JSON.stringify(wal)}, 'frame ' + i++); for (let k = 0; k < 20000; k++); }`,
        ],
        { stdio: 'ignore' },
      );
      await sleep(100);
      const before = switches();
      await sleep(400);
      const woken = switches() - before;
      await new Promise((r) => writer.on('exit', r));
      assert.ok(woken < 100, `the event loop woke ${woken} times in 400 ms of database writes`);
    } finally {
      w.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
