import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp, realpathSync } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import { Readable } from 'node:stream';
import { z } from 'zod';
import { sftpDownload, sftpUpload, type DownloadOutcome, type UploadOutcome } from '../../adapters/ssh-sftp.js';
import { defineAction, type ActionContext } from '../../core/define-action.js';
import { denied, invalid, notFound } from '../../core/errors.js';
import { noNul } from '../../core/json-values.js';
import type { Services } from '../../core/services.js';
import { expandHome } from '../../config/paths.js';
import { targetArg } from './exec.js';
import { endpointFor, gateTarget, pool } from './resolve.js';

const remotePath = z
  .string()
  .min(1)
  .refine(noNul, 'NUL is not allowed')
  .describe('Path on the target (relative paths are from the login directory)');
const localPath = z.string().min(1).describe('Local path (needs INFRA_UNSAFE_LOCAL=1)');

function gateLocal(what: string, path: string | undefined, services: Services): void {
  if (path !== undefined && !services.flags.unsafeLocal) {
    throw denied(
      `${what} uses a local path, which needs INFRA_UNSAFE_LOCAL=1`,
      'a human can start infra with INFRA_UNSAFE_LOCAL=1; without it use content/content_base64/content_ref (upload) or the artifact (download)',
    );
  }
}

function within(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}

function realOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/**
 * A local destination the agent chose: absolute after ~ expansion, parent must exist, never a
 * symlink, never under the project directory or the artifacts (DESIGN §3: only stores write there).
 */
async function checkLocalDest(services: Services, p: string, overwrite: boolean): Promise<string> {
  if (p.includes('\0')) throw invalid('local_path contains NUL');
  const path = expandHome(p, services.project.root);
  const parent = dirname(path);
  const parentReal = await fsp.realpath(parent).catch(() => undefined);
  if (!parentReal) throw notFound(`the directory ${parent} does not exist`);
  const dest = join(parentReal, basename(path));
  for (const guarded of [services.project.dir, services.project.artifactsDir]) {
    if (within(dest, realOrSelf(guarded))) {
      throw denied(
        `local_path ${dest} is inside ${guarded}, where only infra's own stores write`,
        "choose a path outside the project's .infra directory and artifacts",
      );
    }
  }
  const st = await fsp.lstat(dest).catch(() => undefined);
  if (st?.isSymbolicLink()) throw denied(`local_path ${dest} is a symlink, which downloads refuse to follow`);
  if (st?.isDirectory()) throw invalid(`local_path ${dest} is a directory`, 'give the full file path');
  if (st && !overwrite) throw invalid(`local_path ${dest} exists`, 'pass overwrite: true to replace it');
  return dest;
}

export const UploadInput = z.strictObject({
  target: targetArg,
  remote_path: remotePath,
  content: z.string().optional().describe('Text to write'),
  content_base64: z.string().optional().describe('Binary content, base64'),
  content_ref: z.string().optional().describe('An artifact URI (artifact://…) to upload'),
  local_path: localPath.optional(),
  mode: z
    .union([z.string().regex(/^0?[0-7]{3,4}$/, 'an octal mode like "0644"'), z.number().int().min(0).max(0o7777)])
    .optional()
    .describe('File mode, octal string like "0644" (default: the existing file\'s mode, else 0644)'),
  create_dirs: z.boolean().default(false).describe('Create missing parent directories'),
  overwrite: z.boolean().default(true).describe('Replace an existing file (atomically, by rename)'),
});
type UploadArgs = z.output<typeof UploadInput>;

async function uploadSource(ctx: ActionContext, a: UploadArgs): Promise<Readable> {
  const given = (['content', 'content_base64', 'content_ref', 'local_path'] as const).filter((k) => a[k] !== undefined);
  if (given.length !== 1)
    throw invalid(`give exactly one of content, content_base64, content_ref, local_path (got ${given.length ? given.join(', ') : 'none'})`);
  if (a.content !== undefined) return Readable.from([Buffer.from(a.content, 'utf8')]);
  if (a.content_base64 !== undefined) {
    if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(a.content_base64)) throw invalid('content_base64 is not valid base64');
    return Readable.from([Buffer.from(a.content_base64, 'base64')]);
  }
  if (a.content_ref !== undefined) return (await ctx.services.artifacts.openStream(a.content_ref)).stream as Readable;
  ctx.requireLocal('ssh upload from local_path');
  const path = expandHome(a.local_path!, ctx.services.project.root);
  const st = await fsp.stat(path).catch(() => undefined);
  if (!st) throw notFound(`local_path ${path} does not exist`);
  if (!st.isFile()) throw invalid(`local_path ${path} is not a regular file`);
  return createReadStream(path);
}

