/**
 * Fault tests against the real services (issue 11): each fault makes the call fail with a clear
 * error, its audit row is still closed with the right status, and the next call succeeds once
 * the fault is gone. Last, infra itself is killed with SIGKILL during 50 concurrent calls.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Envelope } from '../../src/core/envelope.js';
import { createRuntime, type Runtime } from '../../src/exec/runtime.js';
import { NATIVE_TOOLS } from '../../src/toolsets/registry.js';
import { startHttpServer, type FixtureServer } from '../fixtures/http-server.js';
import { startPostgres, type PgCluster } from '../fixtures/postgres.js';
import { startSshd, type Sshd } from '../fixtures/sshd.js';
import { CLI, startStdio } from '../helpers/client.js';
import { makeProject, type TempProject } from '../helpers/project.js';
import {
  auditArtifacts,
  SSH_TARGET_ENV,
  sshTarget,
  auditCount,
  auditRows,
  clearError,
  cli,
  integrityCheck,
  sleep,
  until,
} from './helpers.js';

interface Rig {
  project: TempProject;
  rt: Runtime;
  call(tool: string, args: Record<string, unknown>): Promise<Envelope>;
  /** The audit row of a call: status and error code. */
  row(callId: string): { status: string; error_code: string | null };
  close(): Promise<void>;
}

async function rig(files: Record<string, unknown>, env: Record<string, string> = {}): Promise<Rig> {
  const project = makeProject(files);
  const rt = await createRuntime({
    projectDir: project.infraDir,
    env: { ...process.env, INFRA_LOG_LEVEL: 'error', ...env },
    tools: NATIVE_TOOLS,
  });
  return {
    project,
    rt,
    call: (tool, args) => rt.call(tool, args),
    row: (id) => {
      const r = rt.services.audit.get(id);
      assert.ok(r, `no audit row for ${id}`);
      return { status: r.status, error_code: r.error_code };
    },
    close: async () => {
      await rt.close();
      project.cleanup();
    },
  };
}

function okResult(e: Envelope, what: string): Record<string, unknown> {
  assert.equal(e.ok, true, `${what}: ${JSON.stringify(e).slice(0, 600)}`);
  return (e as { result: Record<string, unknown> }).result;
}

/** The failed call's audit row is closed with the status its error code implies. */
function assertAuditedFailure(r: Rig, e: Envelope, status: string, what: string): string {
  const { code } = clearError(e, what);
  const row = r.row(e.call_id);
  assert.equal(row.status, status, `${what}: audit status`);
  assert.equal(row.error_code, code, `${what}: audit error_code`);
  return code;
}

/** Visible (non-dot) files of a call's artifact directory. */
function visibleFiles(r: Rig, callId: string): string[] {
  const dir = join(r.rt.project.artifactsDir, 'calls', callId);
  return existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith('.')) : [];
}

/**
 * A failed call's artifact holds call.json; any stream file under its final name is listed
 * there with its size and sha256 and marked incomplete (output up to the fault), never passed
 * off as a finished stream.
 */
function assertNoHalfWrittenArtifact(r: Rig, callId: string): void {
  const files = visibleFiles(r, callId);
  assert.ok(files.includes('call.json'), `${callId}: the failed call has its call.json (${files.join(', ')})`);
  const call = JSON.parse(readFileSync(join(r.rt.project.artifactsDir, 'calls', callId, 'call.json'), 'utf8')) as {
    streams: { name: string; incomplete?: boolean }[];
    envelope: { ok: boolean };
  };
  assert.equal(call.envelope.ok, false);
  for (const f of files.filter((n) => !['call.json', 'request.json'].includes(n))) {
    const s = call.streams.find((x) => x.name === f);
    assert.ok(s, `${callId}/${f} is not listed in call.json: ${JSON.stringify(call.streams)}`);
    assert.equal(s.incomplete, true, `${callId}/${f} is marked incomplete`);
  }
  assert.deepEqual(auditArtifacts(r.rt.project.artifactsDir).problems, []);
}

