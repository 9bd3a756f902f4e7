import type { Writable } from 'node:stream';
import { createSimpleGit, filterOverrides, GitCommandError, runGit, type RunGitResult } from '../../adapters/git.js';
import { ToolError } from '../../core/errors.js';
import type { OpenRepo } from './roots.js';

/** Options every read of history or content passes: no external diff, textconv or gpg program. */
export const NO_PROGRAMS = ['--no-ext-diff', '--no-textconv', '--no-color'] as const;

export const MAX_FILES = 500;

export interface RepoGit {
  repo: OpenRepo;
  run(args: readonly string[], opts?: { stdout?: Writable; okCodes?: readonly number[]; maxBuffer?: number }): Promise<RunGitResult>;
  /** `run` that maps git failures to tool errors. */
  git(args: readonly string[], opts?: { stdout?: Writable; okCodes?: readonly number[]; maxBuffer?: number }): Promise<RunGitResult>;
  config: readonly string[];
  signal: AbortSignal;
}

/** Binds the repo, its mode and the call's signal; read mode also neutralises filter drivers. */
export async function bindGit(repo: OpenRepo, signal: AbortSignal): Promise<RepoGit> {
  const config = repo.mode === 'read' ? await filterOverrides(repo.cwd, signal) : [];
  const run: RepoGit['run'] = (args, opts = {}) => runGit(args, { cwd: repo.cwd, mode: repo.mode, signal, config, ...opts });
  return {
    repo,
    run,
    config,
    signal,
    git: async (args, opts) => {
      try {
        return await run(args, opts);
      } catch (e) {
        throw toToolError(e);
      }
    },
  };
}

/** git's failures as tool errors, with git's own words in the message. */
export function toToolError(e: unknown): unknown {
  if (!(e instanceof GitCommandError)) return e;
  const msg = e.stderr.trim().split('\n').filter(Boolean).slice(-4).join(' | ') || `git exited ${e.code}`;
  if (
    /unknown revision|bad revision|not a valid object name|invalid reference|does not exist|did not match any|bad object|Needed a single revision|exists on disk, but not in/i.test(
      msg,
    )
  ) {
    return new ToolError('NOT_FOUND', `git: ${msg}`, { hint: 'check the ref or path (repo branches / repo log list them)' });
  }
  if (/already exists|not a valid branch name|nothing to commit|no changes added/i.test(msg)) {
    return new ToolError('INVALID_ARGUMENT', `git: ${msg}`);
  }
  if (/could not read from remote|unable to access|connection|timed out|Permission denied|Authentication failed/i.test(msg)) {
    return new ToolError('CONNECTION_FAILED', `git: ${msg}`, { hint: 'check the remote URL and credentials configured for it' });
  }
  return new ToolError('UPSTREAM_ERROR', `git ${e.args[0] ?? ''}: ${msg}`, { retryable: false });
}

export async function hasHead(g: RepoGit): Promise<boolean> {
  const r = await g.run(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { okCodes: [0, 1, 128] });
  return r.code === 0;
}

export async function currentBranch(g: RepoGit): Promise<string | null> {
  const r = await g.run(['symbolic-ref', '--quiet', '--short', 'HEAD'], { okCodes: [0, 1, 128] });
  return r.code === 0 ? r.stdout.trim() : null;
}

/** Resolves a revision to a commit sha, or throws NOT_FOUND naming the argument. */
export async function resolveCommit(g: RepoGit, ref: string, arg: string): Promise<string> {
  // rev-parse has no --end-of-options in git 2.39; `ref` never starts with "-" (schema + check)
  if (ref.startsWith('-')) throw new ToolError('INVALID_ARGUMENT', `${arg} must not start with "-"`);
  const r = await g.run(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], { okCodes: [0, 1, 128] });
  if (r.code !== 0)
    throw new ToolError('NOT_FOUND', `${arg} ${JSON.stringify(ref)} is not a commit in this repository`, {
      hint: 'repo branches and repo log list what exists',
    });
  return r.stdout.trim();
}

// ---- log --------------------------------------------------------------------------------------

export interface CommitInfo {
  sha: string;
  short: string;
  author: string;
  email: string;
  date: string;
  subject: string;
  parents: string[];
}

const LOG_FORMAT = '%H%x1f%h%x1f%an%x1f%ae%x1f%aI%x1f%P%x1f%s%x1e';

export async function log(g: RepoGit, opts: { maxCount: number; ref?: string | undefined; paths?: string[] }): Promise<CommitInfo[]> {
  if (!opts.ref && !(await hasHead(g))) return [];
  const args = ['log', ...NO_PROGRAMS, '--no-show-signature', `--max-count=${opts.maxCount}`, `--format=${LOG_FORMAT}`, '--end-of-options'];
  if (opts.ref) args.push(opts.ref);
  args.push('--', ...(opts.paths ?? []));
  const out = (await g.git(args)).stdout;
  return out
    .split('\x1e')
    .map((s) => s.replace(/^\n/, ''))
    .filter((s) => s.length > 0)
    .map((rec) => {
      const [sha = '', short = '', author = '', email = '', date = '', parents = '', subject = ''] = rec.split('\x1f');
      return { sha, short, author, email, date, subject, parents: parents ? parents.split(' ') : [] };
    });
}

