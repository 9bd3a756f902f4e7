import { spawn } from 'node:child_process';
import { createReadStream, promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { defineAction, defineTool, type ActionContext } from '../../core/define-action.js';
import { invalid, notFound, ToolError } from '../../core/errors.js';
import { noNul } from '../../core/json-values.js';
import { expandHome } from '../../config/paths.js';

const KILL_GRACE_MS = 2000;

const execInput = z.strictObject({
  command: z.string().min(1).max(65536).describe('Executable (argv mode, default) or a shell command string with shell: true'),
  args: z.array(z.string().max(65536)).max(4096).default([]).describe('Arguments (argv mode)'),
  shell: z.boolean().default(false).describe('Run command through /bin/sh -c (explicit opt-in)'),
  cwd: z.string().max(4096).optional(),
  env: z.record(z.string(), z.string()).optional().describe('Extra environment variables'),
  stdin: z.string().optional(),
  stdin_base64: z.string().optional(),
  stdin_file: z.string().max(4096).optional().describe('Stream stdin from a local file'),
  stdin_ref: z.string().max(1024).optional().describe('Stream stdin from an artifact (artifact://…)'),
  stdin_eof: z.boolean().default(true).describe('Close stdin after the input (default true)'),
  inline: z.boolean().optional().describe('Accepted for compatibility: output is always inline (head+tail) and in the artifact'),
});

async function runLocal(ctx: ActionContext, a: z.output<typeof execInput>) {
  const stdinSources = [a.stdin, a.stdin_base64, a.stdin_file, a.stdin_ref].filter((x) => x !== undefined).length;
  if (stdinSources > 1) throw invalid('give at most one of stdin, stdin_base64, stdin_file, stdin_ref');
  if (a.shell && a.args.length) throw invalid('args are for argv mode; with shell: true put everything in command');
  // a process argument, path or environment entry cannot hold a NUL byte (spawn would throw)
  const withNul = [
    ['command', a.command],
    ...a.args.map((x, i) => [`args[${i}]`, x]),
    ...Object.entries(a.env ?? {}).flatMap(([k, v]) => [
      [`env name ${JSON.stringify(k.slice(0, 64))}`, k],
      [`env ${JSON.stringify(k.slice(0, 64))}`, v],
    ]),
    ['cwd', a.cwd ?? ''],
  ].find(([, x]) => !noNul(x!));
  if (withNul) throw invalid(`${withNul[0]} contains a NUL byte, which no process argument, path or environment entry can hold`);
  const cwd = a.cwd ? expandHome(a.cwd, ctx.services.project.root) : ctx.services.project.root;
  const st = await fsp.stat(cwd).catch(() => undefined);
  if (!st?.isDirectory()) throw invalid(`cwd ${cwd} is not a directory`);
  let stdinStream: NodeJS.ReadableStream | undefined;
  if (a.stdin_file) {
    const p = expandHome(a.stdin_file, ctx.services.project.root);
    await fsp.access(p).catch(() => {
      throw notFound(`stdin_file ${p} does not exist or is not readable`);
    });
    stdinStream = createReadStream(p);
  } else if (a.stdin_ref) {
    stdinStream = (await ctx.services.artifacts.openStream(a.stdin_ref)).stream;
  }

  const file = a.shell ? '/bin/sh' : a.command;
  const argv = a.shell ? ['-c', a.command] : a.args;
  const child = spawn(file, argv, {
    cwd,
    env: { ...process.env, ...a.env },
    stdio: ['pipe', 'pipe', 'pipe'],
    // its own process group, so a timeout or cancel stops everything it started
    detached: true,
  });
  const stdout = ctx.sink('stdout');
  const stderr = ctx.sink('stderr');
  child.stdout.pipe(stdout);
  child.stderr.pipe(stderr);
  child.stdin.on('error', () => undefined);
  if (a.stdin !== undefined) child.stdin.write(a.stdin);
  if (a.stdin_base64 !== undefined) child.stdin.write(Buffer.from(a.stdin_base64, 'base64'));
  if (stdinStream) stdinStream.pipe(child.stdin, { end: a.stdin_eof });
  else if (a.stdin_eof) child.stdin.end();

  let killTimer: NodeJS.Timeout | undefined;
  const killGroup = (): void => {
    if (child.pid === undefined || child.exitCode !== null) return;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    killTimer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, KILL_GRACE_MS);
    killTimer.unref();
  };
  ctx.signal.addEventListener('abort', killGroup, { once: true });
  const progress = setInterval(
    () => ctx.progress({ message: `stdout ${stdout.bytesWritten} bytes, stderr ${stderr.bytesWritten} bytes` }),
    1000,
  );
  progress.unref();

  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res, rej) => {
    child.once('error', (e: NodeJS.ErrnoException) =>
      rej(
        e.code === 'ENOENT'
          ? notFound(
              `command not found: ${a.command}`,
              a.shell ? undefined : 'argv mode runs an executable on PATH; use shell: true for a shell command string',
            )
          : e,
      ),
    );
    child.once('close', (code, signal) => res({ code, signal }));
  }).finally(() => {
    clearInterval(progress);
    ctx.signal.removeEventListener('abort', killGroup);
  });
  if (killTimer && exit.code !== null) clearTimeout(killTimer);
  if (ctx.signal.aborted) throw ctx.signal.reason instanceof ToolError ? ctx.signal.reason : new ToolError('CANCELLED', 'cancelled');
  const [o, e] = await Promise.all([stdout.done(), stderr.done()]);
  return {
    exit_code: exit.code,
    signal: exit.signal,
    stdout: o.inline,
    stderr: e.inline,
    stdout_bytes: o.bytes,
    stderr_bytes: e.bytes,
    stdout_sha256: o.sha256,
    stdout_uri: o.uri,
    stderr_uri: e.uri,
  };
}

