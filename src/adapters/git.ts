import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import type { SimpleGit } from 'simple-git';
import { ToolError } from '../core/errors.js';
import { noNul } from '../core/json-values.js';

/**
 * The only place that runs git. Every invocation goes through `runGit` (argv, no shell) or the
 * simple-git instance from `createSimpleGit`; both get the same safe environment and the same
 * global options, so a repository's own configuration cannot make a read action run a program.
 *
 * read  → hooks off, fsmonitor off, ext protocol off, no pager, no optional locks (status does
 *         not rewrite the index), filter drivers neutralised by the caller (`filterOverrides`),
 *         and diff/log/show callers add --no-ext-diff --no-textconv --no-show-signature.
 * write → the repository's hooks run as they would for the human (pre-commit, post-checkout);
 *         fsmonitor and the ext protocol stay off.
 */
export type GitMode = 'read' | 'write';

/** Global `-c` settings for every call. Never built from agent input. */
export function safeConfig(mode: GitMode): string[] {
  const common = [
    'core.fsmonitor=false',
    'protocol.ext.allow=never',
    'core.pager=cat',
    'log.showSignature=false',
    'color.ui=false',
    'advice.detachedHead=false',
  ];
  // diff.external cannot be emptied with -c (git then tries to run ""): diff/log/show callers
  // pass --no-ext-diff instead.
  return mode === 'read' ? ['core.hooksPath=/dev/null', ...common] : common;
}

function configArgs(mode: GitMode, extra: readonly string[] = []): string[] {
  return [...safeConfig(mode), ...extra].flatMap((c) => ['-c', c]);
}

/**
 * GIT_* variables the server's own environment may pass through. Everything else GIT_* is
 * dropped: GIT_DIR / GIT_WORK_TREE / GIT_CONFIG_* / GIT_EXEC_PATH / GIT_EXTERNAL_DIFF … would
 * move git outside the checked repository or run a program.
 */
const KEEP_GIT_ENV_READ = new Set([
  'GIT_AUTHOR_NAME',
  'GIT_AUTHOR_EMAIL',
  'GIT_AUTHOR_DATE',
  'GIT_COMMITTER_NAME',
  'GIT_COMMITTER_EMAIL',
  'GIT_COMMITTER_DATE',
  'GIT_CONFIG_NOSYSTEM',
  'GIT_CONFIG_GLOBAL',
  'GIT_CONFIG_SYSTEM',
]);
/** Network settings of the human, for push only. */
const KEEP_GIT_ENV_WRITE = new Set([
  ...KEEP_GIT_ENV_READ,
  'GIT_SSH',
  'GIT_SSH_COMMAND',
  'GIT_SSH_VARIANT',
  'GIT_ASKPASS',
  'GIT_SSL_CAINFO',
  'GIT_SSL_CAPATH',
]);

export function safeGitEnv(mode: GitMode, base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const keep = mode === 'read' ? KEEP_GIT_ENV_READ : KEEP_GIT_ENV_WRITE;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v === undefined) continue;
    if (/^GIT_/i.test(k) && !keep.has(k)) continue;
    if (mode === 'read' && (k === 'SSH_ASKPASS' || k === 'EDITOR' || k === 'VISUAL' || k === 'PAGER')) continue;
    env[k] = v;
  }
  env.GIT_TERMINAL_PROMPT = '0';
  env.GIT_PAGER = 'cat';
  env.PAGER = 'cat';
  env.LC_ALL = 'C';
  env.GIT_EDITOR = 'false';
  if (mode === 'read') env.GIT_OPTIONAL_LOCKS = '0';
  return env;
}

export interface RunGitOptions {
  cwd: string;
  mode: GitMode;
  signal?: AbortSignal | undefined;
  /** Extra `-c key=value` from the adapter's callers (filter neutralisation); never agent input. */
  config?: readonly string[];
  /** Stream stdout here instead of collecting it. */
  stdout?: Writable;
  /** Cap on collected stdout (default 8 MiB); past it the process is killed and LIMIT_EXCEEDED thrown. */
  maxBuffer?: number;
  /** Exit codes that count as success (default [0]). */
  okCodes?: readonly number[];
  /** Variables set after the safe environment is built (adapter callers only, never agent input). */
  extraEnv?: Record<string, string>;
}

