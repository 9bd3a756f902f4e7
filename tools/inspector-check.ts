// Drives the built server (dist/cli.js) with the third-party MCP Inspector CLI, as users do,
// against a real sshd, a real PostgreSQL cluster, a local HTTP server and a git repository
// started here on 127.0.0.1. Prints each call's one-line outcome; exits non-zero on a failure.
// Run: npm run build && node --import tsx tools/inspector-check.ts
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHttpServer } from '../test/fixtures/http-server.js';
import { startPostgres } from '../test/fixtures/postgres.js';
import { ensurePasswordUser, PASSWORD, PASSWORD_USER, startSshd } from '../test/fixtures/sshd.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const INSPECTOR = '@modelcontextprotocol/inspector@2.12.0';

const work = mkdtempSync(join(tmpdir(), 'infra-inspector-'));
const infra = join(work, '.infra');
ensurePasswordUser();
const sshd = await startSshd();
const pg = await startPostgres();
const http = await startHttpServer();
let failures = 0;
try {
  execFileSync('git', ['init', '-q', work]);
  execFileSync('git', ['-C', work, '-c', 'user.name=t', '-c', 'user.email=t@e', 'commit', '-q', '--allow-empty', '-m', 'first']);
  execFileSync(process.execPath, [join(root, 'dist', 'cli.js'), 'init', work], { stdio: 'ignore' });
  const env: Record<string, string> = {
    MCP_PROFILES_DIR: infra,
    INFRA_UNSAFE_LOCAL: '1',
    CHECK_SSH_PASSWORD: PASSWORD,
    CHECK_DB_URL: pg.url('reader'),
    INFRA_LOG_LEVEL: 'error',
  };
  writeFileSync(
    join(infra, 'targets.json'),
    JSON.stringify({
      web: {
        host: sshd.host,
        port: sshd.port,
        username: PASSWORD_USER,
        password: '${env:CHECK_SSH_PASSWORD}',
        host_key_sha256: sshd.fingerprint,
      },
    }),
  );
  writeFileSync(
    join(infra, 'profiles.json'),
    JSON.stringify({ db: { type: 'postgres', url: '${env:CHECK_DB_URL}' }, site: { type: 'http', base_url: http.url } }),
  );
  // async: the HTTP fixture lives in this process and must keep serving while the Inspector runs
  const run = (args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn('npx', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      });
    });
  const inspector = async (label: string, args: string[], expectOk = true): Promise<void> => {
    const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    const r = await run(['-y', INSPECTOR, '--cli', ...envArgs, process.execPath, join(root, 'dist', 'cli.js'), ...args]);
    const out = r.stdout ?? '';
    let line: string;
    // the Inspector exits non-zero on an isError result; an expected refusal is judged by its envelope
    let ok = r.status === 0 || !expectOk;
    try {
      const doc = JSON.parse(out) as { tools?: unknown[]; structuredContent?: { ok: boolean; error?: { code: string }; result?: unknown } };
      if (doc.tools) line = `${doc.tools.length} tools`;
      else {
        const sc = doc.structuredContent!;
        ok = ok && sc.ok === expectOk;
        line = sc.ok ? JSON.stringify(sc.result).slice(0, 140) : `error ${sc.error?.code}`;
      }
    } catch {
      ok = ok && /0 errors/.test(out + r.stderr);
      line = (out + r.stderr).trim().split('\n').slice(-1)[0] ?? '';
    }
    if (!ok) failures++;
    process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${label}: ${line}\n`);
  };
  const call = (tool: string, a: Record<string, unknown>): string[] => [
    '--method',
    'tools/call',
    '--tool-name',
    tool,
    ...Object.entries(a).flatMap(([k, v]) => ['--tool-arg', `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`]),
  ];
  await inspector('tools/list --strict', ['--strict', '--method', 'tools/list']);
  await inspector('ssh exec', call('ssh', { action: 'exec', target: 'web', command: 'uname -s; exit 3' }));
  await inspector('psql query', call('psql', { action: 'query', profile: 'db', sql: 'select 1 as one' }));
  await inspector('psql bypass refused', call('psql', { action: 'query', profile: 'db', sql: 'create table x(i int)' }), false);
  await inspector('http request', call('http', { action: 'request', profile: 'site', path: '/json' }));
  await inspector('http metadata refused', call('http', { action: 'request', url: 'http://169.254.169.254/latest/meta-data/' }), false);
  await inspector('repo snapshot', call('repo', { action: 'snapshot', repo_path: '.' }));
  await inspector(
    'runbook hello.world (mcp_state step)',
    call('runbook', { action: 'run', name: 'hello.world', input: { message: 'hi' } }),
  );
  await inspector('runbook repo.snapshot', call('runbook', { action: 'run', name: 'repo.snapshot', input: { repo_path: '.' } }));
  await inspector(
    'runbook db.export.table',
    call('runbook', {
      action: 'run',
      name: 'db.export.table',
      input: { profile_name: 'db', table: 'pg_catalog.pg_namespace', file_path: join(work, 'ns.csv') },
    }),
  );
  // hidden aliases (mcp_state …) are not listed, and the Inspector only calls listed tools;
  // the hello.world runbook above exercises mcp_state
  await inspector('state set by the runbook step', call('state', { action: 'get', key: 'hello' }));
  await inspector('invalid call', call('state', { action: 'get' }), false);
  await inspector('audit verify', call('audit', { action: 'verify' }));
  await inspector('audit list', call('audit', { action: 'list', limit: 5 }));
} finally {
  await http.close();
  pg.stop();
  await sshd.stop();
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(failures ? `${failures} failed\n` : 'all inspector checks passed\n');
process.exit(failures ? 1 : 0);
