/**
 * Redaction everywhere (DESIGN §5): distinct secrets seeded into targets (ssh password from the
 * store), profiles (postgres password from the environment, http bearer from the store, an API
 * key from the environment, a token from a file), then a scripted session over stdio touching
 * every tool — commands that echo the secrets back (raw, base64, URL-encoded), SQL that selects
 * them, an HTTP endpoint that reflects request headers, errors that quote them — and a scan of
 * every reply, the server's stderr and every byte under the project directory (infra.db, WAL).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { secretForms } from '../../src/artifacts/redactor.js';
import { SecretStore } from '../../src/secrets/store.js';
import { startSshd, PASSWORD, PASSWORD_USER, type Sshd } from '../fixtures/sshd.js';
import { startPostgres, type PgCluster } from '../fixtures/postgres.js';
import { startHttpServer, type FixtureServer } from '../fixtures/http-server.js';
import { initRepo } from '../fixtures/git.js';
import { makeProject, type TempProject } from '../helpers/project.js';
import { CLI, startStdio, type StdioSession } from '../helpers/client.js';

const rnd = (p: string): string => `${p}-${randomBytes(10).toString('hex')}`;

let sshd: Sshd;
let pg: PgCluster;
let web: FixtureServer;
let project: TempProject;
let outside: string;
let session: StdioSession;
let stderr = '';
const replies: string[] = [];
const secrets = {} as Record<'ssh_password' | 'pg_password' | 'api_bearer' | 'api_key' | 'file_token', string>;

before(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  [sshd, pg, web] = await Promise.all([startSshd(), startPostgres({ tables: false }), startHttpServer()]);
  outside = mkdtempSync(join(tmpdir(), 'infra-secret-file-'));
  secrets.ssh_password = PASSWORD; // the fixture user's password, held in the secret store
  secrets.pg_password = pg.passwords.reader; // from the environment
  secrets.api_bearer = rnd('bearer'); // from the secret store
  secrets.api_key = rnd('apikey'); // from the environment
  secrets.file_token = rnd('filetok'); // from a file outside the project
  writeFileSync(join(outside, 'token'), `${secrets.file_token}\n`, { mode: 0o600 });

  project = makeProject({
    'targets.json': {
      pw: { host: sshd.host, port: sshd.port, username: PASSWORD_USER, password: '${secret:SSH_PW}', host_key_sha256: sshd.fingerprint },
    },
    'profiles.json': {
      db: { type: 'postgres', url: `postgres://reader@${pg.host}:${pg.port}/app`, password: '${env:PG_PW}', mode: 'read_only' },
      api: {
        type: 'http',
        base_url: web.url,
        headers: {
          Authorization: 'Bearer ${secret:API_TOKEN}',
          'X-Api-Key': '${env:X_API_KEY}',
          'X-File-Token': `\${file:${join(outside, 'token')}}`,
        },
      },
    },
  });
  initRepo(project.root);
  const store = new SecretStore({ dir: project.infraDir, env: {} });
  store.set('SSH_PW', secrets.ssh_password);
  store.set('API_TOKEN', secrets.api_bearer);

  session = await startStdio({
    env: {
      MCP_PROFILES_DIR: project.infraDir,
      INFRA_LOG_LEVEL: 'debug',
      INFRA_UNSAFE_LOCAL: '1',
      PG_PW: secrets.pg_password,
      X_API_KEY: secrets.api_key,
    },
  });
  session.transport.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString('latin1');
  });
});

after(async () => {
  await session?.close();
  await web?.close();
  await sshd?.stop();
  pg?.stop();
  project?.cleanup();
  if (outside) rmSync(outside, { recursive: true, force: true });
});

/** Calls a tool and keeps the whole reply (content text and structuredContent). */

async function call(name: string, args: Record<string, unknown>): Promise<Record<string, any>> {
  const r = await session.client.callTool({ name, arguments: args }, undefined, { timeout: 120_000 });
  replies.push(JSON.stringify(r));

  return r.structuredContent as Record<string, any>;
}

function everyFile(dir: string): { path: string; bytes: string }[] {
  const out: { path: string; bytes: string }[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...everyFile(p));
    else if (e.isFile()) out.push({ path: p, bytes: readFileSync(p).toString('latin1') });
  }
  return out;
}

function leaks(haystack: string): string[] {
  const found: string[] = [];
  for (const [name, value] of Object.entries(secrets)) {
    for (const form of secretForms(value)) if (haystack.includes(form)) found.push(`${name} as ${JSON.stringify(form)}`);
  }
  return found;
}

