import type { Envelope, ErrorEnvelope, OkEnvelope } from '../../src/core/envelope.js';
import { createRuntime, type Runtime } from '../../src/exec/runtime.js';
import { makeProject, type TempProject } from '../helpers/project.js';
import type { Sshd } from '../fixtures/sshd.js';

export interface SshRig {
  project: TempProject;
  rt: Runtime;
  call(args: Record<string, unknown>, opts?: Parameters<Runtime['call']>[2]): Promise<Envelope>;
  close(): Promise<void>;
}

/** A target entry for a fixture sshd: key auth, pinned host key. */
export function targetFor(s: Sshd, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { host: s.host, port: s.port, username: s.user, key_file: s.keys.key, host_key_sha256: s.fingerprint, ...extra };
}

/** A temp project with the given files and a runtime with every native tool. */
export async function sshRig(files: Record<string, unknown>, env: Record<string, string> = {}): Promise<SshRig> {
  const project = makeProject(files);
  const rt = await createRuntime({ projectDir: project.infraDir, env: { ...process.env, INFRA_LOG_LEVEL: 'error', ...env } });
  return {
    project,
    rt,
    call: (args, opts) => rt.call('ssh', args, opts),
    close: async () => {
      await rt.close();
      project.cleanup();
    },
  };
}

export function ok(e: Envelope): OkEnvelope & { result: Record<string, any> } {
  if (!e.ok) throw new Error(`expected ok, got ${JSON.stringify(e.error)}`);
  return e as OkEnvelope & { result: Record<string, any> };
}

export function fail(e: Envelope, code?: string): ErrorEnvelope {
  if (e.ok) throw new Error(`expected an error${code ? ` ${code}` : ''}, got ${JSON.stringify(e.result).slice(0, 500)}`);
  if (code && e.error.code !== code) throw new Error(`expected ${code}, got ${e.error.code}: ${e.error.message} (${e.error.hint ?? ''})`);
  return e;
}