describe('sshd killed in the middle of an exec', () => {
  let sshd: Sshd;
  let r: Rig;
  before(async () => {
    sshd = await startSshd();
    r = await rig({ 'targets.json': { prod: sshTarget(sshd, { connect_timeout_ms: 3000 }) } }, SSH_TARGET_ENV);
  });
  after(async () => {
    await r?.close();
    await sshd?.stop();
  });

  it(
    'the exec fails with a clear error, is audited as error, and the next exec works once sshd is back',
    { timeout: 120_000 },
    async () => {
      okResult(await r.call('ssh', { action: 'exec', target: 'prod', command: 'echo warm' }), 'warm-up');
      const pending = r.call('ssh', { action: 'exec', target: 'prod', command: 'echo started; sleep 60; echo never', timeout_ms: 90_000 });
      // kill only once the remote `sleep` itself runs under this sshd: the login shell's startup
      // files are done by then (a shell killed inside them can leave stale locks behind)
      const sleeping = (): boolean =>
        sshd.descendantPids().some((pid) => {
          try {
            return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep';
          } catch {
            return false;
          }
        });
      await until('the remote sleep to start', sleeping, 30_000);
      const t0 = Date.now();
      for (const pid of sshd.descendantPids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone already */
        }
      }
      await sshd.stop();
      const e = await pending;
      const code = assertAuditedFailure(r, e, 'error', 'exec under a killed sshd');
      assert.ok(['CONNECTION_FAILED', 'UPSTREAM_ERROR'].includes(code), `code ${code}: ${JSON.stringify(e)}`);
      assert.ok(Date.now() - t0 < 30_000, `the failure took ${Date.now() - t0} ms to surface`);
      assertNoHalfWrittenArtifact(r, e.call_id);

      const down = await r.call('ssh', { action: 'exec', target: 'prod', command: 'true' });
      assert.equal(assertAuditedFailure(r, down, 'error', 'exec while sshd is down'), 'CONNECTION_FAILED');

      await sshd.start();
      const back = okResult(await r.call('ssh', { action: 'exec', target: 'prod', command: 'echo back' }), 'exec after restart');
      assert.equal(back.stdout, 'back\n');
    },
  );
});

