import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { bareRemote, git, initRepo, writeAndCommit } from '../fixtures/git.js';
import { repoProject } from './setup.js';

function artifactFile(infraDir: string, uri: string): string {
  return join(infraDir, 'artifacts', uri.replace(/^artifact:\/\//, ''));
}

void test('snapshot: the seed example {repo_path: "."} returns branch, HEAD, status, commits and diffstat', async () => {
  const p = await repoProject();
  try {
    writeAndCommit(p.root, 'src/app.txt', 'one\n', 'add app');
    writeFileSync(join(p.root, 'src/app.txt'), 'one\ntwo\n');
    writeFileSync(join(p.root, 'new.txt'), 'new\n');
    const r = await p.ok({ action: 'snapshot', repo_path: '.' });
    assert.equal(r.result.branch, 'main');
    assert.equal(r.result.repo_path, '.');
    assert.equal(r.result.head, git(p.root, 'rev-parse', 'HEAD').trim());
    assert.equal(r.result.head_subject, 'add app');
    assert.equal(r.result.commits.length, 2);
    assert.equal(r.result.status.clean, false);
    assert.equal(r.result.status.counts.modified, 1);
    assert.equal(r.result.status.counts.untracked, 1);
    assert.deepEqual(r.result.diffstat.files, [{ path: 'src/app.txt', added: 1, deleted: 0 }]);
    // the alias of the seed documents works too
    const viaAlias = await p.rt.call('mcp_repo', { action: 'snapshot', repo_path: '.' });
    assert.equal(viaAlias.ok, true);
  } finally {
    await p.close();
  }
});

void test('snapshot of a freshly initialised repository without commits', async () => {
  const p = await repoProject({}, { commit: false });
  try {
    const r = await p.ok({ action: 'snapshot' });
    assert.equal(r.result.head, null);
    assert.equal(r.result.branch, 'main');
    assert.deepEqual(r.result.commits, []);
  } finally {
    await p.close();
  }
});

void test('status lists staged, modified and untracked files', async () => {
  const p = await repoProject();
  try {
    writeFileSync(join(p.root, 'README.md'), 'changed\n');
    writeFileSync(join(p.root, 'staged.txt'), 's\n');
    git(p.root, 'add', 'staged.txt');
    writeFileSync(join(p.root, 'loose.txt'), 'l\n');
    const r = await p.ok({ action: 'status', repo_path: '.' });
    assert.equal(r.result.clean, false);
    const byPath = Object.fromEntries(r.result.files.map((f: { path: string }) => [f.path, f]));
    assert.equal(byPath['staged.txt'].index, 'A');
    assert.equal(byPath['README.md'].working_dir, 'M');
    assert.equal(byPath['loose.txt'].index, '?');
  } finally {
    await p.close();
  }
});

void test('log: max_count, ref and path', async () => {
  const p = await repoProject();
  try {
    writeAndCommit(p.root, 'a.txt', '1', 'a1');
    writeAndCommit(p.root, 'b.txt', '1', 'b1');
    git(p.root, 'branch', 'older', 'HEAD~1');
    writeAndCommit(p.root, 'a.txt', '2', 'a2');
    const all = await p.ok({ action: 'log', repo_path: '.' });
    assert.deepEqual(
      all.result.commits.map((c: { subject: string }) => c.subject),
      ['a2', 'b1', 'a1', 'initial commit'],
    );
    const two = await p.ok({ action: 'log', max_count: 2 });
    assert.equal(two.result.commits.length, 2);
    const onRef = await p.ok({ action: 'log', ref: 'older' });
    assert.deepEqual(
      onRef.result.commits.map((c: { subject: string }) => c.subject),
      ['a1', 'initial commit'],
    );
    const onPath = await p.ok({ action: 'log', path: 'a.txt' });
    assert.deepEqual(
      onPath.result.commits.map((c: { subject: string }) => c.subject),
      ['a2', 'a1'],
    );
    const range = await p.ok({ action: 'log', ref: 'older..main' });
    assert.deepEqual(
      range.result.commits.map((c: { subject: string }) => c.subject),
      ['a2', 'b1'],
    );
    const missing = await p.fail({ action: 'log', ref: 'no-such-branch' });
    assert.equal(missing.error.code, 'NOT_FOUND');
  } finally {
    await p.close();
  }
});

void test('diff: working tree, staged, between refs, path filter', async () => {
  const p = await repoProject();
  try {
    const c1 = writeAndCommit(p.root, 'a.txt', 'one\n', 'a');
    const c2 = writeAndCommit(p.root, 'b.txt', 'two\n', 'b');
    writeFileSync(join(p.root, 'a.txt'), 'one\nmore\n');
    writeFileSync(join(p.root, 'b.txt'), 'staged\n');
    git(p.root, 'add', 'b.txt');

    const wt = await p.ok({ action: 'diff' });
    assert.equal(wt.result.mode, 'worktree');
    assert.match(wt.result.diff.text, /\+more/);
    assert.doesNotMatch(wt.result.diff.text, /staged/);
    assert.deepEqual(
      wt.result.stat.files.map((f: { path: string }) => f.path),
      ['a.txt'],
    );

    const staged = await p.ok({ action: 'diff', staged: true });
    assert.match(staged.result.diff.text, /\+staged/);
    assert.doesNotMatch(staged.result.diff.text, /\+more/);

    const between = await p.ok({ action: 'diff', from: c1, to: c2 });
    assert.equal(between.result.mode, 'commits');
    assert.match(between.result.diff.text, /\+\+\+ b\/b\.txt/);
    assert.equal(between.result.stat.files_changed, 1);

    const filtered = await p.ok({ action: 'diff', from: 'HEAD~2', paths: ['b.txt'] });
    assert.deepEqual(
      filtered.result.stat.files.map((f: { path: string }) => f.path),
      ['b.txt'],
    );

    // the full diff is in the call's artifact
    const file = artifactFile(p.infraDir, wt.result.diff.artifact);
    assert.equal(readFileSync(file, 'utf8'), wt.result.diff.text);
  } finally {
    await p.close();
  }
});

void test('diff: a big diff is bounded inline and complete in the artifact', async () => {
  const p = await repoProject();
  try {
    const big = Array.from({ length: 20000 }, (_, i) => `line ${i} ${'x'.repeat(40)}`).join('\n') + '\n';
    writeFileSync(join(p.root, 'big.txt'), big);
    git(p.root, 'add', 'big.txt');
    const r = await p.ok({ action: 'diff', staged: true, max_bytes: 4096 });
    assert.equal(r.result.diff.truncated, true);
    assert.ok(Buffer.byteLength(r.result.diff.text) <= 4096 + 200, `inline part ${Buffer.byteLength(r.result.diff.text)} bytes`);
    assert.ok(r.truncated?.diff, 'the envelope reports the truncated stream');
    const full = readFileSync(artifactFile(p.infraDir, r.result.diff.artifact), 'utf8');
    assert.equal(Buffer.byteLength(full), r.result.diff.bytes);
    assert.match(full, /\+line 19999 x+/);
    assert.equal(r.result.stat.insertions, 20000);
  } finally {
    await p.close();
  }
});

void test('show: a commit with its patch, and a file at a ref', async () => {
  const p = await repoProject();
  try {
    const c1 = writeAndCommit(p.root, 'conf/app.ini', 'port=1\n', 'first config');
    writeAndCommit(p.root, 'conf/app.ini', 'port=2\n', 'second config');
    const commit = await p.ok({ action: 'show', ref: c1 });
    assert.equal(commit.result.kind, 'commit');
    assert.equal(commit.result.commit.subject, 'first config');
    assert.match(commit.result.output.text, /\+port=1/);
    const file = await p.ok({ action: 'show', ref: c1, path: 'conf/app.ini' });
    assert.equal(file.result.kind, 'file');
    assert.equal(file.result.output.text, 'port=1\n');
    const head = await p.ok({ action: 'show', path: 'conf/app.ini' });
    assert.equal(head.result.output.text, 'port=2\n');
    const missing = await p.fail({ action: 'show', ref: c1, path: 'nope.txt' });
    assert.equal(missing.error.code, 'NOT_FOUND');
  } finally {
    await p.close();
  }
});

void test('branches: local and remote with ahead/behind', async () => {
  const p = await repoProject();
  try {
    const remote = bareRemote(p.root);
    git(p.root, 'push', '-q', '-u', 'origin', 'main');
    writeAndCommit(p.root, 'local.txt', '1', 'local only');
    // another clone pushes a commit the project has not seen
    const other = initRepo(join(p.root, '..', `${p.root.split('/').pop()}-other`), { commit: false });
    git(other, 'remote', 'add', 'origin', remote);
    git(other, 'fetch', '-q', 'origin');
    git(other, 'checkout', '-q', '-b', 'main', 'origin/main');
    writeAndCommit(other, 'remote.txt', '1', 'remote only');
    git(other, 'push', '-q', 'origin', 'main');
    git(p.root, 'fetch', '-q', 'origin');
    git(p.root, 'branch', 'feature');

    const r = await p.ok({ action: 'branches', repo_path: '.' });
    assert.equal(r.result.current, 'main');
    const main = r.result.local.find((b: { name: string }) => b.name === 'main');
    assert.equal(main.current, true);
    assert.equal(main.upstream, 'origin/main');
    assert.equal(main.ahead, 1);
    assert.equal(main.behind, 1);
    assert.ok(r.result.local.some((b: { name: string }) => b.name === 'feature'));
    assert.ok(r.result.remote.some((b: { name: string }) => b.name === 'origin/main'));
  } finally {
    await p.close();
  }
});

void test('repo_path may name a subdirectory, and repo.roots may allow other repositories', async () => {
  const p = await repoProject({ repo: { roots: ['.', 'vendor'] } });
  try {
    mkdirSync(join(p.root, 'vendor'));
    const lib = initRepo(join(p.root, 'vendor', 'lib'));
    writeAndCommit(lib, 'lib.txt', 'x', 'lib commit');
    const r = await p.ok({ action: 'log', repo_path: 'vendor/lib' });
    assert.equal(r.result.commits[0].subject, 'lib commit');
    assert.equal(r.result.root, lib);
    mkdirSync(join(p.root, 'docs'));
    writeAndCommit(p.root, 'docs/guide.md', 'g', 'docs');
    const sub = await p.ok({ action: 'log', repo_path: 'docs', path: 'guide.md' });
    assert.deepEqual(
      sub.result.commits.map((c: { subject: string }) => c.subject),
      ['docs'],
    );
  } finally {
    await p.close();
  }
});

void test('every call is audited with its artifact', async () => {
  const p = await repoProject();
  try {
    const r = await p.ok({ action: 'status' });
    const denied = await p.fail({ action: 'commit', message: 'x', all: true });
    const rows = p.rt.services.audit.list({ limit: 10 } as never) as unknown as {
      id?: string;
      call_id?: string;
      tool: string;
      action: string;
      status: string;
    }[];
    const ids = rows.map((row) => row.id ?? row.call_id);
    assert.ok(ids.includes(r.call_id));
    assert.ok(ids.includes(denied.call_id));
    assert.ok(rows.some((row) => row.tool === 'repo' && row.action === 'commit' && row.status === 'denied'));
  } finally {
    await p.close();
  }
});
