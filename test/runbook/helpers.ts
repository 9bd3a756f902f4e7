import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

/**
 * The sshd's sessions get a PATH starting with a directory holding stand-ins for `sudo` and
 * `systemctl` (the test machine runs no systemd): systemctl writes each argument it received on
 * its own line to a log, so the test sees exactly how the remote shell split the command.
 */
export function fakeSystemd(): { bin: string; log: string; pwned: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'infra-rb-fakebin-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const log = join(dir, 'systemctl.log');
  writeFileSync(join(bin, 'sudo'), '#!/bin/sh\n[ "$1" = "-n" ] && shift\nexec "$@"\n');
  writeFileSync(
    join(bin, 'systemctl'),
    [
      '#!/bin/sh',
      `{ echo "argc=$#"; for a in "$@"; do printf 'arg=%s\\n' "$a"; done; } >> '${log}'`,
      'case "$2" in broken) echo "Job for broken.service failed" >&2; exit 5;; esac',
      '[ "$1" = status ] && printf "* %s.service - stand-in\\n   Active: active (running)\\n" "$2"',
      'exit 0',
      '',
    ].join('\n'),
  );
  chmodSync(join(bin, 'sudo'), 0o755);
  chmodSync(join(bin, 'systemctl'), 0o755);
  // the remote user is the fixture's unprivileged user: it can write the log, and would create
  // `pwned` if an injected command ever ran
  chmodSync(dir, 0o777);
  chmodSync(bin, 0o755);
  writeFileSync(log, '', { mode: 0o666 });
  chmodSync(log, 0o666);
  return { bin, log, pwned: join(dir, 'pwned'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
