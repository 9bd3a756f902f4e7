import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Envelope, ErrorEnvelope, OkEnvelope } from '../../src/core/envelope.js';
import type { AuditRow } from '../../src/audit/audit-store.js';
import { createRuntime, type Runtime } from '../../src/exec/runtime.js';
import type { CallOptions } from '../../src/exec/pipeline.js';
import { makeProject, type TempProject } from '../helpers/project.js';

export type Json = Record<string, unknown>;

export interface RunbookRig {
  project: TempProject;
  rt: Runtime;
  run(name: string, input?: Json, extra?: Json, opts?: CallOptions): Promise<Envelope>;
  call(args: Json, opts?: CallOptions): Promise<Envelope>;
  /** The run.json of a run (by its call id). */
  runDoc(name: string, runId: string): RunDoc;
  children(callId: string): AuditRow[];
  close(): Promise<void>;
}

export interface RunStep {
  id: string;
  tool: string;
  action: string | null;
  status: string;
  args?: Json;
  call_id?: string;
  artifact?: string;
  result?: Json;
  error?: { code: string; message: string };
  items?: (RunStep & { index: number; item: unknown })[];
  attempts?: unknown[];
}

export interface RunDoc {
  run_id: string;
  runbook: string;
  status: string;
  input: Json;
  steps: RunStep[];
  error?: { code: string; message: string };
}

export async function runbookRig(files: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<RunbookRig> {
  const project = makeProject(files);
  const rt = await createRuntime({ projectDir: project.infraDir, env: { ...process.env, INFRA_LOG_LEVEL: 'error', ...env } });
  const call = (args: Json, opts?: CallOptions): Promise<Envelope> => rt.call('runbook', args, opts);
  return {
    project,
    rt,
    call,
    run: (name, input = {}, extra = {}, opts) => call({ action: 'run', name, input, ...extra }, opts),
    runDoc: (name, runId) =>
      JSON.parse(readFileSync(join(project.infraDir, 'artifacts', 'runs', name, runId, 'run.json'), 'utf8')) as RunDoc,
    children: (callId) => rt.services.audit.list({ parent_id: callId, limit: 500 }).sort((a, b) => a.id.localeCompare(b.id)),
    close: async () => {
      await rt.close();
      project.cleanup();
    },
  };
}

export function ok(e: Envelope): OkEnvelope & { result: Json & { steps: RunStep[] } } {
  if (!e.ok) throw new Error(`expected ok, got ${JSON.stringify(e.error)}`);
  return e as OkEnvelope & { result: Json & { steps: RunStep[] } };
}

export function fail(e: Envelope, code?: string): ErrorEnvelope {
  if (e.ok) throw new Error(`expected an error${code ? ` ${code}` : ''}, got ${JSON.stringify(e.result).slice(0, 800)}`);
  if (code && e.error.code !== code) throw new Error(`expected ${code}, got ${e.error.code}: ${e.error.message} (${e.error.hint ?? ''})`);
  return e;
}

export const HELLO_WORLD = {
  'hello.world': {
    description: 'A simple test runbook.',
    tags: ['test'],
    inputs: ['message'],
    steps: [{ id: 'echo', tool: 'mcp_state', args: { action: 'set', key: 'hello', value: '{{ input.message }}' } }],
  },
};