void describe('a scripted session touching every tool leaks no secret anywhere', () => {
  void it('runs the session', async () => {
    const s = secrets;
    const b64 = (v: string): string => Buffer.from(v).toString('base64');

    assert.ok((await call('help', { query: 'ssh exec' })).ok);
    assert.ok((await call('state', { action: 'set', key: 'note', value: 'hello' })).ok);
    assert.ok((await call('state', { action: 'list' })).ok);

    // ssh: the command echoes secrets back (raw, base64, URL-encoded) and to stderr
    const echo = await call('ssh', {
      action: 'exec',
      target: 'pw',
      command: `echo '${s.ssh_password}'; echo '${b64(s.ssh_password)}'; echo '${encodeURIComponent(s.ssh_password)}'; echo '${s.api_bearer}' 1>&2; env`,
    });
    assert.ok(echo.ok, JSON.stringify(echo));
    assert.equal(echo.result.exit_code, 0);
    assert.match(echo.result.stdout, /\[REDACTED\]/);
    const job = await call('ssh', {
      action: 'exec',
      target: 'pw',
      command: `for i in 1 2 3; do echo '${s.pg_password}' $i; done`,
      async: true,
    });
    assert.ok(job.ok && job.result.job_id, JSON.stringify(job));
    assert.ok((await call('jobs', { action: 'wait', job_id: job.result.job_id, timeout_ms: 60000 })).ok);
    assert.ok((await call('jobs', { action: 'logs', job_id: job.result.job_id })).ok);
    assert.ok((await call('jobs', { action: 'list' })).ok);
    assert.ok((await call('ssh', { action: 'check', target: 'pw' })).ok);

    // psql: selects the secret, in a parameter and in the text; an error quoting it
    const sel = await call('psql', {
      action: 'query',
      profile: 'db',
      sql: `select $1::text as p, encode(convert_to($1::text, 'UTF8'), 'base64') as b, '${s.api_key}' as k`,
      params: [s.pg_password],
    });
    assert.ok(sel.ok, JSON.stringify(sel));
    assert.equal(sel.result.rows[0].p, '[REDACTED]');
    await call('psql', { action: 'query', profile: 'db', sql: `select * from "${s.pg_password}"` });
    await call('psql', { action: 'query', profile: 'db', sql: `select '${s.file_token}` });
    assert.ok((await call('psql', { action: 'schema', profile: 'db' })).ok);

    // http: the endpoint reflects every request header
    const reflected = await call('http', { action: 'request', profile: 'api', path: '/echo' });
    assert.ok(reflected.ok, JSON.stringify(reflected));
    assert.equal(web.requests.at(-1)!.headers.authorization, `Bearer ${s.api_bearer}`, 'the real value was sent');
    assert.ok((await call('http', { action: 'request', profile: 'api', path: '/leak' })).ok);
    assert.ok((await call('http', { action: 'check', profile: 'api', path: '/echo', expect_body_contains: 'x-api-key' })).ok);
    assert.ok((await call('http', { action: 'profiles' })).ok);
    await call('http', { action: 'request', url: `${web.url}/echo?token=${encodeURIComponent(s.api_key)}` });

    // local (INFRA_UNSAFE_LOCAL=1): print the environment secrets back
    assert.ok((await call('local', { action: 'exec', command: 'printenv', args: ['X_API_KEY'] })).ok);
    assert.ok((await call('local', { action: 'exec', command: 'echo "$PG_PW" | base64; cat ' + join(outside, 'token'), shell: true })).ok);

    // repo
    assert.ok((await call('repo', { action: 'status', repo_path: '.' })).ok);
    assert.ok((await call('repo', { action: 'log', repo_path: '.' })).ok);

    // preflight, secrets
    const pf = await call('preflight', {});
    assert.ok(pf.ok, JSON.stringify(pf));
    assert.equal(pf.result.summary.ok, 3, JSON.stringify(pf.result.items));
    assert.ok((await call('secrets', { action: 'list' })).ok);
    const get = await call('secrets', { action: 'get', name: 'SSH_PW' });
    assert.equal(get.ok, false);

    // artifacts and audit read back what was stored
    const art = await call('artifacts', { action: 'get', uri: `${echo.artifact}stdout`, max_bytes: 16384 });
    assert.ok(art.ok, JSON.stringify(art));
    assert.ok((await call('artifacts', { action: 'tail', uri: `${echo.artifact}stderr`, max_bytes: 4096 })).ok);
    assert.ok((await call('artifacts', { action: 'list' })).ok);
    assert.ok((await call('audit', { action: 'list', limit: 100 })).ok);
    assert.ok((await call('audit', { action: 'get', id: sel.call_id })).ok);
    assert.ok((await call('audit', { action: 'stats' })).ok);
    const v = await call('audit', { action: 'verify' });
    assert.ok(v.ok && v.result.ok, JSON.stringify(v));
    const res = await session.client.readResource({ uri: `${reflected.artifact}call.json` });
    replies.push(JSON.stringify(res));
    const body = await session.client.readResource({ uri: `${reflected.artifact}body` });
    replies.push(JSON.stringify(body));
  });

  void it('the scan finds what it looks for (control: the HTTP server did receive the real values)', () => {
    const seen = leaks(JSON.stringify(web.requests.map((r) => r.headers)));
    for (const name of ['api_bearer', 'api_key', 'file_token'])
      assert.ok(
        seen.some((l) => l.startsWith(name)),
        `${name} in ${seen.join(', ')}`,
      );
  });

  void it('no reply holds a secret in any form', () => {
    assert.ok(replies.length >= 30, `replies: ${replies.length}`);
    for (const r of replies) assert.deepEqual(leaks(r), [], r.slice(0, 2000));
  });

  void it('stderr holds no secret', async () => {
    await session.close();
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(stderr.length > 0, 'the server logged something at debug level');
    assert.deepEqual(leaks(stderr), []);
  });

  void it('no byte under the project directory holds a secret (infra.db and its WAL included)', () => {
    const files = everyFile(project.infraDir);
    assert.ok(files.some((f) => f.path.endsWith('infra.db')));
    assert.ok(files.filter((f) => f.path.includes('/artifacts/calls/')).length > 20);
    const found = files.flatMap((f) => leaks(f.bytes).map((l) => `${f.path}: ${l}`));
    assert.deepEqual(found, []);
  });
});
