import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { resolveProject } from '../config/load.js';
import { isToolError } from '../core/errors.js';
import { SecretStore } from '../secrets/store.js';
import { addDoctorSection, type DoctorCheck } from './doctor.js';
import type { PreflightResult } from '../toolsets/preflight/index.js';
import { VERSION } from '../version.js';

const out = (s: string): void => {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
};

function storeFor(program: Command): SecretStore {
  const project = resolveProject({ env: process.env, cwd: process.cwd(), projectFlag: program.opts<{ project?: string }>().project });
  return new SecretStore({ dir: project.dir, env: process.env });
}

/** Reads a value without echoing it (a terminal) or the whole of stdin (a pipe). Never argv. */
async function readValue(name: string): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    // one trailing newline is the shell's, not the secret's
    return Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '');
  }
  const ask = (prompt: string): Promise<string> =>
    new Promise((resolve) => {
      let muted = false;
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          if (!muted) process.stderr.write(chunk);
          cb();
        },
      });
      const rl = createInterface({ input: process.stdin, output: sink, terminal: true });
      rl.question(prompt, (answer) => {
        rl.close();
        process.stderr.write('\n');
        resolve(answer);
      });
      muted = true;
    });
  const first = await ask(`value for ${name} (not shown): `);
  const again = await ask('again: ');
  if (first !== again) throw new Error('the two values differ; nothing was stored');
  return first;
}

function fail(e: unknown): never {
  const msg = isToolError(e) ? `${e.message}${e.hint ? `\n  hint: ${e.hint}` : ''}` : (e as Error).message;
  process.stderr.write(`infra secrets: ${msg}\n`);
  process.exit(1);
}

/** `infra secrets set|list|rm`, and the credentials section of `infra doctor`. */
export function registerSecretsCommands(program: Command): void {
  addDoctorSection(credentialsSection);
  const secrets = program.command('secrets').description('the encrypted local secret store behind ${secret:NAME} (see docs/SECURITY.md)');
  secrets
    .command('set')
    .description('store a secret; the value is read from stdin or a hidden prompt, never from the command line')
    .argument('<name>', 'secret name, referenced in config as ${secret:NAME}')
    .allowExcessArguments(true)
    .action(async (name: string, _o: unknown, cmd: Command) => {
      if (cmd.args.length > 1) {
        process.stderr.write(
          `infra secrets: refusing a value on the command line (it would stay in shell history and show in ps); pipe it instead:\n  printf %s "$VALUE" | infra secrets set ${name}\n`,
        );
        process.exit(2);
      }
      try {
        const value = await readValue(name);
        if (value === '') throw new Error('empty value; nothing was stored');
        const store = storeFor(program);
        store.set(name, value);
        out(`stored ${name} in ${store.path} (key: ${store.keySource()}); reference it as \${secret:${name}}`);
      } catch (e) {
        fail(e);
      }
    });
  secrets
    .command('list')
    .description('stored names (never values)')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => {
      try {
        const store = storeFor(program);
        const status = store.status();
        const entries = status.exists ? store.entries() : [];
        if (o.json)
          return out(
            JSON.stringify({ path: status.path, key_source: status.key_source, secrets: entries, problems: status.problems }, null, 2),
          );
        if (!entries.length) out(`no secrets in ${status.path}; add one with: printf %s "$VALUE" | infra secrets set NAME`);
        for (const e of entries) out(`${e.name.padEnd(32)} ${e.updated_at}`);
        for (const p of status.problems) process.stderr.write(`warning: ${p.message}\n  fix: ${p.fix}\n`);
      } catch (e) {
        fail(e);
      }
    });
  secrets
    .command('rm')
    .description('remove a stored secret')
    .argument('<name>')
    .action((name: string) => {
      try {
        const store = storeFor(program);
        if (!store.remove(name)) {
          process.stderr.write(`infra secrets: no secret named ${name} in ${store.path}\n`);
          process.exitCode = 1;
          return;
        }
        out(`removed ${name}`);
      } catch (e) {
        fail(e);
      }
    });
}

const LABEL: Record<string, DoctorCheck['status']> = { ok: 'ok', disabled: 'warn', missing_credentials: 'fail', failed: 'fail' };

/** Secret store health, then preflight of every target and profile (through the audited tool). */
export const credentialsSection: Parameters<typeof addDoctorSection>[0] = async (rt) => {
  const checks: DoctorCheck[] = [];
  const store = new SecretStore({ dir: rt.project.dir, env: process.env });
  const st = store.status();
  checks.push({
    name: 'secrets',
    status: st.problems.length ? 'fail' : 'ok',
    detail: st.exists
      ? `${st.names.length} stored in ${st.path} (key: ${st.key_source})`
      : 'no secret store yet (`infra secrets set NAME` creates one)',
    ...(st.problems.length ? { fix: st.problems.map((p) => `${p.message}: ${p.fix}`).join('; ') } : {}),
  });
  const env = await rt.call('preflight', {}, { client: { name: 'infra-doctor', version: VERSION } });
  if (!env.ok) {
    checks.push({ name: 'preflight', status: 'fail', detail: env.error.message, ...(env.error.hint ? { fix: env.error.hint } : {}) });
    return { name: 'preflight', checks };
  }
  const r = env.result as PreflightResult;
  if (r.items.length === 0) {
    checks.push({
      name: 'preflight',
      status: 'warn',
      detail: 'nothing to check yet: no ssh targets, postgres or http profiles are configured',
      fix: `add SSH targets to ${rt.project.dir}/targets.json and postgres/http profiles to ${rt.project.dir}/profiles.json (the files have commented examples), then run infra doctor again`,
    });
  }
  for (const it of r.items) {
    const extra =
      it.status === 'failed'
        ? ` (${it.reason})`
        : it.status === 'missing_credentials' && it.missing?.length
          ? ` (${it.missing.join(', ')})`
          : it.status === 'disabled' && it.policy
            ? ` (${it.policy})`
            : '';
    const latency = it.latency_ms !== null ? `, ${it.latency_ms} ms` : '';
    checks.push({
      name: `${it.kind} ${it.name}`,
      status: it.warnings?.length && it.status === 'ok' ? 'warn' : (LABEL[it.status] ?? 'fail'),
      detail: `${it.status}${extra}: ${it.message}${latency}${it.warnings?.length ? ` — warning: ${it.warnings.join('; ')}` : ''}`,
      ...(it.hint ? { fix: it.hint } : {}),
    });
  }
  return { name: 'preflight', checks, data: r };
};
