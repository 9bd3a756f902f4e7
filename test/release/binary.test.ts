import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import stringify from 'safe-stable-stringify';
import { defaultPolicyView } from '../../src/catalog.js';
import { configJsonSchemas } from '../../src/config/json-schemas.js';
import { listTools } from '../../src/server/tool-list.js';
import { NATIVE_TOOLS } from '../../src/toolsets/registry.js';
import { initRepo, writeAndCommit } from '../fixtures/git.js';
import { REPO_ROOT } from '../helpers/client.js';

/**
 * The release binary (tools/release) on a machine without Node: started with no PATH at all
 * (or, for the git call, a PATH holding only git), from a directory without node_modules,
 * driven by the SDK client as an MCP client would.
 */

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
const sha256 = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
const ADDON = join(REPO_ROOT, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');

type Envelope = Record<string, unknown> & { ok: boolean; result?: Record<string, unknown> };

function findOnPath(name: string): string {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = join(dir, name);
    if (dir && existsSync(p)) return realpathSync(p);
  }
  throw new Error(`${name} is needed by this test and is not on PATH`);
}

void describe('release binary (tools/release): runs without node', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'infra-release-'));
  const out = join(tmp, 'build');
  const binary = join(out, 'infra-linux-x64');
  const home = join(tmp, 'home');
  const cache = join(tmp, 'cache');
  const work = join(tmp, 'work');
  let client: Client | undefined;
  let transport: StdioClientTransport | undefined;

  before(() => {
    mkdirSync(home);
    mkdirSync(work);
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'tools', 'release'), '--out', out], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 170_000,
    });
    assert.equal(r.status, 0, `tools/release failed (exit ${r.status}):\n${r.stderr}`);
    assert.equal(r.stdout.trim(), binary);
  });
  after(async () => {
    await client?.close().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  });

  /** Environment with no PATH at all (undefined entries are dropped by spawn). */
  const bareEnv = (extra: Record<string, string | undefined> = {}): Record<string, string> =>
    ({ PATH: undefined, HOME: home, XDG_CACHE_HOME: cache, INFRA_LOG_LEVEL: 'warn', ...extra }) as unknown as Record<string, string>;

  async function connect(env: Record<string, string>): Promise<{ client: Client; transport: StdioClientTransport }> {
    const t = new StdioClientTransport({ command: binary, args: [], env, cwd: work, stderr: 'pipe' });
    const c = new Client({ name: 'infra-release-test', version: '1.0.0' }, { capabilities: {} });
    await c.connect(t);
    return { client: c, transport: t };
  }
  const call = async (c: Client, name: string, args: Record<string, unknown>): Promise<Envelope> => {
    const r = await c.callTool({ name, arguments: args }, undefined, { timeout: 60_000 });
    return r.structuredContent as Envelope;
  };

  void it('writes a .sha256 file that matches the binary and that sha256sum -c accepts', () => {
    const line = readFileSync(`${binary}.sha256`, 'utf8');
    assert.match(line, /^[0-9a-f]{64} {2}infra-linux-x64\n$/);
    assert.equal(line.slice(0, 64), sha256(binary));
    const check = spawnSync(findOnPath('sha256sum'), ['-c', 'infra-linux-x64.sha256'], { cwd: out, encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /infra-linux-x64: OK/);
    assert.ok(statSync(binary).mode & 0o100, 'executable');
  });

  void it('--version prints the package version and a commit of this repository, with no PATH', () => {
    const r = spawnSync(binary, ['--version'], { env: bareEnv(), cwd: work, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const m = /^(\S+) \(([0-9a-f]{12})(-dirty)?\)\n$/.exec(r.stdout);
    assert.ok(m, `unexpected --version output ${JSON.stringify(r.stdout)}`);
    assert.equal(m[1], pkg.version);
    execFileSync('git', ['cat-file', '-e', `${m[2]}^{commit}`], { cwd: REPO_ROOT });
    assert.equal(r.stderr, '', 'no experimental-feature warning on stderr');
  });

  void it('serves MCP over stdio with no PATH: tools/list equals the source definitions, state round-trips through the embedded SQLite', async () => {
    const project = join(tmp, 'project-state', '.infra');
    ({ client, transport } = await connect(bareEnv({ MCP_PROFILES_DIR: project })));
    const pid = transport.pid!;
    assert.equal(realpathSync(`/proc/${pid}/exe`), realpathSync(binary), 'the server process is the binary itself');
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    assert.ok(!environ.some((e) => e.startsWith('PATH=')), 'the server has no PATH');

    const { tools } = await client.listTools();
    assert.equal(stringify(tools, null, 2), stringify(listTools(NATIVE_TOOLS, defaultPolicyView()), null, 2));
    for (const name of ['state', 'repo', 'runbook', 'ssh', 'psql', 'http'])
      assert.ok(
        tools.some((t) => t.name === name),
        name,
      );

    const set = await call(client, 'state', { action: 'set', key: 'release', value: { built: true } });
    assert.equal(set.ok, true, JSON.stringify(set));
    const get = await call(client, 'state', { action: 'get', key: 'release' });
    assert.deepEqual((get.result as { value: unknown }).value, { built: true });
    assert.ok(existsSync(join(project, 'infra.db')));

    // the addon was extracted once, privately, and is the one from node_modules
    const dirs = readdirSync(join(cache, 'infra'));
    assert.deepEqual(dirs, [sha256(ADDON)]);
    assert.equal(statSync(join(cache, 'infra', dirs[0]!)).mode & 0o777, 0o700);
    assert.equal(sha256(join(cache, 'infra', dirs[0]!, 'better_sqlite3.node')), sha256(ADDON));

    // the built-in runbooks travel inside the binary
    const builtins = readdirSync(join(REPO_ROOT, 'runbooks'))
      .filter((f) => f.endsWith('.json'))
      .flatMap((f) =>
        Object.keys(JSON.parse(readFileSync(join(REPO_ROOT, 'runbooks', f), 'utf8')) as object).filter((k) => k !== '$schema'),
      );
    assert.ok(builtins.length > 0);
    const list = await call(client, 'runbook', { action: 'list', limit: 500 });
    const listed = (list.result as { runbooks: { name: string }[] }).runbooks.map((r) => r.name);
    for (const name of builtins) assert.ok(listed.includes(name), `built-in runbook ${name} is listed (got ${listed.join(', ')})`);
    await client.close();
    client = undefined;
  });

  void it('repo.snapshot (tool and built-in runbook) on a git repository, with only git on PATH', async () => {
    const repo = join(tmp, 'repo');
    initRepo(repo);
    writeAndCommit(repo, 'src/app.txt', 'v1\n', 'add app');
    const bin = join(tmp, 'only-git');
    mkdirSync(bin);
    symlinkSync(findOnPath('git'), join(bin, 'git'));
    assert.deepEqual(readdirSync(bin), ['git'], 'node is not reachable through PATH');

    ({ client, transport } = await connect(bareEnv({ PATH: bin, MCP_PROFILES_DIR: join(repo, '.infra') })));
    const snap = await call(client, 'repo', { action: 'snapshot', repo_path: '.' });
    assert.equal(snap.ok, true, JSON.stringify(snap));
    const r = snap.result as { branch: string; head_subject: string; commits: unknown[] };
    assert.equal(r.branch, 'main');
    assert.equal(r.head_subject, 'add app');
    assert.equal(r.commits.length, 2);

    const run = await call(client, 'runbook', { action: 'run', name: 'repo.snapshot', input: { repo_path: '.' } });
    assert.equal(run.ok, true, JSON.stringify(run));
    assert.match(JSON.stringify(run.result), /add app/);
    await client.close();
    client = undefined;
  });

  void it('infra init from the binary writes the same JSON Schemas as the source (schemas travel inside)', () => {
    const dir = join(tmp, 'init-project');
    mkdirSync(dir);
    const r = spawnSync(binary, ['init', dir], { env: bareEnv(), cwd: work, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    for (const [name, schema] of Object.entries(configJsonSchemas())) {
      const written = JSON.parse(readFileSync(join(dir, '.infra', 'schemas', name), 'utf8')) as unknown;
      assert.deepEqual(written, schema, name);
    }
  });

  void it('config client names the binary itself as the command, with no args', () => {
    const project = join(tmp, 'init-project');
    const r = spawnSync(binary, ['--project', project, 'config', 'client', '--client', 'claude'], {
      env: bareEnv(),
      cwd: work,
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { mcpServers: { infra: { command: string; args: string[]; env: Record<string, string> } } };
    assert.equal(doc.mcpServers.infra.command, binary);
    assert.deepEqual(doc.mcpServers.infra.args, []);
    assert.equal(doc.mcpServers.infra.env.MCP_PROFILES_DIR, join(project, '.infra'));
  });
});
