import { createReadStream, promises as fsp } from 'node:fs';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { sshExec } from '../../adapters/ssh-exec.js';
import { defineAction, type ActionContext, type Sink } from '../../core/define-action.js';
import { denied, invalid, notFound } from '../../core/errors.js';
import { noNul } from '../../core/json-values.js';
import type { Services } from '../../core/services.js';
import { expandHome } from '../../config/paths.js';
import { endpointFor, gateTarget, pool } from './resolve.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** sshd hands the command line to the shell as a C string: a NUL would end it early. */
const NUL_MESSAGE = 'must not contain a NUL byte (the remote shell would see only the text before it)';

export const targetArg = z.string().min(1).describe('Name of a target in targets.json (ssh {action:"targets"} lists them)');

export const ExecInput = z.strictObject({
  target: targetArg,
  command: z
    .string()
    .min(1)
    .refine(noNul, NUL_MESSAGE)
    .describe('Shell command, run by the login shell on the target as `ssh target command` would'),
  cwd: z.string().min(1).refine(noNul, NUL_MESSAGE).optional().describe('Remote working directory (applied with cd before the command)'),
  env: z
    .record(z.string().regex(ENV_NAME, 'env names are shell variable names'), z.string().refine(noNul, NUL_MESSAGE))
    .optional()
    .describe('Environment variables for the command (exported before it; values are quoted)'),
  pty: z.boolean().default(false).describe('Allocate a pseudo-terminal (stderr is then merged into stdout)'),
  stdin: z.string().optional().describe("Text sent to the command's stdin"),
  stdin_base64: z.string().optional().describe('Binary stdin, base64'),
  stdin_file: z.string().optional().describe('Local file streamed to stdin (needs INFRA_UNSAFE_LOCAL=1)'),
  stdin_ref: z.string().optional().describe('An artifact URI (artifact://…) streamed to stdin'),
  stdin_eof: z.boolean().default(true).describe('Close stdin after the input (false keeps it open until the command exits)'),
});
type ExecArgs = z.output<typeof ExecInput>;

export interface ExecResult {
  exit_code: number | null;
  signal: string | null;
  core_dumped?: boolean;
  stdout: string;
  stderr: string;
  stdout_bytes: number;
  stderr_bytes: number;
}

function stdinSources(a: ExecArgs): string[] {
  return (['stdin', 'stdin_base64', 'stdin_file', 'stdin_ref'] as const).filter((k) => a[k] !== undefined);
}

export function gateExec(a: ExecArgs, services: Services): void {
  gateTarget(a.target, services);
  if (a.stdin_file !== undefined && !services.flags.unsafeLocal) {
    throw denied(
      'ssh stdin_file reads a local file, which needs INFRA_UNSAFE_LOCAL=1',
      'a human can start infra with INFRA_UNSAFE_LOCAL=1, or pass the data as stdin, stdin_base64 or stdin_ref',
    );
  }
}

async function openStdin(ctx: ActionContext, a: ExecArgs): Promise<Readable | Buffer | undefined> {
  const sources = stdinSources(a);
  if (sources.length > 1) throw invalid(`give at most one of stdin, stdin_base64, stdin_file, stdin_ref (got ${sources.join(', ')})`);
  if (a.stdin !== undefined) return Buffer.from(a.stdin, 'utf8');
  if (a.stdin_base64 !== undefined) {
    if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(a.stdin_base64)) throw invalid('stdin_base64 is not valid base64');
    return Buffer.from(a.stdin_base64, 'base64');
  }
  if (a.stdin_file !== undefined) {
    ctx.requireLocal('ssh stdin_file');
    const path = expandHome(a.stdin_file, ctx.services.project.root);
    const st = await fsp.stat(path).catch(() => undefined);
    if (!st) throw notFound(`stdin_file ${path} does not exist`);
    if (!st.isFile()) throw invalid(`stdin_file ${path} is not a regular file`);
    return createReadStream(path);
  }
  if (a.stdin_ref !== undefined) return (await ctx.services.artifacts.openStream(a.stdin_ref)).stream as Readable;
  return undefined;
}

/** Streams output as progress notifications, at most twice a second. */
export function progressReporter(ctx: ActionContext): (stream: 'stdout' | 'stderr', chunk: Buffer) => void {
  let last = 0;
  let pending = '';
  let bytes = 0;
  return (stream, chunk) => {
    bytes += chunk.length;
    pending = (pending + chunk.toString('utf8')).slice(-400);
    const now = Date.now();
    if (now - last < 500) return;
    last = now;
    ctx.progress({ progress: bytes, message: `${stream === 'stderr' ? '[stderr] ' : ''}${ctx.services.redactor.redact(pending)}` });
    pending = '';
  };
}

async function finishSinks(...sinks: Sink[]): Promise<Awaited<ReturnType<Sink['done']>>[]> {
  return Promise.all(sinks.map((s) => s.done()));
}

export const execAction = defineAction({
  tool: 'ssh',
  action: 'exec',
  effect: 'write',
  long: true,
  description:
    'Run a command on a named target over a pooled connection. stdout/stderr stream into the call artifact (head and tail inline); ' +
    'exit_code and signal are in the result (non-zero exit is a result, not an error). Timeout and cancel stop the remote process group.',
  input: ExecInput,
  target: (a) => a.target,
  gate: gateExec,
  summarize: (r: ExecResult) =>
    `exit ${r.exit_code ?? `signal ${r.signal ?? '?'}`}, ${r.stdout_bytes} B stdout, ${r.stderr_bytes} B stderr`,
  handler: async (ctx, a): Promise<ExecResult> => {
    const ep = endpointFor(ctx, a.target);
    const stdin = await openStdin(ctx, a);
    const out = ctx.sink('stdout');
    const err = ctx.sink('stderr');
    try {
      const r = await sshExec(pool(ctx.services), ep, {
        command: a.command,
        cwd: a.cwd,
        env: a.env,
        pty: a.pty,
        stdin,
        stdinEof: a.stdin_eof,
        stdout: out,
        stderr: err,
        signal: ctx.signal,
        onOutput: progressReporter(ctx),
        log: ctx.log,
      });
      const [o, e] = await finishSinks(out, err);
      return {
        exit_code: r.exit_code,
        signal: r.signal,
        ...(r.core_dumped ? { core_dumped: true } : {}),
        stdout: o!.inline,
        stderr: e!.inline,
        stdout_bytes: o!.bytes,
        stderr_bytes: e!.bytes,
      };
    } finally {
      if (stdin && !Buffer.isBuffer(stdin)) (stdin as Readable).destroy();
      await finishSinks(out, err).catch(() => undefined);
    }
  },
});