describe('Postgres restarted between and during queries', () => {
  let pg: PgCluster;
  let r: Rig;
  const pgCtl = (...args: string[]): void => {
    const res = spawnSync(
      'runuser',
      ['-u', 'postgres', '--', join(pg.binDir, 'pg_ctl'), '-D', join(pg.dir, 'data'), '-w', '-t', '60', ...args],
      {
        encoding: 'utf8',
        cwd: pg.dir,
      },
    );
    if (res.status !== 0) throw new Error(`pg_ctl ${args.join(' ')} failed: ${res.stderr || res.stdout}`);
  };
  const restart = (): void => pgCtl('-m', 'fast', '-l', join(pg.dir, 'server.log'), 'restart');
  const running = (marker: string): number =>
    Number(pg.psql(`SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%${marker}%' AND pid <> pg_backend_pid()`, 'postgres'));
  before(async () => {
    pg = await startPostgres();
    r = await rig(
      {
        'profiles.json': {
          ro: { type: 'postgres', url: '${env:RO_URL}', mode: 'read_only' },
          rw: { type: 'postgres', url: '${env:RW_URL}', mode: 'read_write' },
        },
        'policy.json': { confirm: { 'psql.execute': false } },
      },
      { RO_URL: pg.url('reader'), RW_URL: pg.url('writer') },
    );
  });
  after(async () => {
    await r?.close();
    pg?.stop();
  });

  it('restarted between queries: the next query succeeds on a fresh connection', { timeout: 120_000 }, async () => {
    okResult(await r.call('psql', { action: 'query', profile: 'ro', sql: 'select 1 as one' }), 'before');
    restart();
    // the pool's idle connections are dead now; the next call may notice, but never hangs
    let e = await r.call('psql', { action: 'query', profile: 'ro', sql: 'select 2 as two' });
    if (!e.ok) {
      assertAuditedFailure(r, e, 'error', 'first query after a restart');
      e = await r.call('psql', { action: 'query', profile: 'ro', sql: 'select 2 as two' });
    }
    assert.deepEqual(okResult(e, 'after restart').rows, [{ two: 2 }]);
    assert.equal(r.row(e.call_id).status, 'ok');
  });

  it(
    'restarted during a read query: the read is retried once on a fresh connection (it changed nothing) and answers',
    { timeout: 120_000 },
    async () => {
      okResult(await r.call('psql', { action: 'query', profile: 'ro', sql: 'select 1' }), 'warm');
      const pending = r.call('psql', {
        action: 'query',
        profile: 'ro',
        sql: "select 'fault-marker-r' as m, 1 as slept from pg_sleep(3)",
        timeout_ms: 90_000,
      });
      await until('the sleeping query to reach the server', () => running('fault-marker-r') > 0, 20_000);
      restart();
      const e = await pending;
      assert.deepEqual(okResult(e, 'read retried after the restart').rows, [{ m: 'fault-marker-r', slept: 1 }]);
      assert.equal(r.row(e.call_id).status, 'ok');
    },
  );

  it(
    'restarted during a write: it fails with CONNECTION_FAILED (never retried), audited as error; the next one works',
    { timeout: 120_000 },
    async () => {
      okResult(await r.call('psql', { action: 'execute', profile: 'rw', sql: 'select 1' }), 'warm');
      const pending = r.call('psql', {
        action: 'execute',
        profile: 'rw',
        sql: "INSERT INTO victims SELECT 1000, 'fault-marker-w' FROM pg_sleep(60)",
        timeout_ms: 90_000,
      });
      await until('the sleeping write to reach the server', () => running('fault-marker-w') > 0, 20_000);
      const t0 = Date.now();
      restart();
      const e = await pending;
      const code = assertAuditedFailure(r, e, 'error', 'write under a restart');
      assert.ok(['CONNECTION_FAILED', 'UPSTREAM_ERROR'].includes(code), `code ${code}: ${JSON.stringify(e)}`);
      assert.ok(Date.now() - t0 < 60_000);
      assert.equal(pg.psql(`SELECT count(*) FROM victims WHERE id = 1000`), '0', 'the interrupted write left nothing');
      okResult(await r.call('psql', { action: 'execute', profile: 'rw', sql: "INSERT INTO victims VALUES (1001, 'after')" }), 'next write');
      const next = okResult(await r.call('psql', { action: 'query', profile: 'ro', sql: 'select 3 as three' }), 'next query');
      assert.deepEqual(next.rows, [{ three: 3 }]);
    },
  );

  it('stopped: CONNECTION_FAILED, audited; started again: works', { timeout: 120_000 }, async () => {
    pgCtl('-m', 'fast', 'stop');
    try {
      const e = await r.call('psql', { action: 'query', profile: 'ro', sql: 'select 1' });
      assert.equal(assertAuditedFailure(r, e, 'error', 'query while Postgres is down'), 'CONNECTION_FAILED');
    } finally {
      pgCtl('-l', join(pg.dir, 'server.log'), '-o', `-p ${pg.port}`, 'start');
    }
    okResult(await r.call('psql', { action: 'query', profile: 'ro', sql: 'select 4' }), 'after start');
  });
});

/** An HTTP origin whose behaviour the test switches: normal, connection reset, endless body. */
async function faultyOrigin(): Promise<{
  url: string;
  mode: 'ok' | 'reset' | 'reset-mid-body' | 'endless';
  endlessBytes: () => number;
  openSockets: () => number;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  let endless = 0;
  const state = {
    mode: 'ok' as 'ok' | 'reset' | 'reset-mid-body' | 'endless',
  };
  const chunk = Buffer.alloc(64 * 1024, 'x');
  const server: Server = createHttpServer((req, res) => {
    const sock = req.socket;
    if (state.mode === 'reset') return void sock.resetAndDestroy();
    if (state.mode === 'reset-mid-body') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(10 * chunk.length) });
      res.write(chunk);
      setTimeout(() => sock.resetAndDestroy(), 50);
      return;
    }
    if (state.mode === 'endless') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const pump = (): void => {
        while (!res.destroyed) {
          endless += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      res.on('close', () => undefined);
      return pump();
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('fine\n');
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get mode() {
      return state.mode;
    },
    set mode(m) {
      state.mode = m;
    },
    endlessBytes: () => endless,
    openSockets: () => sockets.size,
    close: () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy();
        server.close(() => res());
      }),
  };
}

