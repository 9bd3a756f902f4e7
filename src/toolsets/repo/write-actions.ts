import { realpathSync } from 'node:fs';
import { relative } from 'node:path';
import { z } from 'zod';
import { defineAction, type ActionContext } from '../../core/define-action.js';
import { denied, invalid, notFound, ToolError } from '../../core/errors.js';
import { noNul } from '../../core/json-values.js';
import type { Services } from '../../core/services.js';
import { bindGit, currentBranch, hasHead, NO_PROGRAMS, resolveCommit, type RepoGit } from './git-ops.js';
import { checkPath, isInside, nameArg, openRepo, pathArg, refArg, remoteArg, repoPathArg, resolveRepoDir } from './roots.js';

/** Writes are off unless the human turned them on; checked before anything else. */
export function requireWrite(services: Services, action: string): void {
  if (!services.config.policy.repo.write) {
    throw denied(
      `repo.${action} changes a repository, and repo writes are off`,
      'a human can allow them with "repo": { "write": true } in .infra/policy.json',
    );
  }
}

function gateWrite(action: string) {
  return (args: { repo_path: string }, services: Services): void => {
    requireWrite(services, action);
    resolveRepoDir(services, args.repo_path);
  };
}

async function writeGit(ctx: ActionContext, repoPath: string): Promise<RepoGit> {
  const repo = await openRepo(ctx.services, repoPath, 'write', ctx.signal);
  return bindGit(repo, ctx.signal);
}

async function checkBranchName(g: RepoGit, name: string, arg: string): Promise<void> {
  if (name.startsWith('-')) throw invalid(`${arg} must not start with "-"`);
  const r = await g.run(['check-ref-format', '--branch', name], { okCodes: [0, 1, 128] });
  if (r.code !== 0) throw invalid(`${arg} ${JSON.stringify(name)} is not a valid branch name`, 'see git check-ref-format');
}

async function branchExists(g: RepoGit, name: string): Promise<boolean> {
  const r = await g.run(['show-ref', '--verify', '--quiet', `refs/heads/${name}`], { okCodes: [0, 1, 128] });
  return r.code === 0;
}

/**
 * A checkout must not rewrite files of the project's .infra directory (policy.json is
 * human-owned): refuse when the target commit differs from HEAD there.
 */
async function guardInfra(ctx: ActionContext, g: RepoGit, target: string): Promise<void> {
  let infra: string;
  try {
    infra = realpathSync.native(ctx.services.project.dir);
  } catch {
    return;
  }
  if (!isInside(g.repo.toplevel, infra)) return;
  const rel = relative(g.repo.cwd, infra) || '.';
  const r = (await hasHead(g))
    ? await g.git(['diff', ...NO_PROGRAMS, '--name-only', 'HEAD', target, '--', rel])
    : await g.git(['ls-tree', '-r', '--name-only', target, '--', rel]);
  if (r.stdout.trim()) {
    throw denied(
      `checking out ${target.slice(0, 12)} would change files in the project directory .infra/`,
      'policy and config in .infra/ are human-owned; check out such a commit yourself',
      {
        files: r.stdout.trim().split('\n').slice(0, 20),
      },
    );
  }
}

