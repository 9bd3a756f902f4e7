import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { bareRemote, git, treeDiff, treeState, writeAndCommit } from '../fixtures/git.js';
import { repoProject } from './setup.js';

const WRITE = { repo: { write: true } };
/** push is irreversible: policy asks for confirmation by default; these tests turn it off. */
const PUSH = { repo: { write: true }, confirm: { 'repo.push': false } };

void test('write actions are refused with DENIED naming repo.write when policy leaves it off', async () => {
  const p = await repoProject();
  try {
    writeFileSync(join(p.root, 'x.txt'), 'x');
    const before = treeState(p.root);
    for (const args of [
      { action: 'commit', message: 'm', all: true },
      { action: 'branch_create', branch: 'b' },
      { action: 'checkout', ref: 'main' },
      { action: 'push', remote: 'origin' },
    ]) {
      const r = await p.fail(args);
      assert.equal(r.error.code, 'DENIED', JSON.stringify(args));
      assert.match(r.error.hint ?? '', /"write": true/);
    }
    assert.deepEqual(treeDiff(before, treeState(p.root)), []);
  } finally {
    await p.close();
  }
});

void test('commit: paths only, then all; nothing to commit is refused', async () => {
  const p = await repoProject(WRITE);
  try {
    writeFileSync(join(p.root, 'a.txt'), 'a\n');
    writeFileSync(join(p.root, 'b.txt'), 'b\n');
    const one = await p.ok({ action: 'commit', repo_path: '.', message: 'add a', paths: ['a.txt'] });
    assert.deepEqual(one.result.files, ['a.txt']);
    assert.equal(git(p.root, 'log', '-1', '--format=%s').trim(), 'add a');
    assert.match(git(p.root, 'status', '--porcelain'), /\?\? b\.txt/);
    const all = await p.ok({ action: 'commit', message: 'the rest', all: true });
    assert.deepEqual(all.result.files, ['b.txt']);
    assert.equal(all.result.commit, git(p.root, 'rev-parse', 'HEAD').trim());
    assert.equal(git(p.root, 'status', '--porcelain').trim(), '');
    const nothing = await p.fail({ action: 'commit', message: 'empty' });
    assert.equal(nothing.error.code, 'INVALID_ARGUMENT');
    assert.match(nothing.error.message, /nothing to commit/);
    const both = await p.fail({ action: 'commit', message: 'x', all: true, paths: ['a.txt'] });
    assert.equal(both.error.code, 'INVALID_ARGUMENT');
  } finally {
    await p.close();
  }
});

void test('a message that looks like an option is committed as text', async () => {
  const p = await repoProject(WRITE);
  try {
    writeFileSync(join(p.root, 'a.txt'), 'a\n');
    await p.ok({ action: 'commit', message: '--amend --no-verify', all: true });
    assert.equal(git(p.root, 'log', '-1', '--format=%s').trim(), '--amend --no-verify');
    assert.equal(git(p.root, 'rev-list', '--count', 'HEAD').trim(), '2');
  } finally {
    await p.close();
  }
});

void test('branch_create and checkout (branch, then a tag detached)', async () => {
  const p = await repoProject(WRITE);
  try {
    const c1 = git(p.root, 'rev-parse', 'HEAD').trim();
    writeAndCommit(p.root, 'a.txt', 'a', 'a');
    git(p.root, 'tag', 'v1', c1);
    const created = await p.ok({ action: 'branch_create', branch: 'feature/x', ref: c1 });
    assert.equal(created.result.commit, c1);
    assert.equal(git(p.root, 'rev-parse', 'feature/x').trim(), c1);
    assert.equal(git(p.root, 'symbolic-ref', '--short', 'HEAD').trim(), 'main');
    const dup = await p.fail({ action: 'branch_create', branch: 'feature/x' });
    assert.equal(dup.error.code, 'INVALID_ARGUMENT');
    const bad = await p.fail({ action: 'branch_create', branch: 'a..b' });
    assert.equal(bad.error.code, 'INVALID_ARGUMENT');

    const co = await p.ok({ action: 'checkout', branch: 'feature/x' });
    assert.equal(co.result.detached, false);
    assert.equal(git(p.root, 'symbolic-ref', '--short', 'HEAD').trim(), 'feature/x');
    assert.equal(existsSync(join(p.root, 'a.txt')), false);

    const tag = await p.ok({ action: 'checkout', ref: 'v1' });
    assert.equal(tag.result.detached, true);
    assert.equal(git(p.root, 'rev-parse', 'HEAD').trim(), c1);

    const withSwitch = await p.ok({ action: 'branch_create', branch: 'topic', ref: 'main', checkout: true });
    assert.equal(withSwitch.result.checked_out, true);
    assert.equal(git(p.root, 'symbolic-ref', '--short', 'HEAD').trim(), 'topic');
    const missing = await p.fail({ action: 'checkout', ref: 'nope' });
    assert.equal(missing.error.code, 'NOT_FOUND');
  } finally {
    await p.close();
  }
});

