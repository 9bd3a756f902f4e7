import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { clientSnippet, CLIENTS } from '../../src/cli/client-config.js';
import { initProject } from '../../src/cli/init.js';
import { configJsonSchemas } from '../../src/config/json-schemas.js';
import { parseJsonc } from '../../src/config/jsonc.js';
import { loadConfig, resolveProject } from '../../src/config/load.js';
import { CONFIG_FILES } from '../../src/config/schemas.js';
import { REPO_ROOT } from '../helpers/client.js';

const tmp = mkdtempSync(join(tmpdir(), 'infra-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const CONFIG_NAMES = Object.keys(CONFIG_FILES);

void describe('infra init', () => {
  void it('scaffolds .infra/ with every config file, each with a $schema line, commented examples, and valid as written', () => {
    const root = join(tmp, 'fresh');
    mkdirSync(root);
    const r = initProject(root);
    assert.equal(r.infraDir, join(root, '.infra'));
    assert.equal(statSync(r.infraDir).mode & 0o777, 0o700);
    assert.deepEqual(r.written.sort(), ['.gitignore', ...CONFIG_NAMES].sort());
    for (const name of ['targets.json', 'profiles.json', 'policy.json', 'runbooks.json', 'servers.json', 'capabilities.json']) {
      assert.ok(CONFIG_NAMES.includes(name), `${name} is a config file`);
    }
    for (const name of CONFIG_NAMES) {
      const text = readFileSync(join(r.infraDir, name), 'utf8');
      const doc = parseJsonc(text) as { $schema?: string };
      const schemaFile = `./schemas/${name.replace(/\.json$/, '.schema.json')}`;
      assert.equal(doc.$schema, schemaFile, `${name} has its $schema line`);
      assert.ok(existsSync(join(r.infraDir, schemaFile)), `${schemaFile} exists`);
      CONFIG_FILES[name as keyof typeof CONFIG_FILES].parse(doc);
      if (name !== 'capabilities.json' && name !== 'runbooks.json') assert.match(text, /\n\s*\/\/ /, `${name} has commented examples`);
      assert.equal(statSync(join(r.infraDir, name)).mode & 0o077, 0, `${name} is private`);
    }
    const config = loadConfig(resolveProject({ env: {}, cwd: root }), {});
    assert.deepEqual(config.issues, [], 'a fresh project loads without issues');
    assert.ok(config.runbooks['hello.world'], 'the example runbook loads');
    assert.match(readFileSync(join(r.infraDir, '.gitignore'), 'utf8'), /^infra\.db$/m);
    assert.match(readFileSync(join(r.infraDir, '.gitignore'), 'utf8'), /^secrets\.key$/m);
  });

  void it('writes the generated JSON Schemas (identical to the committed schemas/) and never overwrites a config file', () => {
    const root = join(tmp, 'again');
    mkdirSync(join(root, '.infra'), { recursive: true });
    writeFileSync(join(root, '.infra', 'targets.json'), '{ "web": { "host": "h", "username": "u" } }');
    const r = initProject(root);
    assert.deepEqual(r.kept, ['targets.json']);
    assert.equal(readFileSync(join(root, '.infra', 'targets.json'), 'utf8'), '{ "web": { "host": "h", "username": "u" } }');
    for (const [name, schema] of Object.entries(configJsonSchemas())) {
      const written = readFileSync(join(root, '.infra', 'schemas', name), 'utf8');
      assert.deepEqual(JSON.parse(written), schema);
      assert.deepEqual(
        JSON.parse(written),
        JSON.parse(readFileSync(join(REPO_ROOT, 'schemas', name), 'utf8')),
        `schemas/${name} is current`,
      );
    }
    const second = initProject(root);
    assert.deepEqual(second.written, []);
  });
});

void describe('infra config client', () => {
  const root = join(tmp, 'clients');
  mkdirSync(root);
  initProject(root);
  const infraDir = join(root, '.infra');
  writeFileSync(
    join(infraDir, 'profiles.json'),
    JSON.stringify({
      api: { type: 'http', base_url: 'https://api.example.com', headers: { Authorization: 'Bearer ${env:API_TOKEN}' } },
      db: { type: 'postgres', url: '${DATABASE_URL}' },
    }),
  );
  writeFileSync(join(infraDir, 'targets.json'), JSON.stringify({ prod: { host: 'p', username: 'u', password: '${secret:PROD_PW}' } }));
  writeFileSync(
    join(infraDir, 'servers.json'),
    JSON.stringify({ mcpServers: { gh: { command: 'gh-mcp', env: { GITHUB_TOKEN: '${env:GH_TOKEN}' }, tools: { allow: ['*'] } } } }),
  );
  const expectedEnv = {
    MCP_PROFILES_DIR: infraDir,
    API_TOKEN: '<value of API_TOKEN>',
    DATABASE_URL: '<value of DATABASE_URL>',
    GH_TOKEN: '<value of GH_TOKEN>',
    INFRA_SECRETS_KEY: '<value of INFRA_SECRETS_KEY>',
  };

  void it('prints each client its own shape with MCP_PROFILES_DIR and every referenced variable', () => {
    const shapes: Record<(typeof CLIENTS)[number], (server: unknown) => unknown> = {
      claude: (s) => ({ mcpServers: { infra: s } }),
      cursor: (s) => ({ mcpServers: { infra: s } }),
      vscode: (s) => ({ servers: { infra: { type: 'stdio', ...(s as object) } } }),
      zed: (s) => ({ context_servers: { infra: s } }),
    };
    for (const client of CLIENTS) {
      const doc = JSON.parse(clientSnippet(client, { projectFlag: root, env: {} })) as Record<string, Record<string, { command: string }>>;
      const server = Object.values(Object.values(doc)[0]!)[0]! as { command: string; args: string[]; env: Record<string, string> };
      assert.equal(server.command, process.execPath);
      assert.ok(
        server.args.every((a) => a.startsWith('/') || a.startsWith('-') || a === 'tsx'),
        server.args.join(' '),
      );
      assert.deepEqual(doc, shapes[client]({ command: server.command, args: server.args, env: expectedEnv }), client);
    }
  });

  void it('with the store key file present, INFRA_SECRETS_KEY is not asked for', () => {
    writeFileSync(join(infraDir, 'secrets.key'), Buffer.alloc(32, 1), { mode: 0o600 });
    try {
      const doc = JSON.parse(clientSnippet('claude', { projectFlag: root, env: {} })) as { mcpServers: { infra: { env: object } } };
      assert.ok(!('INFRA_SECRETS_KEY' in doc.mcpServers.infra.env));
    } finally {
      rmSync(join(infraDir, 'secrets.key'));
    }
  });

  void it('through the CLI: the command and args name this node and the real path of the entry script', () => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli.ts'), '--project', root, 'config', 'client', '--client', 'vscode'],
      {
        cwd: REPO_ROOT,
        encoding: 'utf8',
        env: { PATH: process.env.PATH, HOME: tmp },
        timeout: 60_000,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as {
      servers: { infra: { type: string; command: string; args: string[]; env: Record<string, string> } };
    };
    assert.deepEqual(doc.servers.infra, {
      type: 'stdio',
      command: process.execPath,
      args: ['--import', 'tsx', realpathSync(join(REPO_ROOT, 'src', 'cli.ts'))],
      env: expectedEnv,
    });
    assert.deepEqual(readdirSync(infraDir).sort().includes('infra.db'), false, 'printing a snippet opens no database');
  });
});

void describe('docs/CONFIG.md', () => {
  void it('its key tables are generated from the current config schemas (run: node --import tsx tools/gen-config-doc.ts)', async () => {
    const { renderDoc } = await import('../../tools/gen-config-doc.js');
    const current = readFileSync(join(REPO_ROOT, 'docs', 'CONFIG.md'), 'utf8');
    assert.equal(await renderDoc(current), current);
  });
});

void describe('infra with a word that is no command', () => {
  void it('names the word and lists the commands, exit 1, and starts no server', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli.ts'), 'nosuchcommand'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: tmp },
      timeout: 60_000,
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /unknown command 'nosuchcommand' \(commands: serve, call, init, .*doctor/);
    assert.equal(r.stdout, '', 'nothing on stdout, the protocol channel');
  });
});
