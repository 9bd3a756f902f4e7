import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Envelope, ErrorEnvelope, OkEnvelope } from '../../src/core/envelope.js';
import { createRuntime, type Runtime } from '../../src/exec/runtime.js';
import { artifactsTool } from '../../src/toolsets/artifacts/index.js';
import { httpTool } from '../../src/toolsets/http/index.js';
import { makeProject, type TempProject } from '../helpers/project.js';

export interface HttpRig {
  project: TempProject;
  rt: Runtime;
  call(args: Record<string, unknown>, opts?: Parameters<Runtime['call']>[2]): Promise<Envelope>;
  close(): Promise<void>;
}

/** A temp project and a runtime with the http tool (and artifacts, to read bodies back). */
export async function httpRig(files: Record<string, unknown> = {}, env: Record<string, string> = {}, logs?: string[]): Promise<HttpRig> {
  const project = makeProject(files);
  const rt = await createRuntime({
    projectDir: project.infraDir,
    env: { ...process.env, ...env },
    tools: [httpTool, artifactsTool],
    logListeners: logs ? [(level, msg, fields) => void logs.push(JSON.stringify({ level, msg, ...fields }))] : [],
  });
  return {
    project,
    rt,
    call: (args, opts) => rt.call('http', args, opts),
    close: async () => {
      await rt.close();
      project.cleanup();
    },
  };
}

/** Results are read loosely in tests; the pipeline already checked their shape. */

type LooseResult = Record<string, any>;

export function ok(e: Envelope): OkEnvelope & { result: LooseResult } {
  if (!e.ok) throw new Error(`expected ok, got ${JSON.stringify(e.error)}`);
  return e as OkEnvelope & { result: LooseResult };
}

export function fail(e: Envelope): ErrorEnvelope {
  if (e.ok) throw new Error(`expected an error, got ${JSON.stringify(e.result).slice(0, 500)}`);
  return e;
}

/** Every regular file under dir, recursively. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

/** Files under dir whose bytes contain any of the needles. */
export function filesContaining(dir: string, needles: string[]): string[] {
  const hits: string[] = [];
  for (const f of filesUnder(dir)) {
    const buf = readFileSync(f);
    if (needles.some((n) => buf.includes(Buffer.from(n)))) hits.push(f);
  }
  return hits;
}