describe('HTTP servers that reset connections or send an endless body', () => {
  let origin: Awaited<ReturnType<typeof faultyOrigin>>;
  let r: Rig;
  before(async () => {
    origin = await faultyOrigin();
    r = await rig({});
  });
  after(async () => {
    await r?.close();
    await origin?.close();
  });

  for (const mode of ['reset', 'reset-mid-body'] as const) {
    it(
      `${mode}: CONNECTION_FAILED or UPSTREAM_ERROR, audited, no body presented as complete; then works`,
      { timeout: 60_000 },
      async () => {
        origin.mode = mode;
        const e = await r.call('http', { action: 'request', url: `${origin.url}/x`, timeout_ms: 20_000 });
        const code = assertAuditedFailure(r, e, 'error', mode);
        assert.ok(['CONNECTION_FAILED', 'UPSTREAM_ERROR'].includes(code), `${mode}: ${JSON.stringify(e)}`);
        assertNoHalfWrittenArtifact(r, e.call_id);
        origin.mode = 'ok';
        assert.equal(okResult(await r.call('http', { action: 'request', url: `${origin.url}/x` }), 'after').body, 'fine\n');
      },
    );
  }

  it('endless body: TIMEOUT at timeout_ms, audited as timeout, the connection is closed; then works', { timeout: 60_000 }, async () => {
    origin.mode = 'endless';
    const t0 = Date.now();
    const e = await r.call('http', { action: 'request', url: `${origin.url}/forever`, timeout_ms: 2000 });
    assert.equal(assertAuditedFailure(r, e, 'timeout', 'endless body'), 'TIMEOUT');
    assert.ok(Date.now() - t0 < 20_000, `answered after ${Date.now() - t0} ms`);
    assert.ok(origin.endlessBytes() > 0, 'the origin did stream');
    assertNoHalfWrittenArtifact(r, e.call_id);
    const before = origin.endlessBytes();
    await sleep(500);
    assert.ok(origin.endlessBytes() - before <= 4 * 1024 * 1024, 'the origin stopped streaming: the connection was closed');
    origin.mode = 'ok';
    okResult(await r.call('http', { action: 'request', url: `${origin.url}/x` }), 'after');
  });

  it(
    'endless body under a small artifact cap: the body is cut at the cap, stored and hashed, and the call answers',
    { timeout: 60_000 },
    async () => {
      const small = await rig({ 'policy.json': { limits: { artifact_max_bytes: 1024 * 1024 } } });
      try {
        origin.mode = 'endless';
        const e = await small.call('http', { action: 'request', url: `${origin.url}/forever`, timeout_ms: 20_000 });
        okResult(e, 'capped endless body');
        assert.equal(small.row(e.call_id).status, 'ok');
        const a = auditArtifacts(small.rt.project.artifactsDir);
        assert.deepEqual(a.problems, []);
        assert.ok(a.checkedFiles >= 1);
        const call = JSON.parse(readFileSync(join(small.rt.project.artifactsDir, 'calls', e.call_id, 'call.json'), 'utf8')) as {
          streams: { name: string; stored_bytes: number }[];
        };
        const body = call.streams.find((x) => x.name === 'body');
        assert.equal(body?.stored_bytes, 1024 * 1024);
      } finally {
        origin.mode = 'ok';
        await small.close();
      }
    },
  );
});

function mountTmpfs(dir: string, size: string): void {
  if (process.getuid?.() !== 0) throw new Error('the out-of-space test needs root to mount a small tmpfs (mount -t tmpfs -o size=2m)');
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (m.status !== 0) throw new Error(`mount -t tmpfs -o size=${size} failed (not permitted here?): ${m.stderr}`);
}

/** Unmounts (retrying while the last file handles close, then lazily) and removes the mount point. */
function unmount(dir: string): void {
  for (let i = 0; i < 20; i++) {
    if (spawnSync('umount', [dir]).status === 0) return void rmSync(dir, { recursive: true, force: true });
    spawnSync('sleep', ['0.1']);
  }
  const lazy = spawnSync('umount', ['-l', dir], { encoding: 'utf8' });
  if (lazy.status !== 0) throw new Error(`could not unmount the test tmpfs at ${dir}: ${lazy.stderr}`);
  rmSync(dir, { recursive: true, force: true });
}

