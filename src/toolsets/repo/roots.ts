import { realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { expandHome } from '../../config/paths.js';
import { denied, invalid, notFound, ToolError } from '../../core/errors.js';
import { noNul } from '../../core/json-values.js';
import type { Services } from '../../core/services.js';
import { GitCommandError, runGit, type GitMode } from '../../adapters/git.js';

/** True when `child` is `parent` or below it (both absolute, normalised). */
export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && rel.split(sep)[0] !== '..');
}

function realpathOrSelf(p: string): string {
  try {
    return realpathSync.native(p);
  } catch {
    return p;
  }
}

export interface RepoRoot {
  /** As configured (for messages). */
  configured: string;
  /** Resolved lexically (absolute, ~ expanded). */
  path: string;
  /** realpath of `path` (or `path` when it does not exist). */
  real: string;
}

/** `repo.roots` of policy.json (relative to the project root, ~ expanded); default: the project root. */
export function repoRoots(services: Services): RepoRoot[] {
  const base = services.project.root;
  const configured = services.config.policy.repo.roots ?? ['.'];
  return configured.map((c) => {
    const path = expandHome(c, base);
    return { configured: c, path, real: realpathOrSelf(path) };
  });
}

const ROOTS_HINT = 'repositories must live under a root of "repo": { "roots": [...] } in .infra/policy.json (default: the project root)';

/**
 * repo_path → an existing directory inside an allowed root: resolve, check, realpath, check
 * again (symlinks cannot escape). Does not look at git yet (see `openRepo`).
 */
export function resolveRepoDir(services: Services, repoPath: string): { dir: string; root: RepoRoot } {
  if (repoPath.includes('\0')) throw invalid('repo_path contains a NUL byte');
  if (repoPath.startsWith('-')) throw invalid('repo_path must not start with "-"', 'pass a path relative to the project root, e.g. "."');
  const roots = repoRoots(services);
  const abs = expandHome(repoPath, services.project.root);
  const lexical = roots.find((r) => isInside(r.path, abs) || isInside(r.real, abs));
  if (!lexical) {
    throw denied(`repo_path ${JSON.stringify(repoPath)} is outside the allowed repo roots`, ROOTS_HINT, {
      roots: roots.map((r) => r.configured),
    });
  }
  let real: string;
  try {
    real = realpathSync.native(abs);
  } catch {
    throw notFound(`repo_path ${JSON.stringify(repoPath)} does not exist`, 'pass a directory relative to the project root');
  }
  const root = roots.find((r) => isInside(r.real, real));
  if (!root) {
    throw denied(`repo_path ${JSON.stringify(repoPath)} resolves (through a symlink) outside the allowed repo roots`, ROOTS_HINT);
  }
  if (!statSync(real).isDirectory()) throw invalid(`repo_path ${JSON.stringify(repoPath)} is not a directory`);
  return { dir: real, root };
}

export interface OpenRepo {
  /** realpath of the directory git runs in (repo_path). */
  cwd: string;
  /** realpath of the work tree top level. */
  toplevel: string;
  /** realpath of the git directory (and of the common dir for linked worktrees). */
  gitDir: string;
  commonDir: string;
  mode: GitMode;
}

/**
 * Finds the repository at repo_path and proves git's own view of it stays inside a root: the
 * work tree top level, the git directory (a `.git` file may point elsewhere) and the common
 * directory. A write action also refuses a repository inside the project's .infra directory.
 */