export interface RunGitResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class GitCommandError extends Error {
  constructor(
    readonly code: number,
    readonly stderr: string,
    readonly args: readonly string[],
  ) {
    super(`git ${args[0] ?? ''} exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    this.name = 'GitCommandError';
  }
}

const STDERR_CAP = 64 * 1024;

/**
 * Runs `git <global options> <args>` as argv (no shell). Aborting the signal kills git and every
 * process it started; the promise then rejects with the signal's reason (the pipeline's TIMEOUT /
 * CANCELLED error).
 */
export function runGit(args: readonly string[], opts: RunGitOptions): Promise<RunGitResult> {
  const argv = ['--no-pager', '--literal-pathspecs', ...configArgs(opts.mode, opts.config), ...args];
  const maxBuffer = opts.maxBuffer ?? 8 * 1024 * 1024;
  const okCodes = opts.okCodes ?? [0];
  return new Promise<RunGitResult>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(abortReason(opts.signal));
      return;
    }
    // (spawn throws on a NUL byte in an argument: a path, ref or message from the caller)
    if (!argv.every(noNul)) {
      reject(new ToolError('INVALID_ARGUMENT', 'an argument contains a NUL byte, which no git argument (path, ref, message) can hold'));
      return;
    }
    const child = spawn('git', argv, {
      cwd: opts.cwd,
      env: { ...safeGitEnv(opts.mode), ...opts.extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: false,
      windowsHide: true,
      // a process group of its own: git runs helpers (git-remote-http, ssh, pack-objects) as
      // processes of their own, and killing git alone left them running, holding the remote's
      // connection and git's pipes
      detached: true,
    });
    // (git may have exited while a helper it started still runs: the group is killed anyway)
    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = '';
    let failure: unknown;
    const onAbort = (): void => {
      failure ??= abortReason(opts.signal!);
      killGroup();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.stdout) {
      const dest = opts.stdout;
      child.stdout.pipe(dest, { end: false });
    } else {
      child.stdout.on('data', (b: Buffer) => {
        outBytes += b.length;
        if (outBytes > maxBuffer) {
          failure ??= new ToolError('LIMIT_EXCEEDED', `git ${args[0] ?? ''} output exceeded ${maxBuffer} bytes`, {
            hint: 'narrow the request (paths, max_count, a ref range)',
          });
          killGroup();
          return;
        }
        out.push(b);
      });
    }
    child.stderr.on('data', (b: Buffer) => {
      if (err.length < STDERR_CAP) err += b.toString('utf8');
    });
    child.on('error', (e) => {
      failure ??= new ToolError('INTERNAL', `could not start git: ${e.message}`, { hint: 'is git installed and on PATH?' });
    });
    child.on('close', (code) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (opts.stdout) child.stdout.unpipe(opts.stdout);
      if (failure) return reject(failure);
      const rc = code ?? -1;
      const stdout = Buffer.concat(out).toString('utf8');
      if (!okCodes.includes(rc)) return reject(new GitCommandError(rc, err, args));
      resolve({ code: rc, stdout, stderr: err });
    });
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new ToolError('CANCELLED', 'git was cancelled');
}

/**
 * Filter drivers (`filter.<name>.clean|smudge|process`) run programs when git reads worktree
 * files (status, diff). Read actions override every configured one with an empty command,
 * which git treats as "no filter".
 */
export async function filterOverrides(cwd: string, signal?: AbortSignal): Promise<string[]> {
  const r = await runGit(['config', '--name-only', '--get-regexp', '^filter\\..*\\.(clean|smudge|process)$'], {
    cwd,
    mode: 'read',
    signal,
    okCodes: [0, 1],
  });
  return r.stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((k) => `${k}=`);
}

/** Categories of simple-git's own argument guard that our fixed safe settings trip. */
const SIMPLE_GIT_ALLOWED_UNSAFE = {
  allowUnsafeHooksPath: true,
  allowUnsafeFsMonitor: true,
  allowUnsafeProtocolOverride: true,
  allowUnsafePager: true,
  allowUnsafeDiffExternal: true,
  allowUnsafeFilter: true,
  allowUnsafeEditor: true,
  // GIT_CONFIG_GLOBAL / GIT_CONFIG_SYSTEM from the server's own environment
  allowUnsafeConfigPaths: true,
} as const;

/**
 * A simple-git instance with our safe defaults (renovate's createSimpleGit). simple-git's own
 * guard refuses exactly the neutralising settings we need (`core.hooksPath=/dev/null`,
 * `core.fsmonitor=false`, `GIT_PAGER=cat`), so those categories are allowed here; that is safe
 * only because no agent-controlled `-c` or environment ever reaches it: every ref, path and
 * name is validated by the repo tool first. Imported lazily to keep start-up fast.
 */
export async function createSimpleGit(
  cwd: string,
  mode: GitMode,
  opts: { signal?: AbortSignal | undefined; config?: readonly string[] } = {},
): Promise<SimpleGit> {
  const { simpleGit } = await import('simple-git');
  const env = safeGitEnv(mode);
  // the environment is entirely ours (safeGitEnv dropped what could move or run git)
  const gitEnvKeys = Object.keys(env);
  const git = simpleGit({
    baseDir: cwd,
    maxConcurrentProcesses: 4,
    config: [...safeConfig(mode), ...(opts.config ?? [])],
    ...(opts.signal ? { abort: opts.signal } : {}),
    allowEnvironment: gitEnvKeys,
    unsafe: SIMPLE_GIT_ALLOWED_UNSAFE,
  });
  return git.env(env);
}
