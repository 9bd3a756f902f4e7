/**
 * The seed documents' runbook examples, unchanged, through a third-party MCP client (the SDK
 * Client over stdio against dist/cli.js, built by `npm test`), against a real sshd and Postgres.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, startStdio, type StdioSession } from '../helpers/client.js';
import { makeProject, type TempProject } from '../helpers/project.js';
import { initRepo } from '../fixtures/git.js';
import { startPostgres, type PgCluster } from '../fixtures/postgres.js';
import { PASSWORD, PASSWORD_USER, startSshd, type Sshd } from '../fixtures/sshd.js';
import { fakeSystemd, type Json } from './helpers.js';

// the seed document's examples, as written there
const SEED_HELLO = {
  'hello.world': {
    description: 'A simple test runbook.',
    tags: ['test'],
    inputs: ['message'],
    steps: [{ id: 'echo', tool: 'mcp_state', args: { action: 'set', key: 'hello', value: '{{ input.message }}' } }],
  },
};
const SEED_K8S_DIFF = {
  action: 'upsert',
  name: 'gitops.k8s.diff',
  runbook: {
    description: 'Render kustomize overlay and diff against the cluster.',
    tags: ['gitops', 'k8s', 'read'],
    inputs: ['overlay', 'kubeconfig'],
    steps: [
      {
        id: 'render',
        tool: 'mcp_local',
        args: {
          action: 'exec',
          command: 'kubectl',
          args: ['kustomize', '{{ input.overlay }}'],
          env: { KUBECONFIG: '{{ input.kubeconfig }}' },
          inline: true,
        },
      },
      {
        id: 'diff',
        tool: 'mcp_local',
        args: {
          action: 'exec',
          command: 'kubectl',
          args: ['diff', '-f', '-'],
          stdin: '{{ steps.render.stdout }}',
          env: { KUBECONFIG: '{{ input.kubeconfig }}' },
          inline: true,
        },
      },
    ],
  },
};
const SEED_VPS = {
  action: 'upsert',
  name: 'vps.service.restart',
  runbook: {
    description: 'Restart a systemd service and check status.',
    tags: ['vps', 'ssh', 'write'],
    inputs: ['target', 'service'],
    steps: [
      {
        id: 'restart',
        tool: 'ssh',
        args: { action: 'exec', target: '{{ input.target }}', command: 'sudo systemctl restart {{ input.service }}' },
      },
      {
        id: 'status',
        tool: 'ssh',
        args: { action: 'exec', target: '{{ input.target }}', command: 'systemctl status {{ input.service }} --no-pager' },
      },
    ],
  },
};
const SEED_EXPORT = {
  action: 'upsert',
  name: 'db.export.table',
  runbook: {
    description: 'Export a table to CSV on the Infra host.',
    tags: ['db', 'backup', 'read'],
    inputs: ['profile_name', 'table', 'file_path'],
    steps: [
      {
        id: 'export',
        tool: 'psql',
        args: {
          action: 'export',
          profile_name: '{{ input.profile_name }}',
          table: '{{ input.table }}',
          file_path: '{{ input.file_path }}',
          format: 'csv',
          csv_header: true,
        },
      },
    ],
  },
};

type Reply = Json & { ok: boolean; result?: Json & { steps?: (Json & { id: string; status: string; result?: Json })[] }; error?: Json };

function okr(r: Reply): Reply & { result: NonNullable<Reply['result']> } {
  assert.equal(r.ok, true, JSON.stringify(r.error ?? r).slice(0, 1500));
  return r as Reply & { result: NonNullable<Reply['result']> };
}

void describe('seed runbook examples through the SDK client over stdio', () => {
  let sshd: Sshd;
  let pg: PgCluster;
  let p: TempProject;
  let s: StdioSession;
  let fake: ReturnType<typeof fakeSystemd>;
  let kube: string;
  let out: string;

  before(async () => {
    assert.ok(existsSync(CLI), `${CLI} is missing: build it first (npm test builds it; or node tools/build.mjs)`);
    fake = fakeSystemd();
    sshd = await startSshd({ extraConfig: `SetEnv PATH=${fake.bin}:/usr/local/bin:/usr/bin:/bin` });
    pg = await startPostgres();
    out = mkdtempSync(join(tmpdir(), 'infra-rb-e2e-'));
    // a stand-in kubectl on the server's PATH: `kustomize` prints a manifest bigger than the inline
    // cap, `diff` reports the size and checksum of what arrived on stdin
    kube = join(out, 'kubebin');
    mkdirSync(kube);
    writeFileSync(
      join(kube, 'kubectl'),
      [
        '#!/bin/sh',
        'case "$1" in',
        '  kustomize) echo "# overlay $2 kubeconfig $KUBECONFIG"; i=0; while [ $i -lt 3000 ]; do echo "- name: item-$i"; i=$((i+1)); done ;;',
        '  diff) sum=$(sha256sum | cut -c1-64); echo "diff stdin sha256 $sum"; exit 1 ;;',
        'esac',
        '',
      ].join('\n'),
    );
    chmodSync(join(kube, 'kubectl'), 0o755);
    p = makeProject({
      'runbooks.json': SEED_HELLO,
      'capabilities.json': { version: 1, capabilities: {} },
      'targets.json': {
        prod: {
          host: sshd.host,
          port: sshd.port,
          username: PASSWORD_USER,
          password: '${env:E2E_SSH_PASSWORD}',
          host_key_sha256: sshd.fingerprint,
        },
      },
      'profiles.json': { 'prod-db': { type: 'postgres', url: '${env:E2E_PG_URL}', mode: 'read_only' } },
    });
    initRepo(p.root);
    s = await startStdio({
      env: {
        MCP_PROFILES_DIR: p.infraDir,
        INFRA_UNSAFE_LOCAL: '1',
        E2E_SSH_PASSWORD: PASSWORD,
        E2E_PG_URL: pg.url('reader'),
        PATH: `${kube}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      },
    });
  });

  after(async () => {
    await s?.close();
    p?.cleanup();
    pg?.stop();
    await sshd?.stop();
    fake?.cleanup();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  void it('help finds runbooks; list and the hello.world runbook with mcp_state', async () => {
    const help = okr((await s.call('help', { query: 'runbook' })) as Reply);
    assert.ok((help.result.matches as Json[]).some((m) => m.kind === 'runbook'));
    const list = okr((await s.call('runbook', { action: 'list', query: 'repo', limit: 5 })) as Reply);
    assert.deepEqual(
      (list.result.runbooks as Json[]).map((r) => r.name),
      ['repo.snapshot'],
    );
    const r = okr((await s.call('runbook', { action: 'run', name: 'hello.world', input: { message: 'hi' } })) as Reply);
    assert.equal(r.result.status, 'ok');
    const got = okr((await s.call('mcp_state', { action: 'get', key: 'hello' })) as Reply);
    assert.equal(got.result.value, 'hi');
    const run = okr((await s.call('mcp_artifacts', { action: 'get', uri: r.result.run_uri, max_bytes: 65536 })) as Reply);
    assert.match(JSON.stringify(run.result), /"status": \\"ok\\"|\\"status\\": \\"ok\\"/);
  });

  void it('repo.snapshot with {"repo_path": "."}', async () => {
    const r = okr((await s.call('runbook', { action: 'run', name: 'repo.snapshot', input: { repo_path: '.' } })) as Reply);
    const snap = r.result.steps![0]!.result!;
    assert.equal(snap.branch, 'main');
    assert.equal((snap.commits as Json[]).length, 1);
    assert.match(String(r.result.run_uri), /^artifact:\/\/runs\/repo\.snapshot\/c_[0-9A-Z]+\/run\.json$/);
  });

  void it('vps.service.restart as the seed defines it, on an ssh target', async () => {
    writeFileSync(fake.log, '');
    const up = okr((await s.call('runbook', SEED_VPS)) as Reply);
    assert.equal(up.result.overrides_builtin, true);
    const r = okr(
      (await s.call('runbook', { action: 'run', name: 'vps.service.restart', input: { target: 'prod', service: 'nginx' } })) as Reply,
    );
    assert.deepEqual(
      r.result.steps!.map((x) => `${x.id}:${x.status}:${String(x.result?.exit_code)}`),
      ['restart:ok:0', 'status:ok:0'],
    );
    assert.match(String(r.result.steps![1]!.result!.stdout), /nginx\.service/);
    assert.match(readFileSync(fake.log, 'utf8'), /arg=restart\narg=nginx\n/);
  });

  void it('db.export.table as the seed defines it', async () => {
    okr((await s.call('runbook', SEED_EXPORT)) as Reply);
    const file = join(out, 'events.csv');
    const r = okr(
      (await s.call('runbook', {
        action: 'run',
        name: 'db.export.table',
        input: { profile_name: 'prod-db', table: 'events', file_path: file },
      })) as Reply,
    );
    assert.equal(r.result.steps![0]!.result!.rows, 2000);
    assert.match(readFileSync(file, 'utf8'), /^id,kind,payload,at\n/);
  });

  void it('gitops.k8s.diff as the seed defines it: the diff step gets the whole render output on stdin', async () => {
    okr((await s.call('runbook', SEED_K8S_DIFF)) as Reply);
    mkdirSync(join(p.root, 'overlays', 'dev'), { recursive: true });
    const r = okr(
      (await s.call('runbook', {
        action: 'run',
        name: 'gitops.k8s.diff',
        input: { overlay: './overlays/dev', kubeconfig: '/nonexistent/kubeconfig' },
      })) as Reply,
    );
    assert.ok(r.result.steps![0]!.result_omitted, 'the big render result stays out of the reply');
    const doc = okr((await s.call('mcp_artifacts', { action: 'get', uri: r.result.run_uri, max_bytes: 1048576 })) as Reply);
    const run = JSON.parse(String(doc.result.content)) as { steps: { id: string; result: Json }[] };
    const render = run.steps[0]!.result;
    assert.ok((render.stdout_bytes as number) > 16384, 'the render output is over the inline cap');
    const diff = r.result.steps![1]!.result!;
    assert.equal(diff.exit_code, 1);
    assert.equal(diff.stdout, `diff stdin sha256 ${String(render.stdout_sha256)}\n`);
    const verify = okr((await s.call('audit', { action: 'verify' })) as Reply);
    assert.equal(verify.result.ok, true);
  });
});