const pathArg = z.string().min(1).max(4096).describe('Local path (~ expanded; relative to the project root)');

export const localTool = defineTool({
  name: 'local',
  title: 'Local machine (unsafe)',
  description:
    'Run processes and read files on the machine infra runs on. Listed and callable only when a human starts infra with INFRA_UNSAFE_LOCAL=1. argv by default; shell: true is explicit.',
  enabledBy: (s) => s.flags.unsafeLocal,
  actions: [
    defineAction({
      tool: 'local',
      action: 'exec',
      effect: 'write',
      long: true,
      description: 'Run a local command (argv, or shell: true); stdout/stderr streamed to the artifact with head+tail inline',
      input: execInput,
      target: (a) => (a.shell ? 'sh' : a.command).slice(0, 200),
      summarize: (r: { exit_code: number | null; stdout_bytes: number }) => `exit ${r.exit_code}, ${r.stdout_bytes} bytes stdout`,
      handler: async (ctx, a) => {
        ctx.requireLocal('local exec');
        return runLocal(ctx, a);
      },
    }),
    defineAction({
      tool: 'local',
      action: 'read',
      effect: 'read',
      description: 'Read a local file (from offset, up to max_bytes; redacted)',
      input: z.strictObject({
        path: pathArg,
        offset: z.number().int().min(0).default(0),
        max_bytes: z
          .number()
          .int()
          .min(1)
          .max(16 * 1024 * 1024)
          .default(65536),
      }),
      target: (a) => a.path,
      summarize: (r: { path: string; returned: number }) => `read ${r.returned} bytes of ${r.path}`,
      handler: async (ctx, a) => {
        ctx.requireLocal('local read');
        const p = expandHome(a.path, ctx.services.project.root);
        const st = await fsp.stat(p).catch(() => undefined);
        if (!st) throw notFound(`no file ${p}`);
        if (!st.isFile()) throw invalid(`${p} is not a regular file`, 'use action "list" for directories');
        const fh = await fsp.open(p, 'r');
        try {
          const len = Math.max(0, Math.min(a.max_bytes, st.size - a.offset));
          const buf = Buffer.alloc(len);
          const { bytesRead } = await fh.read(buf, 0, len, a.offset);
          const content = ctx.services.redactor.redactBuffer(buf.subarray(0, bytesRead)).toString('utf8');
          return { path: p, bytes: st.size, offset: a.offset, returned: bytesRead, truncated: a.offset + bytesRead < st.size, content };
        } finally {
          await fh.close();
        }
      },
    }),
    defineAction({
      tool: 'local',
      action: 'list',
      effect: 'read',
      description: 'List a local directory',
      input: z.strictObject({ path: pathArg.default('.'), limit: z.number().int().min(1).max(10000).default(500) }),
      target: (a) => a.path,
      summarize: (r: { entries: unknown[] }) => `${r.entries.length} entries`,
      handler: async (ctx, a) => {
        ctx.requireLocal('local list');
        const p = resolve(expandHome(a.path, ctx.services.project.root));
        const dirents = await fsp.readdir(p, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
          throw e.code === 'ENOENT' ? notFound(`no directory ${p}`) : e.code === 'ENOTDIR' ? invalid(`${p} is not a directory`) : e;
        });
        const entries = [];
        for (const d of dirents.slice(0, a.limit)) {
          const st = await fsp.lstat(resolve(p, d.name)).catch(() => undefined);
          entries.push({
            name: d.name,
            type: d.isDirectory() ? 'dir' : d.isSymbolicLink() ? 'symlink' : d.isFile() ? 'file' : 'other',
            bytes: st?.size,
            modified: st?.mtime.toISOString(),
          });
        }
        return { path: p, entries, truncated: dirents.length > a.limit };
      },
    }),
  ],
});