export const uploadAction = defineAction({
  tool: 'ssh',
  action: 'upload',
  effect: 'write',
  description:
    'Write a file on a target over SFTP from content, content_base64, an artifact (content_ref) or a local file (INFRA_UNSAFE_LOCAL). Written to a temp name and renamed into place.',
  input: UploadInput,
  target: (a) => a.target,
  gate: (a, services) => {
    gateTarget(a.target, services);
    gateLocal('ssh upload', a.local_path, services);
  },
  summarize: (r: UploadOutcome) => `wrote ${r.bytes} B to ${r.remote_path}`,
  handler: async (ctx, a): Promise<UploadOutcome> => {
    const ep = endpointFor(ctx, a.target);
    const source = await uploadSource(ctx, a);
    try {
      return await sftpUpload(pool(ctx.services), ep, {
        remotePath: a.remote_path,
        source,
        mode: typeof a.mode === 'string' ? parseInt(a.mode, 8) : a.mode,
        createDirs: a.create_dirs,
        overwrite: a.overwrite,
        signal: ctx.signal,
      });
    } finally {
      source.destroy();
    }
  },
});

export const DownloadInput = z.strictObject({
  target: targetArg,
  remote_path: remotePath,
  local_path: localPath.optional().describe('Write here instead of (only) the artifact (needs INFRA_UNSAFE_LOCAL=1)'),
  overwrite: z.boolean().default(false).describe('Replace an existing local_path'),
});

export interface DownloadResult extends DownloadOutcome {
  /** The artifact holding the file (absent when written to local_path). */
  uri?: string;
  local_path?: string;
  /** The file's text (redacted) when it is UTF-8 and fits max_bytes. */
  content?: string;
}

export const downloadAction = defineAction({
  tool: 'ssh',
  action: 'download',
  effect: 'read',
  description:
    'Read a file from a target over SFTP into the call artifact (small text files also inline, redacted), or to a local path with INFRA_UNSAFE_LOCAL.',
  input: DownloadInput,
  target: (a) => a.target,
  gate: (a, services) => {
    gateTarget(a.target, services);
    gateLocal('ssh download', a.local_path, services);
  },
  summarize: (r: DownloadResult) => `read ${r.bytes} B from ${r.remote_path}`,
  handler: async (ctx, a): Promise<DownloadResult> => {
    const ep = endpointFor(ctx, a.target);
    const p = pool(ctx.services);
    if (a.local_path !== undefined) {
      ctx.requireLocal('ssh download to local_path');
      const dest = await checkLocalDest(ctx.services, a.local_path, a.overwrite);
      const tmp = `${dest}.infra-${randomBytes(4).toString('hex')}.tmp`;
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
      try {
        const r = await sftpDownload(p, ep, { remotePath: a.remote_path, dest: out, signal: ctx.signal });
        await fsp.rename(tmp, dest);
        return { ...r, local_path: dest };
      } catch (e) {
        out.destroy();
        await fsp.rm(tmp, { force: true });
        throw e;
      }
    }
    // bulk data the human asked for: stored as is, redacted when read back (DESIGN §5)
    const sink = ctx.sink('download', { raw: true, inlineBytes: 0 });
    let r: DownloadOutcome;
    try {
      r = await sftpDownload(p, ep, {
        remotePath: a.remote_path,
        dest: sink,
        signal: ctx.signal,
        maxBytes: ctx.services.config.policy.limits.artifact_max_bytes,
      });
    } finally {
      await sink.done().catch(() => undefined);
    }
    const done = await sink.done();
    const result: DownloadResult = { ...r, uri: done.uri };
    if (r.bytes <= ctx.maxBytes) {
      const read = await ctx.services.artifacts.read(done.uri, { maxBytes: ctx.maxBytes });
      if (read.encoding === 'utf8') result.content = read.content;
    }
    return result;
  },
});
