/**
 * Every built-in runbook run against real services started here on 127.0.0.1: OpenSSH sshd,
 * PostgreSQL, a local HTTP server and a git repository. A missing prerequisite fails with the
 * fixture's message; nothing is skipped.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startHttpServer, type FixtureServer } from '../fixtures/http-server.js';
import { initRepo, writeAndCommit } from '../fixtures/git.js';
import { startPostgres, type PgCluster } from '../fixtures/postgres.js';
import { freePort, PASSWORD, PASSWORD_USER, startSshd, type Sshd } from '../fixtures/sshd.js';
import { fail, fakeSystemd, ok, runbookRig, type Json, type RunbookRig } from './helpers.js';

void describe('built-in runbooks against real services', () => {
  let sshd: Sshd;
  let pg: PgCluster;
  let web: FixtureServer;
  let fake: ReturnType<typeof fakeSystemd>;
  let rig: RunbookRig;
  let closedPort: number;
  let outDir: string;

  before(async () => {
    fake = fakeSystemd();
    sshd = await startSshd({ extraConfig: `SetEnv PATH=${fake.bin}:/usr/local/bin:/usr/bin:/bin` });
    pg = await startPostgres();
    web = await startHttpServer();
    closedPort = await freePort();
    outDir = mkdtempSync(join(tmpdir(), 'infra-rb-out-'));
    // the fixture's password user has /bin/sh as its shell: no login-shell rc files run per command
    const target = {
      host: sshd.host,
      port: sshd.port,
      username: PASSWORD_USER,
      password: '${env:RB_SSH_PASSWORD}',
      host_key_sha256: sshd.fingerprint,
    };
    rig = await runbookRig(
      {
        'targets.json': { box: target, down: { ...target, port: closedPort, connect_timeout_ms: 2000 } },
        'profiles.json': { app: { type: 'postgres', url: '${env:RB_PG_URL}', mode: 'read_only' } },
      },
      { INFRA_UNSAFE_LOCAL: '1', RB_PG_URL: pg.url('reader'), RB_SSH_PASSWORD: PASSWORD },
    );
    initRepo(rig.project.root);
    writeAndCommit(rig.project.root, 'src/app.txt', 'v1\n', 'add app');
    writeFileSync(join(rig.project.root, 'src', 'app.txt'), 'v2\n');
  });

  after(async () => {
    await rig?.close();
    await web?.close();
    pg?.stop();
    await sshd?.stop();
    fake?.cleanup();
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  const step = (r: { result: { steps: { id: string; result?: Json; status: string }[] } }, id: string): Json => {
    const s = r.result.steps.find((x) => x.id === id);
    assert.ok(s, `step ${id}`);
    assert.equal(s.status, 'ok', `step ${id} status`);
    return s.result!;
  };

  void it('repo.snapshot on "." (the seed example): branch, commits, diffstat', async () => {
    const r = ok(await rig.run('repo.snapshot', { repo_path: '.' }));
    const snap = step(r, 'snapshot');
    assert.equal(snap.branch, 'main');
    assert.equal((snap.commits as { subject: string }[])[0]!.subject, 'add app');
    assert.match(JSON.stringify(snap.diffstat), /src\/app\.txt/);
    assert.equal(rig.runDoc('repo.snapshot', r.call_id).status, 'ok');
  });

  void it('ssh.system_info: facts and the busiest processes', async () => {
    const r = ok(await rig.run('ssh.system_info', { target: 'box', top: 5 }));
    const info = step(r, 'info');
    assert.ok(info.hostname);
    assert.ok((info.cpus as number) >= 1);
    const ps = step(r, 'processes');
    assert.equal(ps.exit_code, 0);
    assert.match(ps.stdout as string, /PID/);
    assert.ok((ps.stdout as string).trim().split('\n').length <= 6);
  });

  void it('ssh.health: ok on a live target; an unreachable target fails the run at its check', async () => {
    const r = ok(await rig.run('ssh.health', { target: 'box' }));
    assert.equal(step(r, 'check').ok, true);
    assert.equal(step(r, 'failed_units').exit_code, 0);
    const e = fail(await rig.run('ssh.health', { target: 'down' }), 'UPSTREAM_ERROR');
    assert.match(e.error.message, /step check \(ssh\.check\) failed: assert/);
    const doc = rig.runDoc('ssh.health', e.call_id);
    assert.deepEqual(
      doc.steps.map((s) => `${s.id}:${s.status}`),
      ['check:failed', 'info:not_run', 'failed_units:not_run'],
    );
    assert.equal((doc.steps[0]!.result as { reachable: boolean }).reachable, false);
  });

  void it('http.check: a passing check, and a failing one that fails the run', async () => {
    const r = ok(await rig.run('http.check', { url: `${web.url}/text`, expect_body_contains: 'hello' }));
    assert.equal(step(r, 'check').passed, true);
    assert.equal((r.result.steps[0]!.args as Json).max_latency_ms, undefined, 'an optional input that was not given is left out');
    const e = fail(await rig.run('http.check', { url: `${web.url}/status/503` }), 'UPSTREAM_ERROR');
    assert.match(e.error.message, /step check \(http\.check\) failed/);
    const st = ok(await rig.run('http.check', { url: `${web.url}/status/404`, expect_status: 404 }));
    assert.equal(step(st, 'check').status, 404);
  });

  void it('pg.health: version, connections, size', async () => {
    const r = ok(await rig.run('pg.health', { profile: 'app' }));
    assert.match(((step(r, 'server').rows as Json[])[0]!.version as string) ?? '', /PostgreSQL/);
    assert.ok(((step(r, 'connections').rows as Json[])[0]!.connections as number) >= 1);
    assert.ok(Number((step(r, 'size').rows as Json[])[0]!.bytes) > 0);
    // profile is optional when only one postgres profile exists
    ok(await rig.run('pg.health'));
  });

  void it('db.export.table: to the artifact, and to a local file_path with the seed inputs', async () => {
    const r = ok(await rig.run('db.export.table', { table: 'items' }));
    const ex = step(r, 'export');
    assert.equal(ex.rows, 100);
    const file = join(outDir, 'items.csv');
    const seedInput = { profile_name: 'app', table: 'items', file_path: file };
    const f = ok(await rig.run('db.export.table', seedInput));
    assert.equal(step(f, 'export').rows, 100);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines.length, 101);
    assert.match(lines[0]!, /^id,name,price/);
  });

  void it('vps.service.restart on an ssh target: restart then status', async () => {
    writeFileSync(fake.log, '');
    const r = ok(await rig.run('vps.service.restart', { target: 'box', service: 'nginx' }));
    assert.equal(step(r, 'restart').exit_code, 0);
    assert.match(step(r, 'status').stdout as string, /nginx\.service - stand-in/);
    assert.equal(readFileSync(fake.log, 'utf8'), 'argc=2\narg=restart\narg=nginx\nargc=3\narg=status\narg=nginx\narg=--no-pager\n');
    const e = fail(await rig.run('vps.service.restart', { target: 'box', service: 'broken' }), 'UPSTREAM_ERROR');
    assert.match(e.error.message, /step restart \(ssh\.exec\) failed: assert/);
    assert.equal(rig.runDoc('vps.service.restart', e.call_id).steps[1]!.status, 'not_run');
  });

  void it('shell injection through an input: the service name reaches the remote as one argument and nothing else runs', async () => {
    for (const evil of [
      `nginx; touch ${fake.pwned}`,
      `nginx$(touch ${fake.pwned})`,
      `nginx\`touch ${fake.pwned}\``,
      `nginx' ; touch ${fake.pwned}; echo '`,
      `nginx\ntouch ${fake.pwned}`,
    ]) {
      writeFileSync(fake.log, '');
      const r = ok(await rig.run('vps.service.restart', { target: 'box', service: evil }));
      assert.equal(readFileSync(fake.log, 'utf8').split('\n')[0], 'argc=2', `one argument for ${JSON.stringify(evil)}`);
      assert.ok(readFileSync(fake.log, 'utf8').includes(`arg=restart\narg=${evil}\n`), JSON.stringify(readFileSync(fake.log, 'utf8')));
      assert.equal(existsSync(fake.pwned), false, `the remote ran the injected command for ${JSON.stringify(evil)}`);
      const args = r.result.steps[0]!.args as { command: string };
      assert.ok(args.command.startsWith("sudo -n systemctl restart '"), args.command);
    }
  });

  void it('smoke.target.baseline: ssh, Postgres and HTTP in one run, one child row each', async () => {
    const r = ok(await rig.run('smoke.target.baseline', { target: 'box', profile: 'app', url: `${web.url}/json` }));
    assert.equal(r.result.status, 'ok');
    assert.deepEqual(
      rig.children(r.call_id).map((k) => `${k.tool}.${k.action}:${k.status}`),
      ['ssh.check:ok', 'ssh.exec:ok', 'psql.query:ok', 'http.check:ok'],
    );
    const doc = rig.runDoc('smoke.target.baseline', r.call_id);
    assert.ok(doc.steps.every((s) => s.call_id && s.artifact === `artifact://calls/${s.call_id}/`));
    const bad = fail(await rig.run('smoke.target.baseline', { target: 'box', url: `${web.url}/status/500` }), 'UPSTREAM_ERROR');
    assert.equal((bad.error.details as { failed_step: string }).failed_step, 'http');
  });
});
