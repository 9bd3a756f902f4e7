// A git operation that outlasts its call: a push to an HTTP remote that accepts the connection
// and never answers. The call's timeout and the client's cancel must end it, git's transport
// helper included (git runs `git-remote-http` as a process of its own), and let the
// connection go.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { git } from '../fixtures/git.js';
import { eventually } from '../helpers/wait.js';
import { repoProject, type RepoProject } from './setup.js';

interface Stall {
  server: Server;
  port: number;
  open: Set<Socket>;
  accepted: () => number;
}

/** Accepts connections, reads what is sent, never answers. */
async function stallingRemote(): Promise<Stall> {
  const open = new Set<Socket>();
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    open.add(s);
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, port, open, accepted: () => accepted };
}

/** Processes whose command line names the stalling remote's port. */
function gitProcessesFor(port: number): string[] {
  const r = spawnSync('pgrep', ['-a', '-f', `127.0.0.1:${port}/`], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.trim() && !l.includes('pgrep'));
}

let stall: Stall;
let p: RepoProject;

before(async () => {
  stall = await stallingRemote();
  p = await repoProject({ repo: { write: true }, confirm: { 'repo.push': false } });
  git(p.root, 'remote', 'add', 'origin', `http://127.0.0.1:${stall.port}/remote.git`);
});

after(async () => {
  await p?.close();
  for (const s of stall?.open ?? []) s.destroy();
  stall?.server.close();
});

void describe('repo calls that outlast their time', () => {
  test('a push to a remote that never answers ends at timeout_ms with TIMEOUT, git and its transport helper gone', async () => {
    const before = stall.accepted();
    const started = Date.now();
    const r = await p.fail({ action: 'push', branch: 'main', timeout_ms: 1500 });
    const took = Date.now() - started;
    assert.equal(r.error.code, 'TIMEOUT', JSON.stringify(r.error));
    assert.ok(took < 5000, `the call took ${took} ms`);
    assert.ok(stall.accepted() > before, 'git reached the remote');
    assert.ok(await eventually(() => stall.open.size === 0, 3000), `connections still open: ${stall.open.size}`);
    assert.deepEqual(gitProcessesFor(stall.port), [], 'no git process is left talking to the remote');
  });

  test('a client cancel ends a push the same way, with CANCELLED', async () => {
    const before = stall.accepted();
    const ac = new AbortController();
    const pending = p.rt.call('repo', { action: 'push', branch: 'main', timeout_ms: 60_000 }, { signal: ac.signal });
    assert.ok(await eventually(() => stall.accepted() > before, 10_000), 'git reached the remote');
    ac.abort();
    const r = await pending;
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.code, 'CANCELLED');
    assert.ok(await eventually(() => stall.open.size === 0, 3000), `connections still open: ${stall.open.size}`);
    assert.deepEqual(gitProcessesFor(stall.port), []);
    // the audit row says so
    const row = p.rt.services.audit.get(r.call_id);
    assert.equal(row?.status, 'cancelled');
  });
});