describe('artifacts directory out of space (a 2 MiB tmpfs)', () => {
  let mnt: string;
  let srv: FixtureServer;
  let r: Rig;
  before(async () => {
    mnt = mkdtempSync(join(tmpdir(), 'infra-enospc-'));
    mountTmpfs(mnt, '2m');
    srv = await startHttpServer();
    r = await rig({}, { MCP_CONTEXT_REPO_ROOT: mnt });
  });
  after(async () => {
    await r?.close();
    await srv?.close();
    if (mnt) unmount(mnt);
  });

  it(
    'a body bigger than the disk: LIMIT_EXCEEDED, audited, no partial file left under a final name; next call ok',
    { timeout: 60_000 },
    async () => {
      const e = await r.call('http', { action: 'request', url: `${srv.url}/big?bytes=${8 * 1024 * 1024}` });
      assert.equal(assertAuditedFailure(r, e, 'error', 'body larger than the disk'), 'LIMIT_EXCEEDED');
      assert.match((e as { error: { hint?: string } }).error.hint ?? '', /space/);
      assertNoHalfWrittenArtifact(r, e.call_id);
      const a = auditArtifacts(mnt);
      assert.deepEqual(a.problems, []);
      okResult(await r.call('state', { action: 'set', key: 'after-enospc', value: 1 }), 'small call after the big one');
    },
  );

  it('a full disk: even a small call fails with LIMIT_EXCEEDED and is audited; free space, and it works', { timeout: 60_000 }, async () => {
    const filler = join(mnt, 'filler');
    spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k', 'count=64'], { encoding: 'utf8' });
    // top up byte-wise in case block rounding left a little room
    try {
      writeFileSync(join(mnt, 'filler2'), Buffer.alloc(256 * 1024));
    } catch {
      /* full: what we want */
    }
    const e = await r.call('state', { action: 'get', key: 'after-enospc' });
    assert.equal(assertAuditedFailure(r, e, 'error', 'call on a full disk'), 'LIMIT_EXCEEDED');
    const refused = await r.call('state', { action: 'nope' });
    assert.equal(clearError(refused, 'refusal on a full disk').code, 'INVALID_ARGUMENT');
    assert.equal(r.row(refused.call_id).status, 'invalid');
    rmSync(filler, { force: true });
    rmSync(join(mnt, 'filler2'), { force: true });
    const ok = okResult(await r.call('state', { action: 'get', key: 'after-enospc' }), 'after freeing space');
    assert.equal(ok.value, 1);
    assert.deepEqual(auditArtifacts(mnt).problems, []);
  });
});

