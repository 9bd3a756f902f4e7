import { existsSync } from 'node:fs';
import { createRuntime } from '../exec/runtime.js';
import { listTools } from '../server/tool-list.js';
import { VERSION, COMMIT } from '../version.js';

export interface DoctorCheck {
  name: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  fix?: string;
}

export interface DoctorReport {
  ok: boolean;
  version: string;
  project: { dir: string; found_by: string } | null;
  checks: DoctorCheck[];
  /** Extra sections contributed by other modules (preflight of targets, profiles, servers). */
  sections: Record<string, unknown>;
  text: string;
}

export type DoctorSection = (
  rt: Awaited<ReturnType<typeof createRuntime>>,
) => Promise<{ name: string; checks: DoctorCheck[]; data?: unknown }>;
const sections: DoctorSection[] = [];
export function addDoctorSection(s: DoctorSection): void {
  sections.push(s);
}

export async function runDoctor(opts: { projectFlag?: string | undefined }): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const extra: Record<string, unknown> = {};
  const major = Number(process.versions.node.split('.')[0]);
  checks.push(
    major >= 20
      ? { name: 'node', status: 'ok', detail: `Node ${process.versions.node}` }
      : { name: 'node', status: 'fail', detail: `Node ${process.versions.node}`, fix: 'install Node 20 or newer' },
  );
  let project: DoctorReport['project'] = null;
  try {
    const rt = await createRuntime({ projectFlag: opts.projectFlag });
    try {
      project = { dir: rt.project.dir, found_by: rt.project.source };
      checks.push({
        name: 'project',
        status: existsSync(rt.project.dir) ? 'ok' : 'warn',
        detail: `${rt.project.dir} (found by ${rt.project.source})`,
        ...(existsSync(rt.project.dir) ? {} : { fix: 'run `infra init` in your project root' }),
      });
      checks.push({ name: 'sqlite', status: 'ok', detail: `${rt.project.dbPath} opened (WAL)` });
      for (const issue of rt.services.config.issues)
        checks.push({ name: 'config', status: 'fail', detail: issue.message, fix: issue.hint });
      if (rt.services.config.issues.length === 0) checks.push({ name: 'config', status: 'ok', detail: 'config files valid' });
      const v = await rt.services.audit.verify();
      checks.push(
        v.ok
          ? { name: 'audit', status: 'ok', detail: `hash chain ok (${v.rows} rows)` }
          : {
              name: 'audit',
              status: 'fail',
              detail: `hash chain broken at seq ${v.first_bad?.seq}: ${v.first_bad?.reason}`,
              fix: 'the audit index was edited outside infra; keep a copy of infra.db for review',
            },
      );
      const f = rt.services.flags;
      checks.push({
        name: 'flags',
        status: 'ok',
        detail: `INFRA_UNSAFE_LOCAL=${f.unsafeLocal ? 1 : 0} INFRA_ALLOW_SECRET_EXPORT=${f.allowSecretExport ? 1 : 0} INFRA_READ_ONLY=${f.readOnly ? 1 : 0}`,
      });
      checks.push({
        name: 'tools',
        status: 'ok',
        detail: listTools(rt.pipeline.tools(), rt.services)
          .map((t) => t.name)
          .join(', '),
      });
      for (const section of sections) {
        const s = await section(rt);
        checks.push(...s.checks);
        if (s.data !== undefined) extra[s.name] = s.data;
      }
    } finally {
      await rt.close();
    }
  } catch (e) {
    checks.push({ name: 'start', status: 'fail', detail: (e as Error).message, fix: 'see the message; `infra init` creates a project' });
  }
  const ok = checks.every((c) => c.status !== 'fail');
  const icon = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const;
  const text = [
    `infra ${VERSION} (${COMMIT})`,
    ...checks.map((c) => `[${icon[c.status]}] ${c.name}: ${c.detail}${c.fix ? `\n       fix: ${c.fix}` : ''}`),
    ok ? 'all checks passed' : 'some checks failed: see "fix" above',
  ].join('\n');
  return { ok, version: `${VERSION} (${COMMIT})`, project, checks, sections: extra, text };
}
