import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jsonPath } from '../../src/toolsets/http/check.js';
import { startHttpServer, type FixtureServer } from '../fixtures/http-server.js';
import { fail, httpRig, ok, type HttpRig } from './helpers.js';

void describe('http check', () => {
  let srv: FixtureServer;
  let rig: HttpRig;
  before(async () => {
    srv = await startHttpServer();
    rig = await httpRig({ 'profiles.json': { api: { type: 'http', base_url: `${srv.url}/v1` } } });
  });
  after(async () => {
    await rig.close();
    await srv.close();
  });

  void it('passes with status, body text, JSON paths and latency', async () => {
    const r = ok(
      await rig.call({
        action: 'check',
        profile: 'api',
        path: '/json',
        expect_status: 200,
        expect_body_contains: ['"status":"up"', 'version'],
        expect_json: {
          status: 'up',
          'checks.db.ok': true,
          'items[1].id': 2,
          '$.items.0.id': 1,
          checks: { db: { ok: true, latency_ms: 3 } },
        },
        max_latency_ms: 5000,
      }),
    );
    assert.equal(r.result.passed, true, JSON.stringify(r.result.reasons));
    assert.equal(r.result.status, 200);
    assert.ok(r.result.latency_ms >= 0);
    assert.deepEqual(r.result.reasons, []);
    assert.ok(r.result.checks.every((c: { passed: boolean }) => c.passed));
  });

  void it('a failed check is ok:true with passed:false and the reasons', async () => {
    const r = ok(
      await rig.call({
        action: 'check',
        url: `${srv.url}/json`,
        expect_json: { status: 'down', 'nope.x': 1 },
        expect_body_contains: 'missing-text',
      }),
    );
    assert.equal(r.result.passed, false);
    assert.equal(r.result.reasons.length, 3);
    assert.match(r.result.reasons.join('\n'), /status is "up", expected "down"/);
    assert.match(r.result.reasons.join('\n'), /nope\.x is absent/);
    assert.match(r.result.reasons.join('\n'), /does not contain "missing-text"/);
    assert.match(rig.rt.services.audit.get(r.call_id)?.summary ?? '', /^FAILED/);
  });

  void it('default expect_status is 2xx', async () => {
    assert.equal(ok(await rig.call({ action: 'check', url: `${srv.url}/text` })).result.passed, true);
    const r = ok(await rig.call({ action: 'check', url: `${srv.url}/status/503` }));
    assert.equal(r.result.passed, false);
    assert.match(r.result.reasons[0], /status 503, expected 2xx/);
    assert.equal(ok(await rig.call({ action: 'check', url: `${srv.url}/status/503`, expect_status: [503] })).result.passed, true);
  });

  void it('non-JSON body fails expect_json with a reason', async () => {
    const r = ok(await rig.call({ action: 'check', url: `${srv.url}/text`, expect_json: { a: 1 } }));
    assert.equal(r.result.passed, false);
    assert.match(r.result.reasons.join(' '), /not JSON/);
  });

  void it('expect_json reads a body larger than the inline cap from the artifact', async () => {
    // echo returns the request headers: a 4 kB header makes the JSON body outgrow max_bytes
    const r = ok(
      await rig.call({
        action: 'check',
        url: `${srv.url}/echo`,
        expect_json: { method: 'GET', body_bytes: 0 },
        expect_body_contains: '"method":"GET"',
        max_bytes: 256,
        headers: { 'x-pad': 'x'.repeat(4000) },
      }),
    );
    assert.equal(r.result.passed, true, JSON.stringify(r.result.reasons));
  });

  void it('an unreachable service fails the check instead of erroring', async () => {
    const dead = await startHttpServer();
    const url = `${dead.url}/health`;
    await dead.close();
    const r = ok(await rig.call({ action: 'check', url }));
    assert.equal(r.result.passed, false);
    assert.equal(r.result.status, null);
    assert.match(r.result.reasons[0], /ECONNREFUSED/);
  });

  void it('check is read-only: POST is not a check method', async () => {
    assert.equal(fail(await rig.call({ action: 'check', url: `${srv.url}/echo`, method: 'POST' })).error.code, 'INVALID_ARGUMENT');
    const ro = await httpRig({}, { INFRA_READ_ONLY: '1' });
    try {
      ok(await ro.call({ action: 'check', url: `${srv.url}/text` }));
    } finally {
      await ro.close();
    }
  });

  void it('jsonPath handles dots, brackets, quotes and $', () => {
    const v = { a: { 'b.c': [1, { d: null }] }, e: [[5]] };
    assert.deepEqual(jsonPath(v, 'a["b.c"][1].d'), { found: true, value: null });
    assert.deepEqual(jsonPath(v, '$.e[0][0]'), { found: true, value: 5 });
    assert.deepEqual(jsonPath(v, '$'), { found: true, value: v });
    assert.equal(jsonPath(v, 'a.x').found, false);
    assert.equal(jsonPath(v, 'e.3').found, false);
    assert.equal(jsonPath(v, 'a.constructor').found, false);
  });
});