export async function openRepo(services: Services, repoPath: string, mode: GitMode, signal?: AbortSignal): Promise<OpenRepo> {
  const { dir } = resolveRepoDir(services, repoPath);
  const roots = repoRoots(services);
  let out: string;
  try {
    out = (
      await runGit(['rev-parse', '--show-toplevel', '--absolute-git-dir', '--git-common-dir'], {
        cwd: dir,
        mode: 'read',
        signal,
        // discovery must not climb above the root that holds repo_path
        extraEnv: { GIT_CEILING_DIRECTORIES: ceilings(roots, dir) },
      })
    ).stdout;
  } catch (e) {
    if (e instanceof GitCommandError) {
      throw notFound(
        `no git repository at repo_path ${JSON.stringify(repoPath)} (inside the allowed roots)`,
        'run `git init` there, or pass the path of a repository under a repo root',
        {
          git: e.stderr.trim().slice(0, 500),
        },
      );
    }
    throw e;
  }
  const [top, gitDirRaw, commonRaw] = out.split('\n');
  if (!top || !gitDirRaw || !commonRaw) {
    throw new ToolError('DENIED', `repo_path ${JSON.stringify(repoPath)} is not inside a work tree`, {
      hint: 'bare repositories are not supported',
    });
  }
  const toplevel = realpathOrSelf(top);
  const gitDir = realpathOrSelf(gitDirRaw);
  const commonDir = realpathOrSelf(resolve(dir, commonRaw));
  for (const [what, p] of [
    ['work tree', toplevel],
    ['git directory', gitDir],
    ['git common directory', commonDir],
  ] as const) {
    if (!roots.some((r) => isInside(r.real, p))) {
      throw denied(`the repository's ${what} (${p}) is outside the allowed repo roots`, ROOTS_HINT);
    }
  }
  if (mode === 'write') {
    const infra = realpathOrSelf(services.project.dir);
    for (const p of [toplevel, gitDir, commonDir]) {
      if (isInside(infra, p)) {
        throw denied(
          'write actions cannot touch a repository inside the project directory .infra/',
          'the .infra directory is written only by its own stores',
        );
      }
    }
  }
  return { cwd: dir, toplevel, gitDir, commonDir, mode };
}

/** GIT_CEILING_DIRECTORIES: the parents of the roots that contain `dir`. */
function ceilings(roots: RepoRoot[], dir: string): string {
  const parents = roots.filter((r) => isInside(r.real, dir)).map((r) => dirname(r.real));
  return [...new Set(parents)].join(':');
}

/**
 * A path argument: relative to repo_path (absolute allowed), and it must stay inside the
 * work tree. Returned relative to `cwd` (git's pathspec base), as a literal pathspec.
 */
export function checkPath(repo: OpenRepo, p: string, arg: string): string {
  if (p.includes('\0')) throw invalid(`${arg} contains a NUL byte`);
  if (p.startsWith('-')) throw invalid(`${arg} ${JSON.stringify(p)} must not start with "-"`, 'prefix the file name with "./"');
  const abs = resolve(repo.cwd, p);
  if (!isInside(repo.toplevel, abs)) {
    throw denied(
      `${arg} ${JSON.stringify(p)} is outside the repository`,
      'paths are relative to repo_path and must stay inside its work tree',
    );
  }
  return relative(repo.cwd, abs) || '.';
}

/** Same path, relative to the top level (for `<ref>:<path>`). */
export function topRelative(repo: OpenRepo, p: string, arg: string): string {
  checkPath(repo, p, arg);
  return relative(repo.toplevel, resolve(repo.cwd, p));
}

// ---- argument schemas -------------------------------------------------------------------------

const noDash = (s: string): boolean => !s.startsWith('-');
const noControl = (s: string): boolean => ![...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

/** A revision (commit, branch, tag, `a..b`, `HEAD~2`): never an option. */
export const refArg = z
  .string()
  .min(1)
  .max(256)
  .refine(noDash, 'must not start with "-" (refs are never options)')
  .refine(noControl, 'must not contain control characters or NUL')
  .refine((s) => !/\s/.test(s), 'must not contain whitespace');

/** A branch or remote name: a plain name, validated again by git check-ref-format. */
export const nameArg = z
  .string()
  .min(1)
  .max(200)
  .refine(noDash, 'must not start with "-"')
  .refine(
    (s) => /^[A-Za-z0-9_][A-Za-z0-9._/+@-]*$/.test(s),
    'letters, digits, ".", "_", "/", "+", "@" and "-" only, starting with a letter, digit or "_"',
  )
  .refine(
    (s) => !s.includes('..') && !s.includes('@{') && !s.endsWith('.lock') && !s.endsWith('/') && !s.endsWith('.'),
    'not a valid ref name',
  );

/** A configured remote's name: never a URL or a path (those could push anywhere). */
export const remoteArg = z
  .string()
  .min(1)
  .max(100)
  .refine(noDash, 'must not start with "-"')
  .refine(
    (s) => /^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(s),
    'the name of a configured remote (letters, digits, ".", "_", "-"), not a URL or path',
  );

export const pathArg = z
  .string()
  .min(1)
  .max(4096)
  .refine(noDash, 'must not start with "-" (prefix it with "./")')
  .refine(noNul, 'must not contain NUL');

export const repoPathArg = z
  .string()
  .min(1)
  .max(4096)
  .default('.')
  .refine(noDash, 'must not start with "-"')
  .refine(noNul, 'must not contain NUL')
  .describe('Repository directory, relative to the project root ("." = the project root)');
