import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { REPO_ROOT } from '../helpers/client.js';

/**
 * The npm package: `npm pack` → `npm install -g --prefix <tmp> <tarball>` → `<tmp>/bin/infra`.
 *
 * The package is staged from a fresh bundle (dist/ of the work tree is left alone: other tests
 * run it). Install scripts are skipped and better-sqlite3's addon is put where its install
 * script would build it: compiling SQLite takes minutes on this machine and is the driver's own
 * business; everything else (files list, bin link, shebang, dependency resolution from the
 * installed tree) is the real path.
 */

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  files: string[];
};
const ADDON = join(REPO_ROOT, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');

function npm(args: string[], cwd: string, timeout = 150_000): string {
  const npmCli = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
  const [cmd, argv] = existsSync(npmCli) ? [process.execPath, [npmCli, ...args]] : ['npm', args];
  const r = spawnSync(cmd, argv, { cwd, encoding: 'utf8', timeout, env: { ...process.env, npm_config_update_notifier: 'false' } });
  assert.equal(r.status, 0, `npm ${args.join(' ')} failed (exit ${r.status}, ${r.error?.message ?? ''}):\n${r.stderr}`);
  return r.stdout;
}

void describe('npm package: bin works after npm install -g from a packed tarball', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'infra-npm-'));
  const stage = join(tmp, 'stage');
  const prefix = join(tmp, 'prefix');
  let tarball = '';
  let entries: string[] = [];

  before(async () => {
    mkdirSync(stage);
    copyFileSync(join(REPO_ROOT, 'package.json'), join(stage, 'package.json'));
    for (const f of pkg.files) {
      if (f === 'dist') continue;
      const src = join(REPO_ROOT, f);
      assert.ok(existsSync(src), `package.json "files" names ${f}, which does not exist`);
      cpSync(src, join(stage, f), { recursive: true });
    }
    const { bundle } = (await import(join(REPO_ROOT, 'tools', 'build.mjs'))) as {
      bundle: (o: { outfile: string }) => Promise<string>;
    };
    await bundle({ outfile: join(stage, pkg.bin.infra!) });
    const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', tmp], stage)) as {
      filename: string;
      files: { path: string }[];
    }[];
    tarball = join(tmp, packed[0]!.filename);
    entries = packed[0]!.files.map((f) => f.path);
    npm(['install', '-g', '--prefix', prefix, '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', tarball], tmp);
    // what better-sqlite3's install script (prebuild-install || node-gyp rebuild) leaves behind
    const release = join(prefix, 'lib', 'node_modules', pkg.name, 'node_modules', 'better-sqlite3', 'build', 'Release');
    mkdirSync(release, { recursive: true });
    copyFileSync(ADDON, join(release, 'better_sqlite3.node'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  void it('the tarball holds the bundle, the built-in runbooks, the schemas and the catalog, and no sources or tests', () => {
    assert.ok(existsSync(tarball));
    for (const needed of ['package.json', 'dist/cli.js', 'tool_catalog.json', 'schemas/policy.schema.json']) {
      assert.ok(entries.includes(needed), `${needed} is in the package (${entries.join(', ')})`);
    }
    for (const f of readdirSync(join(REPO_ROOT, 'runbooks'))) assert.ok(entries.includes(`runbooks/${f}`), `runbooks/${f}`);
    assert.ok(!entries.some((e) => e.startsWith('src/') || e.startsWith('test/') || e.startsWith('node_modules/')), entries.join(', '));
  });

  void it('<prefix>/bin/infra --version prints the version and commit', () => {
    const bin = join(prefix, 'bin', 'infra');
    assert.ok(existsSync(bin), `${bin} exists`);
    assert.equal(realpathSync(bin), join(realpathSync(prefix), 'lib', 'node_modules', pkg.name, 'dist', 'cli.js'));
    const r = spawnSync(bin, ['--version'], { cwd: tmp, encoding: 'utf8', env: { PATH: dirname(process.execPath), HOME: tmp } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${pkg.version.replace(/\./g, '\\.')} \\(([0-9a-f]{12}|unknown)\\)\\n$`));
  });

  void it('<prefix>/bin/infra serves tools/list and a state call over stdio', async () => {
    const project = join(tmp, 'project', '.infra');
    const transport = new StdioClientTransport({
      command: join(prefix, 'bin', 'infra'),
      args: [],
      // the shebang finds node through PATH, as a client started from a desktop would
      env: { PATH: dirname(process.execPath), HOME: tmp, MCP_PROFILES_DIR: project, INFRA_LOG_LEVEL: 'warn' },
      cwd: tmp,
      stderr: 'pipe',
    });
    const client = new Client({ name: 'infra-npm-test', version: '1.0.0' }, { capabilities: {} });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      for (const name of ['state', 'repo', 'runbook', 'ssh', 'psql', 'http'])
        assert.ok(
          tools.some((t) => t.name === name),
          name,
        );
      const set = await client.callTool({ name: 'state', arguments: { action: 'set', key: 'k', value: 'v' } });
      assert.equal((set.structuredContent as { ok: boolean }).ok, true, JSON.stringify(set.structuredContent));
      assert.ok(existsSync(join(project, 'infra.db')));
    } finally {
      await client.close();
    }
  });

  void it('the snippet of `infra config client` starts a working server as the client would', async () => {
    const root = join(tmp, 'snippet-project');
    mkdirSync(root);
    const bin = join(prefix, 'bin', 'infra');
    const env = { PATH: dirname(process.execPath), HOME: tmp };
    assert.equal(spawnSync(bin, ['init', root], { cwd: tmp, env, encoding: 'utf8' }).status, 0);
    const r = spawnSync(bin, ['--project', root, 'config', 'client', '--client', 'claude'], { cwd: tmp, env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const server = (JSON.parse(r.stdout) as { mcpServers: { infra: { command: string; args: string[]; env: Record<string, string> } } })
      .mcpServers.infra;
    assert.equal(server.command, process.execPath);
    assert.deepEqual(server.args, [join(realpathSync(prefix), 'lib', 'node_modules', pkg.name, 'dist', 'cli.js')]);
    assert.deepEqual(server.env, { MCP_PROFILES_DIR: join(root, '.infra') });
    // a desktop client starts it from / with an almost empty environment
    const transport = new StdioClientTransport({
      command: server.command,
      args: server.args,
      env: { ...server.env, HOME: tmp },
      cwd: '/',
      stderr: 'pipe',
    });
    const client = new Client({ name: 'infra-npm-test', version: '1.0.0' }, { capabilities: {} });
    await client.connect(transport);
    try {
      const r2 = await client.callTool({ name: 'runbook', arguments: { action: 'run', name: 'hello.world', input: { message: 'hi' } } });
      assert.equal((r2.structuredContent as { ok: boolean }).ok, true, JSON.stringify(r2.structuredContent));
    } finally {
      await client.close();
    }
  });
});
