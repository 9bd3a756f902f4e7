import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { BusyPoll } from '../../src/server/busy-poll.js';
import { GuardedStdioServerTransport } from '../../src/server/stdio-transport.js';
import { startStdio } from '../helpers/client.js';
import { cpuTimeMs } from '../helpers/proc.js';
import { eventually } from '../helpers/wait.js';
import { makeProject } from '../helpers/project.js';

/**
 * Waits (up to 3 s) until the poller has made more than `n` turns; returns its turns. Turn counts
 * depend on how much CPU the test gets (a loaded machine gives few), but more than one shows the
 * loop re-arming itself, where a loop that sleeps makes none.
 */
async function turnsPast(poll: BusyPoll, n: number): Promise<number> {
  await eventually(() => poll.turns > n, 3000, 5);
  return poll.turns;
}

describe('busy polling (src/server/busy-poll.ts)', () => {
  it('INFRA_BUSY_POLL_US: default 1000 µs per request, 0 turns it off, one CPU turns it off, garbage is reported', () => {
    const def = BusyPoll.fromEnv({}, 2);
    assert.equal(def.poll?.budgetUs, 1000);
    assert.equal(def.poll?.afterUs, 250);
    assert.equal(def.problem, undefined);
    assert.equal(BusyPoll.fromEnv({ INFRA_BUSY_POLL_US: '0' }, 2).poll, undefined);
    assert.equal(BusyPoll.fromEnv({}, 1).poll, undefined, 'a single CPU: polling would starve what it waits for');
    assert.equal(BusyPoll.fromEnv({ INFRA_BUSY_POLL_US: '5000' }, 4).poll?.budgetUs, 5000);
    assert.equal(
      BusyPoll.fromEnv({ INFRA_BUSY_POLL_US: '100' }, 4).poll?.afterUs,
      100,
      'the after-reply window is never longer than the budget',
    );
    assert.equal(BusyPoll.fromEnv({ INFRA_BUSY_POLL_US: '1e12' }, 4).poll?.budgetUs, 100_000, 'capped at 100 ms');
    const bad = BusyPoll.fromEnv({ INFRA_BUSY_POLL_US: 'fast' }, 2);
    assert.equal(bad.poll?.budgetUs, 1000);
    assert.match(bad.problem ?? '', /INFRA_BUSY_POLL_US="fast" is not a number of microseconds \(0 turns busy polling off\)/);
  });

  it('polls while a request is open and in the window after its reply, then stops', async () => {
    const poll = new BusyPoll(60_000_000, 200_000); // a budget of 60 s, a window of 200 ms
    const end = poll.begin();
    const during = await turnsPast(poll, 2);
    assert.ok(during > 2, `the loop kept turning while the request was open (${during} turns)`);
    end();
    end(); // a second end is a no-op
    assert.ok((await turnsPast(poll, during + 2)) > during + 2, 'it polls in the window after the reply');
    await sleep(300);
    const settled = poll.turns;
    await sleep(30);
    assert.equal(poll.turns, settled, 'no polling once the reply window has passed');
  });

  it('a request that outlasts its budget stops the polling (it sleeps like any other wait)', async () => {
    const poll = new BusyPoll(2_000, 0);
    poll.begin(); // never ended
    await sleep(20);
    const turns = poll.turns;
    await sleep(20);
    assert.equal(poll.turns, turns, 'stopped after the 2 ms budget');
  });

  it('the stdio transport polls while a direct tools/call is answered and stops after it', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const transport = new GuardedStdioServerTransport(stdin, stdout);
    const poll = new BusyPoll(5_000_000, 1_000);
    transport.busyPoll = poll;
    // each request is answered once the poller has turned a few times (or after 3 s)
    transport.direct = () => turnsPast(poll, 2).then(() => '{"content":[]}');
    await transport.start();
    const reply = new Promise<string>((resolve) => stdout.once('data', (d: Buffer) => resolve(d.toString())));
    stdin.write('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"state","arguments":{}}}\n');
    assert.equal(await reply, '{"result":{"content":[]},"jsonrpc":"2.0","id":7}\n');
    assert.ok(poll.turns > 2, `polled while answering (${poll.turns} turns)`);
    await sleep(20);
    const turns = poll.turns;
    await sleep(20);
    assert.equal(poll.turns, turns, 'stopped after the reply window');

    // a request whose handling fails ends its polling too
    transport.direct = () => turnsPast(poll, turns + 2).then(() => Promise.reject(new Error('boom')));
    const failed = new Promise<string>((resolve) => stdout.once('data', (d: Buffer) => resolve(d.toString())));
    stdin.write('{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"state","arguments":{}}}\n');
    assert.equal(await failed, '{"jsonrpc":"2.0","id":8,"error":{"code":-32603,"message":"boom"}}\n');
    assert.ok(poll.turns > turns + 2, 'polled while the failing request was open');
    await sleep(20);
    const after = poll.turns;
    await sleep(20);
    assert.equal(poll.turns, after, 'stopped after the failed request');
    await transport.close();
  });

  it('an idle server burns no CPU after a burst of calls (polling on and off)', async () => {
    for (const env of [{}, { INFRA_BUSY_POLL_US: '0' }] as Record<string, string>[]) {
      const p = makeProject();
      const s = await startStdio({ env: { MCP_PROFILES_DIR: p.infraDir, ...env } });
      try {
        assert.equal((await s.call('state', { action: 'set', key: 'k', value: 'v' })).ok, true);
        for (let i = 0; i < 200; i++) assert.equal((await s.call('state', { action: 'get', key: 'k' })).ok, true);
        await sleep(300); // the record worker commits and lays out what the burst left
        const before = cpuTimeMs(s.pid);
        await sleep(1000);
        const used = cpuTimeMs(s.pid) - before;
        assert.ok(used <= 60, `${JSON.stringify(env)}: ${used} ms of CPU in 1 s of idleness`);
      } finally {
        await s.close();
        p.cleanup();
      }
    }
  });
});