describe('infra killed with SIGKILL during 50 concurrent calls', () => {
  let srv: FixtureServer;
  before(async () => {
    srv = await startHttpServer();
  });
  after(async () => {
    await srv?.close();
  });

  it(
    'restart: integrity_check ok, audit verify passes, every call has a row (ok or interrupted), no half-written artifact',
    { timeout: 240_000 },
    async () => {
      const p = makeProject();
      const dbPath = join(p.infraDir, 'infra.db');
      const env = { MCP_PROFILES_DIR: p.infraDir, INFRA_UNSAFE_LOCAL: '1' };
      try {
        const s1 = await startStdio({ env });
        const calls: { name: string; args: Record<string, unknown> }[] = [];
        for (let i = 0; i < 50; i++) {
          switch (i % 5) {
            case 0:
              calls.push({ name: 'state', args: { action: 'set', key: `k${i}`, value: { i, pad: 'x'.repeat(2000) } } });
              break;
            case 1: // a big body, streaming to its artifact when the kill comes (or done by then)
              calls.push({
                name: 'http',
                args: { action: 'request', url: `${srv.url}/big?bytes=${(64 + i) * 1024 * 1024}`, timeout_ms: 200_000 },
              });
              break;
            case 2: // headers, then a body that never ends
              calls.push({ name: 'http', args: { action: 'request', url: `${srv.url}/stall`, timeout_ms: 200_000 } });
              break;
            case 3: // output that keeps coming
              calls.push({
                name: 'local',
                args: { action: 'exec', command: `yes line-${i} | head -c 400000000`, shell: true, timeout_ms: 200_000 },
              });
              break;
            default:
              calls.push({ name: 'http', args: { action: 'request', url: `${srv.url}/json` } });
          }
        }
        const answered: string[] = [];
        const pending = calls.map((c) =>
          s1.client
            .callTool({ name: c.name, arguments: c.args }, undefined, { timeout: 220_000 })
            .then((res) => {
              const sc = res.structuredContent as { ok: boolean; call_id: string };
              if (sc.ok) answered.push(sc.call_id);
            })
            .catch(() => undefined),
        );
        // every call has reached the pipeline (its row exists) and the streams are writing
        await until('50 audit rows', () => existsSync(dbPath) && auditCount(dbPath) >= 50, 60_000);
        // the quick calls (state, small http) have answered; the long ones are streaming
        await until('the quick calls to answer', () => answered.length >= 15, 60_000);
        await sleep(300);
        process.kill(s1.pid, 'SIGKILL');
        await Promise.all(pending);
        await s1.close();

        const s2 = await startStdio({ env: { MCP_PROFILES_DIR: p.infraDir } });
        try {
          await s2.client.listTools(); // the runtime (and its recovery) is up
          await until('recovery at start', () => auditRows(dbPath).every((row) => row.status !== 'running'), 30_000);
          assert.equal(integrityCheck(dbPath), 'ok');
          const rows = auditRows(dbPath);
          assert.equal(rows.length, 50, 'one row per call');
          const statuses = new Map<string, number>();
          for (const row of rows) statuses.set(row.status, (statuses.get(row.status) ?? 0) + 1);
          for (const row of rows)
            assert.ok(['ok', 'interrupted'].includes(row.status), `${row.tool}.${row.action}: ${row.status} (${row.error_code})`);
          assert.ok((statuses.get('interrupted') ?? 0) > 0, `some calls were in flight: ${JSON.stringify([...statuses])}`);
          for (const id of answered) assert.equal(rows.find((row) => row.id === id)?.status, 'ok', `answered call ${id} is ok`);

          const verify = await s2.call('audit', { action: 'verify' });
          assert.equal((verify.result as { ok: boolean; rows: number }).ok, true, JSON.stringify(verify));
          assert.equal((verify.result as { rows: number }).rows, 50);
          const v = cli(CLI, ['audit', 'verify'], { MCP_PROFILES_DIR: p.infraDir });
          assert.equal(v.status, 0, v.stdout + v.stderr);

          const art = auditArtifacts(join(p.infraDir, 'artifacts'));
          assert.deepEqual(art.problems, []);
          assert.ok(art.checkedFiles > 0, 'completed calls with streams were checked');
          const interrupted = rows.filter((row) => row.status === 'interrupted');
          // an interrupted call has nothing under a final stream name (only .partial temp files),
          // and the artifacts tool does not list its temp files
          for (const row of interrupted) {
            // killed before it made its directory, or holding only what it had written so far
            const dir = join(p.infraDir, 'artifacts', 'calls', row.id);
            const files = existsSync(dir) ? readdirSync(dir).filter((n) => !n.startsWith('.')) : [];
            assert.ok(
              !files.some((f) => ['stdout', 'stderr', 'body'].includes(f)) || files.includes('call.json'),
              `${row.id}: ${files.join(', ')}`,
            );
            const listed = await s2.call('artifacts', { action: 'list', uri: `artifact://calls/${row.id}/` });
            const names = JSON.stringify(listed);
            assert.ok(!names.includes('.partial'), `the artifacts tool lists a temp file: ${names.slice(0, 300)}`);
          }
          process.stdout.write(
            `# SIGKILL during 50 calls: ${JSON.stringify(Object.fromEntries(statuses))}, ${art.checkedFiles} stream files verified, ${art.partials.length} .partial temp files\n`,
          );
        } finally {
          await s2.close();
        }
      } finally {
        p.cleanup();
      }
    },
  );
});
