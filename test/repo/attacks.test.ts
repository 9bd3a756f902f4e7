import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runGit } from '../../src/adapters/git.js';
import { bareRemote, git, initRepo, tempDir, treeDiff, treeState, writeAndCommit } from '../fixtures/git.js';
import { repoProject, type RepoProject } from './setup.js';

/**
 * Replays of the argument-injection and path-escape attacks reported against git MCP servers.
 * Each proves the call was refused and that nothing was written: the project tree (outside
 * .infra, where the audit and artifacts live) and any target outside it stay byte-identical.
 */

const WRITE_ALL = { repo: { write: true, force_push: false }, confirm: { 'repo.push': false } };

async function expectRefused(p: RepoProject, args: Record<string, unknown>, code: string, watch: string[] = []): Promise<void> {
  const before = treeState(p.root);
  const outside = watch.map((w) => (existsSync(w) ? treeState(w, []) : null));
  const r = await p.fail(args);
  assert.equal(r.error.code, code, `${JSON.stringify(args)} → ${JSON.stringify(r.error)}`);
  assert.deepEqual(treeDiff(before, treeState(p.root)), [], 'the project tree changed');
  watch.forEach((w, i) => {
    const was = outside[i];
    if (was === null) assert.equal(existsSync(w), false, `${w} was created`);
    else assert.deepEqual(treeDiff(was!, treeState(w, [])), [], `${w} changed`);
  });
}

void test('attack: --output=/tmp/x as a ref writes no file (log, diff, show, from, to, checkout, branch_create)', async () => {
  const p = await repoProject(WRITE_ALL);
  const dir = tempDir('infra-attack-');
  const target = join(dir, 'x');
  try {
    writeAndCommit(p.root, 'a.txt', 'a', 'a');
    for (const args of [
      { action: 'log', ref: `--output=${target}` },
      { action: 'diff', ref: `--output=${target}` },
      { action: 'diff', from: 'HEAD', to: `--output=${target}` },
      { action: 'show', ref: `--output=${target}` },
      { action: 'checkout', ref: `--output=${target}` },
      { action: 'branch_create', branch: 'x', ref: `--output=${target}` },
    ]) {
      await expectRefused(p, args, 'INVALID_ARGUMENT', [target]);
    }
    const r = await p.fail({ action: 'log', ref: `--output=${target}` });
    assert.match(r.error.message, /ref/, 'the error names the argument');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await p.close();
  }
});