void test('checkout refuses a commit that would rewrite files in .infra/', async () => {
  const p = await repoProject(WRITE, { init: true });
  try {
    // a repository that tracks .infra/policy.json: an old commit has a different policy
    git(p.root, 'rm', '-q', '--cached', '.gitignore');
    writeFileSync(join(p.root, '.gitignore'), '.infra/artifacts/\n.infra/infra.db*\n');
    writeFileSync(join(p.infraDir, 'policy.json'), JSON.stringify({ repo: { write: true, force_push: true } }));
    git(p.root, 'add', '.gitignore', '.infra/policy.json');
    git(p.root, 'commit', '-q', '-m', 'permissive policy');
    const permissive = git(p.root, 'rev-parse', 'HEAD').trim();
    writeFileSync(join(p.infraDir, 'policy.json'), JSON.stringify({ repo: { write: true } }));
    git(p.root, 'commit', '-q', '-am', 'strict policy');
    const before = treeState(p.root, ['.infra/artifacts', '.infra/infra.db', '.infra/infra.db-wal', '.infra/infra.db-shm']);
    const r = await p.fail({ action: 'checkout', ref: permissive });
    assert.equal(r.error.code, 'DENIED');
    assert.match(r.error.message, /\.infra/);
    assert.deepEqual(
      treeDiff(before, treeState(p.root, ['.infra/artifacts', '.infra/infra.db', '.infra/infra.db-wal', '.infra/infra.db-shm'])),
      [],
    );
  } finally {
    await p.close();
  }
});

void test('write actions refuse a repository inside .infra/', async () => {
  const p = await repoProject({ repo: { write: true } });
  try {
    const inner = join(p.infraDir, 'inner');
    mkdirSync(inner);
    git(inner, 'init', '-q', '-b', 'main');
    writeFileSync(join(inner, 'f'), 'f');
    const r = await p.fail({ action: 'commit', repo_path: '.infra/inner', message: 'm', all: true });
    assert.equal(r.error.code, 'DENIED');
    assert.equal(existsSync(join(inner, '.git', 'index')), false);
  } finally {
    await p.close();
  }
});

void test('push asks for confirmation by default and is refused without a way to ask', async () => {
  const p = await repoProject(WRITE);
  try {
    const remote = bareRemote(p.root);
    const r = await p.fail({ action: 'push' });
    assert.equal(r.error.code, 'DENIED');
    assert.match(r.error.hint ?? '', /confirm/);
    assert.equal(git(remote, 'for-each-ref').trim(), '');
  } finally {
    await p.close();
  }
});

void test('push to a bare remote; a rejected push stays rejected; force needs repo.force_push', async () => {
  const p = await repoProject(PUSH);
  try {
    const remote = bareRemote(p.root);
    const first = await p.ok({ action: 'push', remote: 'origin', branch: 'main', set_upstream: true });
    assert.equal(first.result.status, 'new branch');
    assert.equal(git(remote, 'rev-parse', 'main').trim(), git(p.root, 'rev-parse', 'main').trim());
    writeAndCommit(p.root, 'a.txt', 'a', 'a');
    const second = await p.ok({ action: 'push' });
    assert.equal(second.result.branch, 'main');
    assert.equal(git(remote, 'rev-parse', 'main').trim(), git(p.root, 'rev-parse', 'main').trim());

    // rewrite local history: a normal push is rejected and the remote keeps its commit
    const remoteHead = git(remote, 'rev-parse', 'main').trim();
    git(p.root, 'reset', '-q', '--hard', 'HEAD~1');
    writeAndCommit(p.root, 'b.txt', 'b', 'b');
    const rejected = await p.fail({ action: 'push' });
    assert.equal(rejected.error.code, 'UPSTREAM_ERROR');
    assert.match(rejected.error.message, /rejected/);
    assert.equal(git(remote, 'rev-parse', 'main').trim(), remoteHead);
    const forced = await p.fail({ action: 'push', force: true });
    assert.equal(forced.error.code, 'DENIED');
    assert.match(forced.error.hint ?? '', /force_push/);
    assert.equal(git(remote, 'rev-parse', 'main').trim(), remoteHead);

    const unknown = await p.fail({ action: 'push', remote: 'elsewhere' });
    assert.equal(unknown.error.code, 'NOT_FOUND');
  } finally {
    await p.close();
  }
});

void test('force push with repo.force_push uses --force-with-lease', async () => {
  const p = await repoProject({ repo: { write: true, force_push: true }, confirm: { 'repo.push': false } });
  try {
    const remote = bareRemote(p.root);
    writeAndCommit(p.root, 'a.txt', 'a', 'a');
    git(p.root, 'push', '-q', '-u', 'origin', 'main');
    git(p.root, 'reset', '-q', '--hard', 'HEAD~1');
    writeAndCommit(p.root, 'b.txt', 'b', 'b');
    const r = await p.ok({ action: 'push', force: true });
    assert.equal(r.result.forced, true);
    assert.equal(git(remote, 'rev-parse', 'main').trim(), git(p.root, 'rev-parse', 'main').trim());
  } finally {
    await p.close();
  }
});

void test('a remote given as a URL or path is refused: only configured remote names', async () => {
  const p = await repoProject(PUSH);
  try {
    const elsewhere = bareRemote();
    const before = treeState(elsewhere);
    const asPath = await p.fail({ action: 'push', remote: elsewhere, branch: 'main' });
    assert.equal(asPath.error.code, 'INVALID_ARGUMENT');
    const asUrl = await p.fail({ action: 'push', remote: 'ext::sh -c touch% /tmp/pwned', branch: 'main' });
    assert.equal(asUrl.error.code, 'INVALID_ARGUMENT');
    assert.deepEqual(treeDiff(before, treeState(elsewhere)), []);
  } finally {
    await p.close();
  }
});
