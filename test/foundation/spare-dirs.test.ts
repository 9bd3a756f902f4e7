// Pre-created call directories (src/artifacts/spare-dirs.ts): a refill still running when the
// store closes must not leave spares behind, or a project removed right after close fails
// with ENOTEMPTY (seen once on a clean checkout in the runbook tests).
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SpareDirs } from '../../src/artifacts/spare-dirs.js';

void test('closing while a refill runs leaves no spare directory behind, and the parent can be removed at once', async () => {
  for (let round = 0; round < 20; round++) {
    const parent = join(mkdtempSync(join(tmpdir(), 'infra-spares-')), 'calls');
    const spares = new SpareDirs(parent);
    spares.refill();
    // let the refill get going (some spares made, more on the way)
    await new Promise((r) => setImmediate(r));
    assert.ok(spares.take(join(parent, `c_${round}`)) !== undefined);
    await spares.close();
    rmSync(join(parent, `c_${round}`), { recursive: true, force: true });
    const left = readdirSync(parent);
    assert.deepEqual(left, [], `round ${round}: left ${left.join(', ')}`);
    rmSync(join(parent, '..'), { recursive: true });
  }
});