export const commitAction = defineAction({
  tool: 'repo',
  action: 'commit',
  effect: 'write',
  description:
    'Commit: the given paths (staged first), or all changes (all: true, untracked included, .gitignore respected), or what is already staged. Needs repo.write in policy.json',
  input: z.strictObject({
    repo_path: repoPathArg,
    message: z
      .string()
      .min(1)
      .max(65536)
      .refine(noNul, 'must not contain NUL')
      .refine((s) => s.trim().length > 0, 'must not be blank'),
    paths: z.array(pathArg).min(1).max(500).optional().describe('Commit only these paths (relative to repo_path)'),
    all: z.boolean().default(false).describe('Stage and commit every change in the work tree'),
  }),
  target: (a) => a.repo_path,
  gate: (a, services) => {
    requireWrite(services, 'commit');
    if (a.all && a.paths) throw invalid('pass paths or all, not both');
    resolveRepoDir(services, a.repo_path);
  },
  summarize: (r: { commit: string; files_changed: number }) => `committed ${r.commit.slice(0, 12)} (${r.files_changed} files)`,
  handler: async (ctx, a) => {
    const g = await writeGit(ctx, a.repo_path);
    const paths = (a.paths ?? []).map((p) => checkPath(g.repo, p, 'paths'));
    if (paths.length) await g.git(['add', '--', ...paths]);
    else if (a.all) await g.git(['add', '--all']);
    const staged = await g.run(['diff', ...NO_PROGRAMS, '--cached', '--quiet', '--', ...paths], { okCodes: [0, 1] });
    if (staged.code === 0) {
      throw invalid(
        'nothing to commit',
        paths.length ? 'the given paths have no changes' : 'stage changes first, pass paths, or all: true',
      );
    }
    await g.git(['commit', '--no-edit', `--message=${a.message}`, '--', ...paths]);
    const sha = (await g.git(['rev-parse', 'HEAD'])).stdout.trim();
    const files = (await g.git(['diff-tree', '--no-commit-id', '--name-only', '-r', '--root', sha])).stdout.split('\n').filter(Boolean);
    return { commit: sha, branch: await currentBranch(g), files_changed: files.length, files: files.slice(0, 500) };
  },
});

export const branchCreateAction = defineAction({
  tool: 'repo',
  action: 'branch_create',
  effect: 'write',
  description: 'Create a branch at ref (default HEAD), optionally switching to it. Needs repo.write in policy.json',
  input: z.strictObject({
    repo_path: repoPathArg,
    branch: nameArg.describe('New branch name'),
    ref: refArg.optional().describe('Start point (default HEAD)'),
    checkout: z.boolean().default(false).describe('Switch to the new branch'),
  }),
  target: (a) => a.repo_path,
  gate: gateWrite('branch_create'),
  summarize: (r: { branch: string; commit: string }) => `created ${r.branch} at ${r.commit.slice(0, 12)}`,
  handler: async (ctx, a) => {
    const g = await writeGit(ctx, a.repo_path);
    await checkBranchName(g, a.branch, 'branch');
    if (await branchExists(g, a.branch)) throw invalid(`branch ${JSON.stringify(a.branch)} already exists`);
    const sha = await resolveCommit(g, a.ref ?? 'HEAD', 'ref');
    await g.git(['branch', '--no-track', a.branch, sha]);
    if (a.checkout) {
      await guardInfra(ctx, g, sha);
      await g.git(['switch', '--end-of-options', a.branch]);
    }
    return { branch: a.branch, commit: sha, checked_out: a.checkout };
  },
});

export const checkoutAction = defineAction({
  tool: 'repo',
  action: 'checkout',
  effect: 'write',
  description:
    'Switch the work tree to a branch (or, detached, to a tag or commit). Local changes are kept; git refuses when they conflict. Needs repo.write in policy.json',
  input: z.strictObject({
    repo_path: repoPathArg,
    ref: refArg.optional().describe('Branch, tag or commit'),
    branch: nameArg.optional().describe('Same as ref, for a branch'),
  }),
  target: (a) => a.repo_path,
  gate: (a, services) => {
    requireWrite(services, 'checkout');
    if (!a.ref && !a.branch) throw invalid('pass ref (or branch) to check out');
    if (a.ref && a.branch && a.ref !== a.branch) throw invalid('pass ref or branch, not both');
    resolveRepoDir(services, a.repo_path);
  },
  summarize: (r: { ref: string; commit: string }) => `checked out ${r.ref} (${r.commit.slice(0, 12)})`,
  handler: async (ctx, a) => {
    const ref = (a.branch ?? a.ref)!;
    const g = await writeGit(ctx, a.repo_path);
    const sha = await resolveCommit(g, ref, a.branch ? 'branch' : 'ref');
    await guardInfra(ctx, g, sha);
    const isBranch = !ref.includes(':') && (await branchExists(g, ref));
    if (isBranch) await g.git(['switch', '--end-of-options', ref]);
    else if (a.branch)
      throw notFound(`no local branch ${JSON.stringify(ref)}`, 'repo branch_create makes one; ref checks out a tag or commit (detached)');
    else await g.git(['switch', '--detach', '--end-of-options', sha]);
    return { ref, commit: sha, detached: !isBranch, branch: await currentBranch(g) };
  },
});

