import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRuntime, type Runtime } from '../../src/exec/runtime.js';
import type { Envelope, ErrorEnvelope, OkEnvelope } from '../../src/core/envelope.js';

type Loose = any;
import { makeProject, type TempProject } from '../helpers/project.js';
import { git, initRepo } from '../fixtures/git.js';

export interface RepoProject extends TempProject {
  rt: Runtime;
  call(args: Record<string, unknown>): Promise<Envelope>;
  ok(args: Record<string, unknown>): Promise<OkEnvelope & { result: Loose }>;
  fail(args: Record<string, unknown>): Promise<ErrorEnvelope>;
  close(): Promise<void>;
}

/**
 * A temp project whose root is a git repository (main, one commit, .infra/ ignored), with a
 * runtime to call the repo tool through the whole pipeline.
 */
export async function repoProject(
  policy: Record<string, unknown> = {},
  opts: { init?: boolean; commit?: boolean } = {},
): Promise<RepoProject> {
  const p = makeProject({ 'policy.json': policy });
  if (opts.init !== false) {
    initRepo(p.root, { commit: false });
    writeFileSync(join(p.root, '.gitignore'), '.infra/\n');
    if (opts.commit !== false) {
      writeFileSync(join(p.root, 'README.md'), '# fixture\n');
      git(p.root, 'add', '.gitignore', 'README.md');
      git(p.root, 'commit', '-q', '-m', 'initial commit');
    }
  }
  const rt = await createRuntime({ projectDir: p.infraDir, env: process.env });
  const call = (args: Record<string, unknown>): Promise<Envelope> => rt.call('repo', args);
  return {
    ...p,
    rt,
    call,
    async ok(args) {
      const r = await call(args);
      if (!r.ok) throw new Error(`expected ok for ${JSON.stringify(args)}, got ${JSON.stringify(r.error)}`);
      return r as OkEnvelope & { result: Loose };
    },
    async fail(args) {
      const r = await call(args);
      if (r.ok) throw new Error(`expected an error for ${JSON.stringify(args)}, got ${JSON.stringify(r.result).slice(0, 500)}`);
      return r;
    },
    async close() {
      await rt.close();
      p.cleanup();
    },
  };
}
