import { relative } from 'node:path';
import { z } from 'zod';
import { defineAction, type ActionContext, type SinkResult } from '../../core/define-action.js';
import { invalid } from '../../core/errors.js';
import type { Services } from '../../core/services.js';
import {
  bindGit,
  branches,
  currentBranch,
  diffArgs,
  hasHead,
  log,
  NO_PROGRAMS,
  numstat,
  resolveCommit,
  status,
  toToolError,
  type DiffSelection,
  type RepoGit,
} from './git-ops.js';
import { checkPath, openRepo, pathArg, refArg, repoPathArg, resolveRepoDir, topRelative } from './roots.js';

const maxCount = z.number().int().min(1).max(1000);
const pathsArg = z.array(pathArg).max(200).optional().describe('Limit to these paths (relative to repo_path; literal, no globs)');

/** Early policy check (before the audit row runs): repo_path must be inside a root. */
export function gateRepoPath(args: { repo_path: string }, services: Services): void {
  resolveRepoDir(services, args.repo_path);
}

export async function readGit(ctx: ActionContext, repoPath: string): Promise<RepoGit> {
  const repo = await openRepo(ctx.services, repoPath, 'read', ctx.signal);
  return bindGit(repo, ctx.signal);
}

function repoInfo(g: RepoGit, services: Services): { root: string; repo_path: string } {
  return { root: g.repo.toplevel, repo_path: relative(services.project.root, g.repo.cwd) || '.' };
}

function allPaths(g: RepoGit, a: { path?: string | undefined; paths?: string[] | undefined }): string[] {
  const list = [...(a.path !== undefined ? [a.path] : []), ...(a.paths ?? [])];
  return list.map((p, i) => checkPath(g.repo, p, a.path !== undefined && i === 0 ? 'path' : 'paths'));
}

/** Streams `git <args>` into the call's artifact file `name`; the reply keeps head and tail. */
async function streamTo(ctx: ActionContext, g: RepoGit, name: string, args: string[]): Promise<SinkResult> {
  const sink = ctx.sink(name);
  let failure: unknown;
  try {
    await g.run(args, { stdout: sink });
  } catch (e) {
    failure = toToolError(e);
  }
  const r = await sink.done();
  if (failure) throw failure;
  return r;
}

function streamed(r: SinkResult): { text: string; bytes: number; truncated: boolean; artifact: string; sha256: string } {
  return { text: r.inline, bytes: r.bytes, truncated: r.truncated, artifact: r.uri, sha256: r.sha256 };
}

export const snapshotAction = defineAction({
  tool: 'repo',
  action: 'snapshot',
  effect: 'read',
  description:
    'Everything about a repository in one call: root, current branch, HEAD, upstream ahead/behind, status, the last commits and the diffstat of uncommitted changes',
  input: z.strictObject({
    repo_path: repoPathArg,
    max_count: maxCount.default(10).describe('How many recent commits to include'),
  }),
  target: (a) => a.repo_path,
  gate: gateRepoPath,
  summarize: (r: { branch: string | null; head: string | null; status: { clean: boolean; files_total: number } }) =>
    `${r.branch ?? '(detached)'} @ ${r.head?.slice(0, 12) ?? '(no commits)'}, ${r.status.clean ? 'clean' : `${r.status.files_total} changed files`}`,
  handler: async (ctx, a) => {
    const g = await readGit(ctx, a.repo_path);
    const [st, born] = await Promise.all([status(g), hasHead(g)]);
    const commits = born ? await log(g, { maxCount: a.max_count }) : [];
    const diffstat = await numstat(g, born ? { flags: [], revs: ['HEAD'] } : { flags: ['--cached'], revs: [] }, []);
    return {
      ...repoInfo(g, ctx.services),
      branch: st.branch,
      detached: st.detached,
      head: commits[0]?.sha ?? null,
      head_subject: commits[0]?.subject ?? null,
      upstream: st.upstream,
      ahead: st.ahead,
      behind: st.behind,
      status: st,
      commits,
      diffstat,
    };
  },
});

export const statusAction = defineAction({
  tool: 'repo',
  action: 'status',
  effect: 'read',
  description: 'Working tree status: branch, upstream ahead/behind, staged, modified, untracked and conflicted files',
  input: z.strictObject({ repo_path: repoPathArg }),
  target: (a) => a.repo_path,
  gate: gateRepoPath,
  summarize: (r: { clean: boolean; files_total: number }) => (r.clean ? 'clean' : `${r.files_total} changed files`),
  handler: async (ctx, a) => {
    const g = await readGit(ctx, a.repo_path);
    return { ...repoInfo(g, ctx.services), ...(await status(g)) };
  },
});

export const logAction = defineAction({
  tool: 'repo',
  action: 'log',
  effect: 'read',
  description: 'Commit history (newest first) from ref (default HEAD), optionally only commits touching path/paths',
  input: z.strictObject({
    repo_path: repoPathArg,
    ref: refArg.optional().describe('Revision or range (e.g. main, v1.2, main..feature); default HEAD'),
    path: pathArg.optional(),
    paths: pathsArg,
    max_count: maxCount.default(20),
  }),
  target: (a) => a.repo_path,
  gate: gateRepoPath,
  summarize: (r: { commits: unknown[] }) => `${r.commits.length} commits`,
  handler: async (ctx, a) => {
    const g = await readGit(ctx, a.repo_path);
    const paths = allPaths(g, a);
    const commits = await log(g, { maxCount: a.max_count, ref: a.ref, paths });
    return { ...repoInfo(g, ctx.services), ref: a.ref ?? 'HEAD', commits };
  },
});