export const pushAction = defineAction({
  tool: 'repo',
  action: 'push',
  effect: 'irreversible',
  description:
    'Push a local branch (default: the current one) to a configured remote (default origin). Never forced unless force: true and repo.force_push in policy.json (then --force-with-lease). Needs repo.write',
  input: z.strictObject({
    repo_path: repoPathArg,
    remote: remoteArg.default('origin').describe('Name of a configured remote (not a URL)'),
    branch: nameArg.optional().describe('Local branch to push (default: the current branch)'),
    force: z.boolean().default(false).describe('Force with lease; needs repo.force_push'),
    set_upstream: z.boolean().default(false),
  }),
  target: (a) => `${a.repo_path} → ${a.remote}`,
  gate: (a, services) => {
    requireWrite(services, 'push');
    if (a.force && !services.config.policy.repo.force_push) {
      throw denied(
        'force push is off',
        'a human can allow it with "repo": { "force_push": true } in .infra/policy.json (infra then uses --force-with-lease)',
      );
    }
    resolveRepoDir(services, a.repo_path);
  },
  summarize: (r: { remote: string; branch: string; status: string }) => `pushed ${r.branch} to ${r.remote}: ${r.status}`,
  handler: async (ctx, a) => {
    const g = await writeGit(ctx, a.repo_path);
    const remotes = (await g.git(['remote'])).stdout.split('\n').filter(Boolean);
    if (!remotes.includes(a.remote)) {
      throw notFound(
        `no remote named ${JSON.stringify(a.remote)}`,
        remotes.length
          ? `configured remotes: ${remotes.join(', ')}`
          : 'this repository has no remotes; a human adds them with git remote add',
      );
    }
    const branch = a.branch ?? (await currentBranch(g));
    if (!branch) throw invalid('HEAD is detached; pass branch');
    await checkBranchName(g, branch, 'branch');
    if (!(await branchExists(g, branch))) throw notFound(`no local branch ${JSON.stringify(branch)}`);
    const force = a.force && ctx.services.config.policy.repo.force_push;
    const refspec = `refs/heads/${branch}:refs/heads/${branch}`;
    const args = [
      'push',
      '--porcelain',
      ...(force ? ['--force-with-lease'] : []),
      ...(a.set_upstream ? ['--set-upstream'] : []),
      '--end-of-options',
      a.remote,
      refspec,
    ];
    const r = await g.run(args, { okCodes: [0, 1, 128] });
    const lines = r.stdout.split('\n').filter((l) => l.includes('\t'));
    const line = lines.find((l) => l.includes(refspec)) ?? lines[0] ?? '';
    const [flag = '', , summary = ''] = line.split('\t');
    if (r.code !== 0) {
      const why = (summary || r.stderr.trim().split('\n').slice(-2).join(' | ')).trim();
      if (flag === '!') {
        throw new ToolError('UPSTREAM_ERROR', `push rejected: ${why}`, {
          retryable: false,
          hint: 'integrate the remote changes first; rewriting remote history needs force: true and repo.force_push',
        });
      }
      throw new ToolError(
        /could not read|unable to access|connect/i.test(r.stderr) ? 'CONNECTION_FAILED' : 'UPSTREAM_ERROR',
        `git push: ${why}`,
        { retryable: false },
      );
    }
    const statusText = flag === '=' ? 'up to date' : flag === '*' ? 'new branch' : flag === '+' ? 'forced update' : 'updated';
    return {
      remote: a.remote,
      branch,
      forced: force,
      status: statusText,
      summary: summary.trim(),
      sha: (await g.git(['rev-parse', `refs/heads/${branch}`])).stdout.trim(),
    };
  },
});
