/**
 * Confirmation end to end through stdio with the SDK Client: an irreversible action (repo push)
 * or one policy marks `confirm` (state.set) asks through elicitation/create, runs on accept, is
 * DENIED on decline, DENIED with a hint naming the confirm key when the client has no
 * elicitation, and runs without asking when policy says `confirm: false`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { ElicitRequestSchema, type ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import { bareRemote, git, initRepo, writeAndCommit } from '../fixtures/git.js';
import { makeProject, type TempProject } from '../helpers/project.js';
import { CLI, startStdio, type StdioSession } from '../helpers/client.js';

const sessions: StdioSession[] = [];
const projects: TempProject[] = [];

before(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
});
after(async () => {
  for (const s of sessions) await s.close();
  for (const p of projects) p.cleanup();
});

interface Rig {
  session: StdioSession;
  project: TempProject;
  bare: string;
  asked: { message: string }[];
}

/** A project whose root is a git repo with an `origin`; policy allows repo writes. */
async function rig(opts: { elicitation: 'accept' | 'decline' | 'cancel' | 'none'; confirm?: Record<string, boolean> }): Promise<Rig> {
  const project = makeProject({ 'policy.json': { repo: { write: true }, confirm: { 'state.set': true, ...opts.confirm } } });
  projects.push(project);
  initRepo(project.root);
  const bare = bareRemote(project.root);
  writeAndCommit(project.root, 'change.txt', 'to push\n', 'a change to push');
  const session = await startStdio({
    env: { MCP_PROFILES_DIR: project.infraDir },
    capabilities: opts.elicitation === 'none' ? {} : { elicitation: {} },
  });
  sessions.push(session);
  const asked: { message: string }[] = [];
  if (opts.elicitation !== 'none') {
    const answer = opts.elicitation;
    session.client.setRequestHandler(ElicitRequestSchema, async (req): Promise<ElicitResult> => {
      asked.push({ message: req.params.message });
      return answer === 'accept' ? { action: 'accept', content: { confirm: true } } : { action: answer };
    });
  }
  return { session, project, bare, asked };
}

const remoteHead = (bare: string): string => {
  try {
    return git(bare, 'rev-parse', 'refs/heads/main').trim();
  } catch {
    return '';
  }
};

void describe('confirmation through elicitation (stdio, SDK client)', () => {
  void it('accept: repo push (irreversible) asks once and runs', async () => {
    const r = await rig({ elicitation: 'accept' });
    const env = await r.session.call('repo', { action: 'push', repo_path: '.', branch: 'main' });
    assert.ok(env.ok, JSON.stringify(env));
    assert.equal(r.asked.length, 1);
    assert.match(r.asked[0]!.message, /repo\.push/);
    assert.equal(remoteHead(r.bare), git(r.project.root, 'rev-parse', 'HEAD').trim());
  });

  void it('decline and cancel: DENIED, nothing pushed, policy-marked actions too', async () => {
    for (const answer of ['decline', 'cancel'] as const) {
      const r = await rig({ elicitation: answer });
      const env = await r.session.call('repo', { action: 'push', repo_path: '.', branch: 'main' });
      assert.equal(env.ok, false);
      assert.equal((env.error as { code: string }).code, 'DENIED');
      assert.equal(remoteHead(r.bare), '', 'nothing reached the remote');
      const st = await r.session.call('state', { action: 'set', key: 'k', value: 'v' });
      assert.equal((st.error as { code: string } | undefined)?.code, 'DENIED', 'state.set is marked confirm in policy');
      assert.equal(r.asked.length, 2);
      const get = await r.session.call('state', { action: 'get', key: 'k' });
      assert.notEqual((get.result as { value?: unknown } | undefined)?.value, 'v');
    }
  });

  void it('no elicitation in the client: DENIED with a hint naming the confirm key', async () => {
    const r = await rig({ elicitation: 'none' });
    const env = await r.session.call('repo', { action: 'push', repo_path: '.', branch: 'main' });
    assert.equal(env.ok, false);
    const err = env.error as { code: string; message: string; hint: string; details?: { confirm_key?: string } };
    assert.equal(err.code, 'DENIED');
    assert.match(err.message, /needs the user's confirmation/);
    assert.match(err.hint, /"confirm": \{ "repo\.push": false \}/);
    assert.equal(err.details?.confirm_key, 'repo.push');
    assert.equal(remoteHead(r.bare), '');
  });

  void it('confirm: false in policy runs without asking', async () => {
    const r = await rig({ elicitation: 'decline', confirm: { 'repo.push': false, 'state.set': false } });
    const env = await r.session.call('repo', { action: 'push', repo_path: '.', branch: 'main' });
    assert.ok(env.ok, JSON.stringify(env));
    assert.ok((await r.session.call('state', { action: 'set', key: 'k', value: 'v' })).ok);
    assert.equal(r.asked.length, 0, 'never asked');
    assert.notEqual(remoteHead(r.bare), '');
  });
});
