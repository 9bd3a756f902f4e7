import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { bigSha256, startHttpServer, type FixtureServer } from '../fixtures/http-server.js';
import { fail, httpRig, ok, type HttpRig } from './helpers.js';

const GB = 1024 * 1024 * 1024;

void describe('http limits: big bodies, timeouts, cancellation', () => {
  let srv: FixtureServer;
  let rig: HttpRig;
  before(async () => {
    srv = await startHttpServer();
    rig = await httpRig();
  });
  after(async () => {
    await rig.close();
    await srv.close();
  });

  void it('a 1 GiB body streams into the artifact with flat memory and a matching sha256', async () => {
    global.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    const t0 = Date.now();
    let reply;
    try {
      reply = ok(await rig.call({ action: 'request', url: `${srv.url}/big?bytes=${GB}`, timeout_ms: 600_000 }));
    } finally {
      clearInterval(sampler);
    }
    const secs = (Date.now() - t0) / 1000;
    const growthMb = (peak - base) / 1024 / 1024;
    process.stderr.write(`# 1 GiB body: ${secs.toFixed(1)} s (${(1024 / secs).toFixed(0)} MiB/s), RSS growth ${growthMb.toFixed(0)} MiB\n`);
    assert.equal(reply.result.body_bytes, GB);
    assert.equal(reply.result.body_sha256, bigSha256(GB));
    assert.equal(reply.truncated?.body?.bytes, GB);
    const file = join(rig.rt.project.artifactsDir, 'calls', reply.call_id, 'body');
    assert.equal(statSync(file).size, GB);
    assert.ok(growthMb < 200, `RSS grew by ${growthMb.toFixed(0)} MiB`);
  });

  void it('a slow response hits timeout_ms and the connection is closed', async () => {
    const t0 = Date.now();
    const e = fail(await rig.call({ action: 'request', url: `${srv.url}/slow?ms=10000&id=timeout`, timeout_ms: 300 }));
    assert.equal(e.error.code, 'TIMEOUT');
    assert.equal(e.error.retryable, true);
    assert.ok(Date.now() - t0 < 2500, `took ${Date.now() - t0} ms`);
    assert.equal(rig.rt.services.audit.get(e.call_id)?.status, 'timeout');
    await sleep(100);
    assert.ok(srv.abortedUrls().includes('/slow?ms=10000&id=timeout'), 'the server saw the request abandoned');
  });

  void it('a body that stalls mid-stream hits timeout_ms', async () => {
    const e = fail(await rig.call({ action: 'request', url: `${srv.url}/stall`, timeout_ms: 400 }));
    assert.equal(e.error.code, 'TIMEOUT');
  });

  void it('client cancellation stops the request', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    const p = rig.call({ action: 'request', url: `${srv.url}/stall?id=cancel`, timeout_ms: 30_000 }, { signal: ac.signal });
    await sleep(200);
    ac.abort();
    const e = fail(await p);
    assert.equal(e.error.code, 'CANCELLED');
    assert.ok(Date.now() - t0 < 2500);
    assert.equal(rig.rt.services.audit.get(e.call_id)?.status, 'cancelled');
    await sleep(100);
    assert.ok(srv.abortedUrls().includes('/stall?id=cancel'), 'the server saw the request abandoned');
  });

  void it('check: a slow service fails max_latency_ms as a result, not an error', async () => {
    const r = ok(await rig.call({ action: 'check', url: `${srv.url}/slow?ms=2000`, max_latency_ms: 200 }));
    assert.equal(r.result.passed, false);
    assert.match(r.result.reasons[0], /max_latency_ms/);
  });

  void it('the pool still works after aborted requests', async () => {
    for (let i = 0; i < 3; i++) assert.equal(ok(await rig.call({ action: 'request', url: `${srv.url}/text` })).result.status, 200);
  });
});