void test('attack: a ref named "-c core.sshCommand=…" never reaches git as an option', async () => {
  const p = await repoProject(WRITE_ALL);
  const dir = tempDir('infra-attack-');
  const marker = join(dir, 'pwned');
  try {
    bareRemote(p.root);
    const payload = `-c core.sshCommand=touch ${marker}`;
    for (const args of [
      { action: 'log', ref: payload },
      { action: 'diff', from: payload },
      { action: 'show', ref: payload },
      { action: 'checkout', ref: payload },
      { action: 'branch_create', branch: payload },
      { action: 'push', remote: payload },
      { action: 'push', branch: payload },
      { action: 'log', ref: '-ccore.sshCommand=x' },
    ]) {
      await expectRefused(p, args, 'INVALID_ARGUMENT', [marker]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await p.close();
  }
});

void test('attack: an --upload-pack / --receive-pack option is refused as an argument, a ref or a remote', async () => {
  const p = await repoProject(WRITE_ALL);
  const dir = tempDir('infra-attack-');
  const marker = join(dir, 'pwned');
  try {
    const remote = bareRemote(p.root);
    for (const args of [
      { action: 'push', remote: `--receive-pack=touch ${marker}` },
      { action: 'push', remote: 'origin', branch: `--upload-pack=touch ${marker}` },
      { action: 'push', remote: 'origin', upload_pack: `touch ${marker}` },
      { action: 'push', remote: 'origin', receive_pack: `touch ${marker}` },
      { action: 'log', ref: `--upload-pack=touch ${marker}` },
      { action: 'snapshot', options: ['--upload-pack=x'] },
    ]) {
      await expectRefused(p, args, 'INVALID_ARGUMENT', [marker, remote]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await p.close();
  }
});

void test('attack: ../ and absolute repo_path outside the root are refused', async () => {
  const p = await repoProject(WRITE_ALL);
  const outside = initRepo(tempDir('infra-outside-'));
  writeFileSync(join(outside, 'dirty.txt'), 'x');
  try {
    const rel = `../${outside.split('/').slice(-1)[0]}`;
    for (const repo_path of [outside, rel, '..', '../..', '/', `./sub/../../${outside.split('/').pop()}`, '~']) {
      await expectRefused(p, { action: 'status', repo_path }, 'DENIED', [outside]);
      await expectRefused(p, { action: 'commit', repo_path, message: 'm', all: true }, 'DENIED', [outside]);
    }
  } finally {
    rmSync(outside, { recursive: true, force: true });
    await p.close();
  }
});

void test('attack: ../ and absolute paths outside the repository are refused (log, diff, show, commit)', async () => {
  const p = await repoProject(WRITE_ALL);
  const outside = tempDir('infra-outside-');
  writeFileSync(join(outside, 'secret.txt'), 'secret');
  try {
    for (const args of [
      { action: 'log', path: '../outside.txt' },
      { action: 'diff', paths: [join(outside, 'secret.txt')] },
      { action: 'show', path: '../../etc/passwd' },
      { action: 'commit', message: 'm', paths: [join(outside, 'secret.txt')] },
      { action: 'commit', message: 'm', paths: ['../x'] },
    ]) {
      await expectRefused(p, args, 'DENIED', [outside]);
    }
    await expectRefused(p, { action: 'diff', paths: ['--output=/tmp/x'] }, 'INVALID_ARGUMENT');
    await expectRefused(p, { action: 'log', repo_path: 'a\0b' }, 'INVALID_ARGUMENT');
  } finally {
    rmSync(outside, { recursive: true, force: true });
    await p.close();
  }
});

void test('attack: a symlink pointing out of the root cannot be used as repo_path', async () => {
  const p = await repoProject(WRITE_ALL);
  const outside = initRepo(tempDir('infra-outside-'));
  writeFileSync(join(outside, 'dirty.txt'), 'x');
  try {
    symlinkSync(outside, join(p.root, 'link'));
    git(p.root, 'add', 'link');
    git(p.root, 'commit', '-q', '-m', 'link');
    await expectRefused(p, { action: 'status', repo_path: 'link' }, 'DENIED', [outside]);
    await expectRefused(p, { action: 'log', repo_path: 'link/.' }, 'DENIED', [outside]);
    await expectRefused(p, { action: 'commit', repo_path: 'link', message: 'm', all: true }, 'DENIED', [outside]);
  } finally {
    rmSync(outside, { recursive: true, force: true });
    await p.close();
  }
});

void test('attack: a repository whose .git lives outside the root (gitfile) is refused', async () => {
  const p = await repoProject(WRITE_ALL);
  const outside = tempDir('infra-outside-');
  try {
    // sub/ looks like a repo inside the root, but its git directory is elsewhere
    const real = initRepo(join(outside, 'real'));
    const sub = join(p.root, 'sub');
    mkdirSync(sub);
    writeFileSync(join(sub, '.git'), `gitdir: ${join(real, '.git')}\n`);
    writeFileSync(join(sub, 'new.txt'), 'n');
    await expectRefused(p, { action: 'status', repo_path: 'sub' }, 'DENIED', [outside]);
    await expectRefused(p, { action: 'commit', repo_path: 'sub', message: 'm', all: true }, 'DENIED', [outside]);
  } finally {
    rmSync(outside, { recursive: true, force: true });
    await p.close();
  }
});

void test('attack: a repository created in a disallowed place (above the root) is not discovered', async () => {
  // the project root is not a repository, but its parent is: git would climb up to it
  const parent = tempDir('infra-parent-');
  try {
    initRepo(parent);
    writeFileSync(join(parent, 'dirty.txt'), 'x');
    const { makeProject } = await import('../helpers/project.js');
    const { createRuntime } = await import('../../src/exec/runtime.js');
    const proj = makeProject({ 'policy.json': WRITE_ALL });
    // move the project under the repository
    const root = join(parent, 'proj');
    const { renameSync } = await import('node:fs');
    renameSync(proj.root, root);
    const rt = await createRuntime({ projectDir: join(root, '.infra'), env: process.env });
    try {
      const before = treeState(parent, ['proj/.infra']);
      for (const args of [
        { action: 'status', repo_path: '.' },
        { action: 'commit', repo_path: '.', message: 'm', all: true },
      ]) {
        const r = await rt.call('repo', args);
        assert.equal(r.ok, false);
        if (!r.ok) assert.ok(['NOT_FOUND', 'DENIED'].includes(r.error.code), JSON.stringify(r.error));
      }
      assert.deepEqual(treeDiff(before, treeState(parent, ['proj/.infra'])), []);
    } finally {
      await rt.close();
    }
    // and a repository outside repo.roots is refused even when it exists
    const p = await repoProject({ repo: { roots: ['allowed'] } });
    try {
      mkdirSync(join(p.root, 'allowed'));
      initRepo(join(p.root, 'elsewhere'));
      await expectRefused(p, { action: 'status', repo_path: 'elsewhere' }, 'DENIED');
      await expectRefused(p, { action: 'status', repo_path: '.' }, 'DENIED');
      const r = await p.fail({ action: 'status', repo_path: 'allowed' });
      assert.equal(r.error.code, 'NOT_FOUND', 'allowed/ is not a repo, and the project repo above it is not used');
    } finally {
      await p.close();
    }
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

/** A repository whose config and hooks run programs that leave a marker file. */
function booby(p: RepoProject, marker: string): void {
  const sh = (name: string): string => {
    const f = join(p.root, '.git', name);
    writeFileSync(f, `#!/bin/sh\necho ${name} >> ${marker}\ncat\n`);
    chmodSync(f, 0o755);
    return f;
  };
  writeAndCommit(p.root, 'a.txt', 'one\n', 'a');
  writeAndCommit(p.root, 'a.txt', 'two\n', 'a2');
  writeFileSync(join(p.root, '.gitattributes'), '*.txt filter=evil diff=evil\n');
  git(p.root, 'add', '.gitattributes');
  git(p.root, 'commit', '-q', '-m', 'attributes');
  git(p.root, 'config', 'core.fsmonitor', sh('fsmonitor.sh'));
  git(p.root, 'config', 'diff.external', sh('extdiff.sh'));
  git(p.root, 'config', 'diff.evil.textconv', sh('textconv.sh'));
  git(p.root, 'config', 'diff.evil.command', sh('diffcmd.sh'));
  git(p.root, 'config', 'filter.evil.clean', sh('clean.sh'));
  git(p.root, 'config', 'filter.evil.smudge', sh('smudge.sh'));
  git(p.root, 'config', 'core.pager', sh('pager.sh'));
  git(p.root, 'config', 'log.showSignature', 'true');
  git(p.root, 'config', 'gpg.program', sh('gpg.sh'));
  for (const hook of [
    'post-checkout',
    'post-index-change',
    'reference-transaction',
    'pre-commit',
    'post-commit',
    'pre-push',
    'fsmonitor-watchman',
  ]) {
    mkdirSync(join(p.root, '.git', 'hooks'), { recursive: true });
    const f = join(p.root, '.git', 'hooks', hook);
    writeFileSync(f, `#!/bin/sh\necho ${hook} >> ${marker}\n`);
    chmodSync(f, 0o755);
  }
  // a modified, touched file so status/diff would need to run filters and fsmonitor
  writeFileSync(join(p.root, 'a.txt'), 'three\n');
}

void test('attack: a repo configuring fsmonitor, hooks, filters, external diff, textconv and gpg runs none of them on read actions', async () => {
  const p = await repoProject();
  const dir = tempDir('infra-attack-');
  const marker = join(dir, 'ran');
  try {
    booby(p, marker);
    const reads: Record<string, unknown>[] = [
      { action: 'snapshot' },
      { action: 'status' },
      { action: 'log', max_count: 5 },
      { action: 'log', path: 'a.txt' },
      { action: 'diff' },
      { action: 'diff', staged: true },
      { action: 'diff', from: 'HEAD~2', to: 'HEAD' },
      { action: 'diff', ref: 'HEAD~1' },
      { action: 'show', ref: 'HEAD~1' },
      { action: 'show', ref: 'HEAD~1', path: 'a.txt' },
      { action: 'branches' },
    ];
    const before = treeState(p.root);
    for (const args of reads) {
      const r = await p.ok(args);
      assert.equal(
        existsSync(marker),
        false,
        `${JSON.stringify(args)} ran a repo-configured program: ${existsSync(marker) ? (await import('node:fs')).readFileSync(marker, 'utf8') : ''}`,
      );
      if (args.action === 'diff' && !args.to && !args.staged) assert.match(JSON.stringify(r.result), /three/);
    }
    assert.deepEqual(treeDiff(before, treeState(p.root)), [], 'read actions wrote into the repository');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await p.close();
  }
});

void test('the same booby-trapped repo does run its hooks when git itself is used (the test is real)', async () => {
  const p = await repoProject();
  const dir = tempDir('infra-attack-');
  const marker = join(dir, 'ran');
  try {
    booby(p, marker);
    try {
      git(p.root, 'diff');
    } catch {
      /* the hostile external diff may fail */
    }
    assert.equal(existsSync(marker), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await p.close();
  }
});

void test('the git runner refuses an argument holding a NUL byte with INVALID_ARGUMENT, before spawning git', async () => {
  // the tool schemas refuse NUL in paths and refs first; this is the runner's own check
  const dir = tempDir();
  initRepo(dir);
  await assert.rejects(runGit(['log', '--', 'a\u0000b'], { cwd: dir, mode: 'read' }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.match(e.message, /NUL byte/);
    return true;
  });
  rmSync(dir, { recursive: true, force: true });
});
