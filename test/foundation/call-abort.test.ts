// A call's cancellation and deadline (src/exec/call-abort.ts): one shared timer for every
// deadline, and the client's cancel followed from the end of the turn a call started in.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ToolError } from '../../src/core/errors.js';
import { CallAbort, Deadlines } from '../../src/exec/call-abort.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('deadlines on one timer', () => {
  it('fires each due deadline once, in time order, and never a cleared one', async () => {
    const d = new Deadlines();
    const fired: string[] = [];
    const now = Date.now();
    d.add(now + 80, () => fired.push('late'));
    const clear = d.add(now + 30, () => fired.push('cleared'));
    d.add(now + 20, () => fired.push('early'));
    clear();
    await tick(50);
    assert.deepEqual(fired, ['early']);
    await tick(60);
    assert.deepEqual(fired, ['early', 'late']);
  });

  it('a deadline added before the armed one re-arms the timer for it', async () => {
    const d = new Deadlines();
    const fired: string[] = [];
    d.add(Date.now() + 10_000, () => fired.push('far'));
    d.add(Date.now() + 15, () => fired.push('near'));
    await tick(60);
    assert.deepEqual(fired, ['near']);
  });
});

describe('call abort', () => {
  it('makes its AbortSignal only when asked, aborted already if the call was', () => {
    const a = new CallAbort();
    a.abort(new ToolError('TIMEOUT', 'too slow'));
    const s = a.signal;
    assert.equal(s.aborted, true);
    assert.equal((s.reason as ToolError).code, 'TIMEOUT');
    // the first reason stays
    a.abort(new ToolError('CANCELLED', 'late'));
    assert.equal(a.reason?.code, 'TIMEOUT');
  });

  it('a client cancel arriving after the first turn aborts the call and its signal', async () => {
    const client = new AbortController();
    const a = new CallAbort();
    const seen: string[] = [];
    a.onAbort(() => seen.push('listener'));
    a.followSoon(client.signal);
    const sig = a.signal;
    await tick(5);
    client.abort();
    assert.equal(a.reason?.code, 'CANCELLED');
    assert.equal(sig.aborted, true);
    assert.deepEqual(seen, ['listener']);
  });

  it('a cancel that came before the call followed is still seen', async () => {
    const client = new AbortController();
    const a = new CallAbort();
    a.followSoon(client.signal);
    client.abort(); // before the end of this turn, when the listener is not there yet
    await tick(5);
    assert.equal(a.reason?.code, 'CANCELLED');
  });

  it('a call that ended follows nothing more', async () => {
    const client = new AbortController();
    const a = new CallAbort();
    a.followSoon(client.signal);
    a.ended();
    await tick(5);
    client.abort();
    assert.equal(a.aborted, false);
  });

  it('a removed abort listener is not called', () => {
    const a = new CallAbort();
    let n = 0;
    const off = a.onAbort(() => n++);
    off();
    a.abort(new ToolError('CANCELLED', 'x'));
    assert.equal(n, 0);
  });
});
