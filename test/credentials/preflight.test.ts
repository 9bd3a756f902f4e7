/**
 * preflight against real services: each status (ok, missing_credentials, disabled, failed with
 * unreachable / auth / host_key / tls / timeout / privileges), probes audited as child calls.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { createRuntime, type Runtime } from '../../src/exec/runtime.js';
import { SecretStore } from '../../src/secrets/store.js';
import type { PreflightItem, PreflightResult } from '../../src/toolsets/preflight/index.js';
import { startSshd, freePort, PASSWORD, PASSWORD_USER, type Sshd } from '../fixtures/sshd.js';
import { startPostgres, type PgCluster } from '../fixtures/postgres.js';
import { makeTlsFixture, startHttpServer, startHttpsServer, type FixtureServer, type TlsFixture } from '../fixtures/http-server.js';
import { makeProject, type TempProject } from '../helpers/project.js';

const WRONG_PIN = 'SHA256:' + 'A'.repeat(43);

let sshd: Sshd;
let pg: PgCluster;
let web: FixtureServer;
let tls: TlsFixture;
let webs: FixtureServer;
let silent: Server;
let silentPort: number;
let closedPort: number;
const projects: TempProject[] = [];
const runtimes: Runtime[] = [];

before(async () => {
  [sshd, pg, web] = await Promise.all([startSshd(), startPostgres({ tables: false }), startHttpServer()]);
  tls = makeTlsFixture();
  webs = await startHttpsServer(tls);
  // accepts TCP and never says a word: an SSH handshake that times out
  silent = createServer((s) => s.on('error', () => undefined));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  silentPort = (silent.address() as { port: number }).port;
  closedPort = await freePort();
});

after(async () => {
  for (const rt of runtimes) await rt.close();
  for (const p of projects) p.cleanup();
  await web?.close();
  await webs?.close();
  tls?.cleanup();
  silent?.close();
  await sshd?.stop();
  pg?.stop();
});

function pgUrl(role: 'reader' | 'postgres'): string {
  return `postgres://${role}@${pg.host}:${pg.port}/app`;
}

async function rig(
  files: Record<string, unknown>,
  env: Record<string, string> = {},
  secrets: Record<string, string> = {},
): Promise<Runtime> {
  const project = makeProject(files);
  projects.push(project);
  const store = new SecretStore({ dir: project.infraDir, env: {} });
  for (const [k, v] of Object.entries(secrets)) store.set(k, v);
  const rt = await createRuntime({
    projectDir: project.infraDir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, INFRA_LOG_LEVEL: 'error', ...env },
  });
  runtimes.push(rt);
  return rt;
}

async function preflight(rt: Runtime, args: Record<string, unknown> = {}): Promise<{ result: PreflightResult; callId: string }> {
  // generous bounds: probes must not fail because the shared machine is busy
  const env = await rt.call('preflight', { timeout_ms: 300_000, probe_timeout_ms: 120_000, ...args });
  assert.ok(env.ok, `preflight failed: ${JSON.stringify(env)}`);
  return { result: env.result as PreflightResult, callId: env.call_id };
}

function item(r: PreflightResult, kind: string, name: string): PreflightItem {
  const it = r.items.find((i) => i.kind === kind && i.name === name);
  assert.ok(it, `no item ${kind} ${name} in ${JSON.stringify(r.items.map((i) => `${i.kind} ${i.name}`))}`);
  return it;
}

void describe('preflight statuses against real sshd, PostgreSQL and HTTP servers', () => {
  let result: PreflightResult;
  let rt: Runtime;
  let callId: string;

  before(async () => {
    const key = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
      host: sshd.host,
      port: sshd.port,
      // the fixture's password user: its /bin/sh reads no rc files (root's ~/.bashrc on a
      // shared machine can stall a command for a minute)
      username: PASSWORD_USER,
      password: '${secret:SSH_PW}',
      host_key_sha256: sshd.fingerprint,
      // generous: the machine is shared with other test runs (only ssh-silent tests the bound)
      connect_timeout_ms: 30_000,
      ...extra,
    });
    rt = await rig(
      {
        'targets.json': {
          'ssh-ok': key(),
          'ssh-missing': key({ password: '${secret:SSH_NOT_STORED}' }),
          'ssh-blocked': key(),
          'ssh-auth': key({ username: sshd.user, password: undefined, key_file: sshd.keys.wrongKey }),
          'ssh-hostkey': key({ host_key_sha256: WRONG_PIN }),
          'ssh-down': key({ port: closedPort }),
          'ssh-silent': key({ port: silentPort, connect_timeout_ms: 1000 }),
          'ssh-via-missing-jump': key({ jump: 'ssh-missing' }),
        },
        'profiles.json': {
          'pg-ok': { type: 'postgres', url: pgUrl('reader'), password: '${env:PG_READER_PW}', mode: 'read_only' },
          'pg-missing': { type: 'postgres', url: pgUrl('reader'), password: '${env:PG_UNSET_PW}', mode: 'read_only' },
          'pg-auth': { type: 'postgres', url: pgUrl('reader'), password: '${env:PG_WRONG_PW}', mode: 'read_only' },
          'pg-su-allowed': {
            type: 'postgres',
            url: pgUrl('postgres'),
            password: '${secret:PG_SU_PW}',
            mode: 'read_only',
            allow_superuser: true,
          },
          'pg-su-refused': { type: 'postgres', url: pgUrl('postgres'), password: '${secret:PG_SU_PW}', mode: 'read_only' },
          'pg-blocked': { type: 'postgres', url: pgUrl('reader'), password: '${env:PG_READER_PW}', mode: 'read_only' },
          'pg-down': { type: 'postgres', url: `postgres://reader@127.0.0.1:${closedPort}/app`, password: '${env:PG_READER_PW}' },
          'http-ok': { type: 'http', base_url: `${web.url}/json`, headers: { Authorization: 'Bearer ${secret:API_TOKEN}' } },
          'http-missing': { type: 'http', base_url: web.url, headers: { 'X-Api-Key': '${file:/nonexistent/infra-test/api-key}' } },
          'http-auth': { type: 'http', base_url: `${web.url}/status/401`, headers: { Authorization: 'Bearer ${secret:API_TOKEN}' } },
          'http-tls': { type: 'http', base_url: webs.url },
          'http-down': { type: 'http', base_url: `http://127.0.0.1:${closedPort}` },
        },
        'policy.json': {
          ssh: { allow_targets: ['ssh-ok', 'ssh-missing', 'ssh-auth', 'ssh-hostkey', 'ssh-down', 'ssh-silent', 'ssh-via-missing-jump'] },
          psql: { allow_profiles: ['pg-ok', 'pg-missing', 'pg-auth', 'pg-su-*', 'pg-down'] },
        },
      },
      { PG_READER_PW: pg.passwords.reader, PG_WRONG_PW: 'not-the-password' },
      { API_TOKEN: 'tok-preflight-0123456789', PG_SU_PW: pg.passwords.postgres, SSH_PW: PASSWORD },
    );
    ({ result, callId } = await preflight(rt));
  });

  void it('reports ok with latency for working ssh, postgres and http entries', () => {
    for (const [kind, name] of [
      ['ssh', 'ssh-ok'],
      ['postgres', 'pg-ok'],
      ['http', 'http-ok'],
    ] as const) {
      const it = item(result, kind, name);
      assert.equal(it.status, 'ok', JSON.stringify(it));
      assert.equal(typeof it.latency_ms, 'number', `${name} latency`);
    }
  });

  void it('names the missing reference (secret store, env, file, and through a jump host)', () => {
    const cases: [string, string, string][] = [
      ['ssh', 'ssh-missing', 'secret:SSH_NOT_STORED'],
      ['ssh', 'ssh-via-missing-jump', 'secret:SSH_NOT_STORED'],
      ['postgres', 'pg-missing', 'env:PG_UNSET_PW'],
      ['http', 'http-missing', 'file:/nonexistent/infra-test/api-key'],
    ];
    for (const [kind, name, ref] of cases) {
      const it = item(result, kind, name);
      assert.equal(it.status, 'missing_credentials', JSON.stringify(it));
      assert.deepEqual(it.missing, [ref]);
      assert.ok(it.hint && it.hint.length > 0, `${name} has a hint`);
    }
    assert.match(item(result, 'ssh', 'ssh-missing').hint!, /infra secrets set SSH_NOT_STORED/);
  });

  void it('names the policy that disables an entry', () => {
    const ssh = item(result, 'ssh', 'ssh-blocked');
    assert.equal(ssh.status, 'disabled');
    assert.equal(ssh.policy, 'ssh.allow_targets');
    const psql = item(result, 'postgres', 'pg-blocked');
    assert.equal(psql.status, 'disabled');
    assert.equal(psql.policy, 'psql.allow_profiles');
  });

  void it('gives a clear reason for each failure', () => {
    const expect: [string, string, string][] = [
      ['ssh', 'ssh-auth', 'auth'],
      ['ssh', 'ssh-hostkey', 'host_key'],
      ['ssh', 'ssh-down', 'unreachable'],
      ['ssh', 'ssh-silent', 'timeout'],
      ['postgres', 'pg-auth', 'auth'],
      ['postgres', 'pg-down', 'unreachable'],
      ['postgres', 'pg-su-refused', 'privileges'],
      ['http', 'http-auth', 'auth'],
      ['http', 'http-tls', 'tls'],
      ['http', 'http-down', 'unreachable'],
    ];
    for (const [kind, name, reason] of expect) {
      const it = item(result, kind, name);
      assert.equal(it.status, 'failed', `${name}: ${JSON.stringify(it)}`);
      assert.equal(it.reason, reason, `${name}: ${JSON.stringify(it)}`);
      assert.ok(it.message.length > 0);
    }
  });

  void it('flags a read_only postgres profile with allow_superuser: true', () => {
    const it = item(result, 'postgres', 'pg-su-allowed');
    assert.equal(it.status, 'ok', JSON.stringify(it));
    assert.ok(
      it.warnings?.some((w) => w.includes('allow_superuser')),
      JSON.stringify(it),
    );
    assert.equal(item(result, 'postgres', 'pg-ok').warnings, undefined);
  });

  void it('summarizes and audits every probe as a child of the preflight call', () => {
    const s = result.summary;
    assert.equal(s.total, result.items.length);
    assert.equal(s.ok + s.missing_credentials + s.disabled + s.failed, s.total);
    const probed = result.items.filter((i) => i.probe_call_id);
    assert.ok(probed.length >= 12, `probes: ${probed.length}`);
    for (const it of probed) {
      const row = rt.services.audit.get(it.probe_call_id!);
      assert.ok(row, `audit row of ${it.name}`);
      assert.equal(row.parent_id, callId);
    }
    // nothing probed for a missing credential or a disabled entry
    for (const it of result.items.filter((i) => i.status === 'disabled' || (i.status === 'missing_credentials' && i.missing?.length))) {
      assert.equal(it.probe_call_id, undefined, it.name);
    }
  });

  void it('probe: false reports configuration only, without connecting', async () => {
    const before = rt.services.audit.count();
    const { result: r } = await preflight(rt, { probe: false, kinds: ['ssh'] });
    assert.ok(r.items.every((i) => i.kind === 'ssh'));
    assert.equal(item(r, 'ssh', 'ssh-down').status, 'ok');
    assert.equal(item(r, 'ssh', 'ssh-missing').status, 'missing_credentials');
    assert.equal(rt.services.audit.count(), before + 1);
  });
});

void describe('preflight and whole-tool policy', () => {
  void it('tools.ssh.enabled false disables every target and names the key', async () => {
    const rt = await rig({
      'targets.json': { a: { host: '127.0.0.1', port: 22, username: 'x', password: '${env:NOPE}' } },
      'profiles.json': { db: { type: 'postgres', url: 'postgres://x@127.0.0.1:1/app' } },
      'policy.json': { tools: { ssh: { enabled: false }, psql: { actions: { query: false } } } },
    });
    const { result } = await preflight(rt);
    const a = item(result, 'ssh', 'a');
    assert.equal(a.status, 'disabled');
    assert.equal(a.policy, 'tools.ssh.enabled');
    const db = item(result, 'postgres', 'db');
    assert.equal(db.status, 'disabled');
    assert.equal(db.policy, 'tools.psql.actions.query');
  });

  void it('INFRA_READ_ONLY=1 does not disable reads: targets are still probed', async () => {
    const rt = await rig(
      {
        'targets.json': {
          ok: {
            host: sshd.host,
            port: sshd.port,
            username: PASSWORD_USER,
            password: '${secret:SSH_PW}',
            host_key_sha256: sshd.fingerprint,
            connect_timeout_ms: 30_000,
          },
        },
      },
      { INFRA_READ_ONLY: '1' },
      { SSH_PW: PASSWORD },
    );
    const { result } = await preflight(rt);
    assert.equal(item(result, 'ssh', 'ok').status, 'ok');
  });

  void it('preflight is callable without an action (single-action tool)', async () => {
    const rt = await rig({});
    const env = await rt.call('preflight', {});
    assert.ok(env.ok);
    assert.equal(env.action, 'run');
    assert.deepEqual((env.result as PreflightResult).summary, { total: 0, ok: 0, missing_credentials: 0, disabled: 0, failed: 0 });
  });
});