// ---- status -----------------------------------------------------------------------------------

export interface StatusInfo {
  branch: string | null;
  detached: boolean;
  upstream: string | null;
  ahead: number;
  behind: number;
  clean: boolean;
  counts: { staged: number; modified: number; untracked: number; conflicted: number; deleted: number; renamed: number };
  files: { path: string; from?: string; index: string; working_dir: string }[];
  files_total: number;
}

/** Parsed by simple-git (porcelain v1, -z). */
export async function status(g: RepoGit): Promise<StatusInfo> {
  const sg = await createSimpleGit(g.repo.cwd, g.repo.mode, { signal: g.signal, config: g.config });
  let s;
  try {
    s = await sg.status();
  } catch (e) {
    if (g.signal.aborted) throw g.signal.reason;
    throw new ToolError('UPSTREAM_ERROR', `git status: ${(e as Error).message}`, { retryable: false });
  }
  const files = s.files.map((f) => ({
    path: f.path,
    ...(f.from && f.from !== f.path ? { from: f.from } : {}),
    index: f.index,
    working_dir: f.working_dir,
  }));
  return {
    branch: s.current,
    detached: s.detached,
    upstream: s.tracking,
    ahead: s.ahead,
    behind: s.behind,
    clean: s.isClean(),
    counts: {
      staged: s.staged.length,
      modified: s.modified.length,
      untracked: s.not_added.length,
      conflicted: s.conflicted.length,
      deleted: s.deleted.length,
      renamed: s.renamed.length,
    },
    files: files.slice(0, MAX_FILES),
    files_total: files.length,
  };
}

// ---- diff stat --------------------------------------------------------------------------------

export interface DiffStat {
  files_changed: number;
  insertions: number;
  deletions: number;
  files: { path: string; added: number | null; deleted: number | null; binary?: true }[];
}

/** What a diff compares: option flags (`--cached`) and validated revisions, kept apart. */
export interface DiffSelection {
  flags: string[];
  revs: string[];
}

export function diffArgs(sel: DiffSelection, extra: readonly string[], paths: readonly string[]): string[] {
  return ['diff', ...NO_PROGRAMS, ...extra, ...sel.flags, '--end-of-options', ...sel.revs, '--', ...paths];
}

/** `git diff --numstat` over the same selection as the diff. */
export async function numstat(g: RepoGit, selection: DiffSelection, paths: readonly string[]): Promise<DiffStat> {
  const out = (await g.git(diffArgs(selection, ['--numstat'], paths))).stdout;
  const stat: DiffStat = { files_changed: 0, insertions: 0, deletions: 0, files: [] };
  for (const line of out.split('\n')) {
    if (!line) continue;
    const [a = '', d = '', ...rest] = line.split('\t');
    const path = rest.join('\t');
    stat.files_changed++;
    const binary = a === '-' && d === '-';
    const added = binary ? null : Number(a);
    const deleted = binary ? null : Number(d);
    stat.insertions += added ?? 0;
    stat.deletions += deleted ?? 0;
    if (stat.files.length < MAX_FILES) stat.files.push({ path, added, deleted, ...(binary ? { binary: true as const } : {}) });
  }
  return stat;
}

// ---- branches ---------------------------------------------------------------------------------

export interface BranchInfo {
  name: string;
  remote: boolean;
  current: boolean;
  sha: string;
  subject: string;
  upstream: string | null;
  ahead: number;
  behind: number;
  gone?: true;
}

export async function branches(g: RepoGit): Promise<BranchInfo[]> {
  const fmt = '%(HEAD)%1f%(refname)%1f%(refname:short)%1f%(objectname)%1f%(upstream:short)%1f%(upstream:track)%1f%(contents:subject)';
  const out = (await g.git(['for-each-ref', `--format=${fmt}`, 'refs/heads', 'refs/remotes'])).stdout;
  const list: BranchInfo[] = [];
  for (const line of out.split('\n')) {
    if (!line) continue;
    const [head = '', full = '', short = '', sha = '', upstream = '', track = '', subject = ''] = line.split('\x1f');
    if (full.endsWith('/HEAD') && full.startsWith('refs/remotes/')) continue;
    const ahead = Number(/ahead (\d+)/.exec(track)?.[1] ?? 0);
    const behind = Number(/behind (\d+)/.exec(track)?.[1] ?? 0);
    list.push({
      name: short,
      remote: full.startsWith('refs/remotes/'),
      current: head === '*',
      sha,
      subject,
      upstream: upstream || null,
      ahead,
      behind,
      ...(track.includes('gone') ? { gone: true as const } : {}),
    });
  }
  return list;
}