export const diffAction = defineAction({
  tool: 'repo',
  action: 'diff',
  effect: 'read',
  description:
    'Unified diff: working tree vs index (default), staged (index vs HEAD), from a ref to the working tree, or between from and to; path filter. The inline part is bounded; the full diff is in the artifact',
  input: z.strictObject({
    repo_path: repoPathArg,
    staged: z.boolean().default(false).describe('Diff the index against HEAD (or against from)'),
    from: refArg.optional().describe('Base revision'),
    to: refArg.optional().describe('Target revision (needs from)'),
    ref: refArg.optional().describe('Same as from'),
    path: pathArg.optional(),
    paths: pathsArg,
    context_lines: z.number().int().min(0).max(1000).optional(),
  }),
  target: (a) => a.repo_path,
  gate: (a, services) => {
    if (a.to && !(a.from ?? a.ref)) throw invalid('to needs from', 'pass from (the base) with to');
    if (a.to && a.staged) throw invalid('staged cannot be combined with to', 'staged compares the index with HEAD or from');
    if (a.from && a.ref && a.from !== a.ref) throw invalid('pass from or ref, not both');
    gateRepoPath(a, services);
  },
  summarize: (r: { stat: { files_changed: number; insertions: number; deletions: number } }) =>
    `${r.stat.files_changed} files, +${r.stat.insertions} -${r.stat.deletions}`,
  handler: async (ctx, a) => {
    const g = await readGit(ctx, a.repo_path);
    const paths = allPaths(g, a);
    const from = a.from ?? a.ref;
    const selection: DiffSelection = { flags: a.staged ? ['--cached'] : [], revs: [] };
    if (from) selection.revs.push(await resolveCommit(g, from, a.from ? 'from' : 'ref'));
    if (a.to) selection.revs.push(await resolveCommit(g, a.to, 'to'));
    const stat = await numstat(g, selection, paths);
    const ctxArg = a.context_lines !== undefined ? [`--unified=${a.context_lines}`] : [];
    const r = await streamTo(ctx, g, 'diff', diffArgs(selection, ctxArg, paths));
    const mode = a.to ? 'commits' : from ? (a.staged ? 'staged_vs_ref' : 'worktree_vs_ref') : a.staged ? 'staged' : 'worktree';
    return { ...repoInfo(g, ctx.services), mode, from: from ?? null, to: a.to ?? null, stat, diff: streamed(r) };
  },
});

export const showAction = defineAction({
  tool: 'repo',
  action: 'show',
  effect: 'read',
  description:
    'A commit (metadata, stat and patch) or, with path, the content of a file at that ref. The inline part is bounded; the full output is in the artifact',
  input: z.strictObject({
    repo_path: repoPathArg,
    ref: refArg.default('HEAD').describe('Commit, branch or tag'),
    path: pathArg.optional().describe('Show this file at ref instead of the commit'),
  }),
  target: (a) => a.repo_path,
  gate: gateRepoPath,
  summarize: (r: { kind: string; output: { bytes: number } }) => `${r.kind}, ${r.output.bytes} bytes`,
  handler: async (ctx, a) => {
    const g = await readGit(ctx, a.repo_path);
    const sha = await resolveCommit(g, a.ref, 'ref');
    if (a.path !== undefined) {
      const rel = topRelative(g.repo, a.path, 'path');
      const r = await streamTo(ctx, g, 'file', ['cat-file', 'blob', `${sha}:${rel}`]);
      return { ...repoInfo(g, ctx.services), kind: 'file', ref: a.ref, commit: sha, path: rel, output: streamed(r) };
    }
    const [commit] = await log(g, { maxCount: 1, ref: sha });
    const r = await streamTo(ctx, g, 'show', [
      'show',
      ...NO_PROGRAMS,
      '--no-show-signature',
      '--format=fuller',
      '--stat',
      '--patch',
      '--end-of-options',
      sha,
    ]);
    return { ...repoInfo(g, ctx.services), kind: 'commit', ref: a.ref, commit: commit ?? { sha }, output: streamed(r) };
  },
});

export const branchesAction = defineAction({
  tool: 'repo',
  action: 'branches',
  effect: 'read',
  description: 'Local and remote-tracking branches with their upstream and ahead/behind counts',
  input: z.strictObject({ repo_path: repoPathArg }),
  target: (a) => a.repo_path,
  gate: gateRepoPath,
  summarize: (r: { local: unknown[]; remote: unknown[] }) => `${r.local.length} local, ${r.remote.length} remote branches`,
  handler: async (ctx, a) => {
    const g = await readGit(ctx, a.repo_path);
    const list = await branches(g);
    return {
      ...repoInfo(g, ctx.services),
      current: await currentBranch(g),
      local: list.filter((b) => !b.remote),
      remote: list.filter((b) => b.remote),
    };
  },
});
