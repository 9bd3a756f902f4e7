/**
 * The encrypted secret store, `${secret:NAME}` resolution, the secrets tool (list never shows
 * values; get only with INFRA_ALLOW_SECRET_EXPORT=1, and then the value reaches the reply but
 * never call.json or the audit row), and `infra secrets set|list|rm` through the built CLI.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createRuntime, type Runtime } from '../../src/exec/runtime.js';
import { listTools } from '../../src/server/tool-list.js';
import { SecretStore } from '../../src/secrets/store.js';
import { secretForms } from '../../src/artifacts/redactor.js';
import { startHttpServer, type FixtureServer } from '../fixtures/http-server.js';
import { makeProject, type TempProject } from '../helpers/project.js';
import { CLI } from '../helpers/client.js';

const projects: TempProject[] = [];
const runtimes: Runtime[] = [];
after(async () => {
  for (const rt of runtimes) await rt.close();
  for (const p of projects) p.cleanup();
});

function project(files: Record<string, unknown> = {}): TempProject {
  const p = makeProject(files);
  projects.push(p);
  return p;
}

async function runtime(p: TempProject, env: Record<string, string> = {}): Promise<Runtime> {
  const rt = await createRuntime({
    projectDir: p.infraDir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, INFRA_LOG_LEVEL: 'error', ...env },
  });
  runtimes.push(rt);
  return rt;
}

/** Every file under dir, recursively, as bytes (latin1 text for searching). */
function allBytes(dir: string): string {
  let out = '';
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out += allBytes(p);
    else if (e.isFile()) out += readFileSync(p).toString('latin1');
  }
  return out;
}

function assertAbsent(haystack: string, value: string, where: string): void {
  for (const form of secretForms(value))
    assert.ok(!haystack.includes(form), `${where} contains a form of the secret: ${JSON.stringify(form)}`);
}

void describe('secret store', () => {
  void it('round-trips values; files are 0600; ciphertext shows neither value nor its encodings', () => {
    const p = project();
    const s = new SecretStore({ dir: p.infraDir, env: {} });
    const value = `v-${randomBytes(12).toString('hex')}`;
    s.set('DB_PASSWORD', value);
    s.set('OTHER', 'other-value-123');
    assert.equal(s.get('DB_PASSWORD'), value);
    assert.equal(new SecretStore({ dir: p.infraDir, env: {} }).get('DB_PASSWORD'), value);
    assert.equal(s.keySource(), 'key file');
    for (const f of ['secrets.enc.json', 'secrets.key']) assert.equal(statSync(join(p.infraDir, f)).mode & 0o777, 0o600, f);
    assertAbsent(readFileSync(join(p.infraDir, 'secrets.enc.json'), 'latin1'), value, 'secrets.enc.json');
    assert.deepEqual(s.names(), ['DB_PASSWORD', 'OTHER']);
    assert.equal(s.remove('OTHER'), true);
    assert.equal(s.remove('OTHER'), false);
    assert.equal(s.get('OTHER'), undefined);
    assert.ok(!readdirSync(p.infraDir).some((f) => f.endsWith('.partial') || f.endsWith('.lock')), 'no temp or lock files left');
  });

  void it('a running process sees a value set by another (the CLI) without restarting', () => {
    const p = project();
    const server = new SecretStore({ dir: p.infraDir, env: {} });
    assert.equal(server.get('LATER'), undefined);
    new SecretStore({ dir: p.infraDir, env: {} }).set('LATER', 'set-by-the-cli-42');
    assert.equal(server.get('LATER'), 'set-by-the-cli-42');
  });

  void it('an entry moved to another name fails authentication (the name is bound to the ciphertext)', () => {
    const p = project();
    const warnings: string[] = [];
    const s = new SecretStore({ dir: p.infraDir, env: {}, warn: (m) => warnings.push(m) });
    s.set('A', 'value-of-a-123');
    s.set('B', 'value-of-b-456');
    const path = join(p.infraDir, 'secrets.enc.json');
    const f = JSON.parse(readFileSync(path, 'utf8'));
    f.secrets.B = f.secrets.A;
    writeFileSync(path, JSON.stringify(f), { mode: 0o600 });
    assert.equal(new SecretStore({ dir: p.infraDir, env: {}, warn: (m) => warnings.push(m) }).get('B'), undefined);
    assert.ok(
      warnings.some((w) => /failed authentication/.test(w)),
      warnings.join('\n'),
    );
  });

  void it('INFRA_SECRETS_KEY as hex, base64 or a passphrase (scrypt); a wrong key is reported, not guessed', () => {
    const hex = randomBytes(32).toString('hex');
    const b64 = Buffer.from(hex, 'hex').toString('base64');
    const p = project();
    new SecretStore({ dir: p.infraDir, env: { INFRA_SECRETS_KEY: hex } }).set('K', 'keyed-value-1');
    assert.equal(existsSync(join(p.infraDir, 'secrets.key')), false, 'no key file when INFRA_SECRETS_KEY is set');
    assert.equal(new SecretStore({ dir: p.infraDir, env: { INFRA_SECRETS_KEY: b64 } }).get('K'), 'keyed-value-1', 'same key as base64');
    const wrong = new SecretStore({ dir: p.infraDir, env: { INFRA_SECRETS_KEY: randomBytes(32).toString('hex') } });
    assert.equal(wrong.get('K'), undefined);
    assert.match(
      wrong
        .status()
        .problems.map((x) => x.message)
        .join('\n'),
      /different key/,
    );

    const q = project();
    new SecretStore({ dir: q.infraDir, env: { INFRA_SECRETS_KEY: 'correct horse battery staple' } }).set('P', 'pass-value-22');
    const file = JSON.parse(readFileSync(join(q.infraDir, 'secrets.enc.json'), 'utf8'));
    assert.equal(file.kdf.name, 'scrypt');
    const ps = new SecretStore({ dir: q.infraDir, env: { INFRA_SECRETS_KEY: 'correct horse battery staple' } });
    assert.equal(ps.keySource(), 'env:INFRA_SECRETS_KEY (passphrase, scrypt)');
    assert.equal(ps.get('P'), 'pass-value-22');
    assert.equal(new SecretStore({ dir: q.infraDir, env: { INFRA_SECRETS_KEY: 'wrong horse' } }).get('P'), undefined);
  });

  void it('doctor-facing status flags a key file readable by others', async () => {
    const p = project();
    const s = new SecretStore({ dir: p.infraDir, env: {} });
    s.set('X', 'value-x-1234');
    const { chmodSync } = await import('node:fs');
    chmodSync(join(p.infraDir, 'secrets.key'), 0o644);
    assert.match(
      s
        .status()
        .problems.map((x) => x.fix)
        .join('\n'),
      /chmod 600/,
    );
  });

  void it('refuses bad names and empty values', () => {
    const s = new SecretStore({ dir: project().infraDir, env: {} });
    assert.throws(() => s.set('bad name', 'v-12345'), /invalid secret name/);
    assert.throws(() => s.set('__proto__x', ''), /empty/);
  });
});

void describe('${secret:NAME} wherever ${env:NAME} works', () => {
  let web: FixtureServer;
  before(async () => {
    web = await startHttpServer();
  });
  after(async () => web.close());

  void it('an http profile header from the store reaches the server, redacted in the reply', async () => {
    const p = project({
      'profiles.json': {
        api: { type: 'http', base_url: web.url, headers: { Authorization: 'Bearer ${secret:API_TOKEN}', 'X-Env': '${env:X_ENV_KEY}' } },
      },
    });
    new SecretStore({ dir: p.infraDir, env: {} }).set('API_TOKEN', 'store-token-5a5a5a5a');
    const rt = await runtime(p, { X_ENV_KEY: 'env-key-7b7b7b7b' });
    const env = await rt.call('http', { action: 'request', profile: 'api', path: '/echo' });
    assert.ok(env.ok, JSON.stringify(env));
    const seen = web.requests.at(-1)!.headers;
    assert.equal(seen.authorization, 'Bearer store-token-5a5a5a5a');
    assert.equal(seen['x-env'], 'env-key-7b7b7b7b');
    const reply = JSON.stringify(env);
    assertAbsent(reply, 'store-token-5a5a5a5a', 'reply');
    assertAbsent(reply, 'env-key-7b7b7b7b', 'reply');
  });
});

void describe('secrets tool', () => {
  const STORED = 'stored-secret-value-9f9f9f';
  const ENVV = 'env-secret-value-8e8e8e';
  let p: TempProject;

  before(() => {
    p = project({
      'targets.json': {
        web: { host: '127.0.0.1', username: 'deploy', password: '${secret:SSH_PW}', key_file: '${file:/nonexistent/infra/key}' },
      },
      'profiles.json': {
        db: { type: 'postgres', url: 'postgres://app@127.0.0.1:5432/app', password: '${env:DB_PW}' },
        api: { type: 'http', base_url: 'http://127.0.0.1:1', headers: { Authorization: 'Bearer ${env:API_TOKEN_UNSET}' } },
      },
      'servers.json': {
        mcpServers: { deploy: { url: 'http://127.0.0.1:2/mcp', headers: { Authorization: 'Bearer ${secret:DEPLOY_TOKEN}' } } },
      },
    });
    const s = new SecretStore({ dir: p.infraDir, env: {} });
    s.set('SSH_PW', STORED);
    s.set('UNUSED', 'unused-value-1234');
  });

  void it('list shows every reference and where it resolves from, never a value', async () => {
    const rt = await runtime(p, { DB_PW: ENVV });
    const env = await rt.call('secrets', { action: 'list' });
    assert.ok(env.ok, JSON.stringify(env));
    const r = env.result as {
      references: { ref: string; resolves_from: string; used_by: string[]; hint?: string }[];
      store: { names: { name: string; referenced: boolean }[] };
      export_allowed: boolean;
    };
    const from = Object.fromEntries(r.references.map((x) => [x.ref, x.resolves_from]));
    assert.deepEqual(from, {
      'env:API_TOKEN_UNSET': 'missing',
      'env:DB_PW': 'env',
      'file:/nonexistent/infra/key': 'missing',
      'secret:DEPLOY_TOKEN': 'missing',
      'secret:SSH_PW': 'store',
    });
    assert.deepEqual(r.references.find((x) => x.ref === 'secret:SSH_PW')!.used_by, ['targets.json: web.password']);
    assert.match(r.references.find((x) => x.ref === 'secret:DEPLOY_TOKEN')!.hint!, /infra secrets set DEPLOY_TOKEN/);
    assert.deepEqual(
      r.store.names.map((n) => [n.name, n.referenced]),
      [
        ['SSH_PW', true],
        ['UNUSED', false],
      ],
    );
    assert.equal(r.export_allowed, false);
    const reply = JSON.stringify(env);
    for (const v of [STORED, ENVV, 'unused-value-1234']) assertAbsent(reply, v, 'secrets list reply');
  });

  void it('get is hidden from tools/list and refused by name without INFRA_ALLOW_SECRET_EXPORT, naming the flag', async () => {
    const rt = await runtime(p, { DB_PW: ENVV });
    const tool = listTools(rt.pipeline.tools(), rt.services).find((t) => t.name === 'secrets')!;
    assert.deepEqual((tool.inputSchema.properties as Record<string, { enum?: string[] }>).action!.enum, ['list']);
    for (const args of [{ action: 'get', name: 'SSH_PW' }, { action: 'get' }]) {
      const env = await rt.call('secrets', args);
      assert.equal(env.ok, false);
      if (env.ok) return;
      assert.equal(env.error.code, 'DENIED');
      assert.match(env.error.hint ?? '', /INFRA_ALLOW_SECRET_EXPORT=1/);
    }
    assertAbsent(allBytes(p.infraDir), STORED, 'project directory');
  });

  void it('with INFRA_ALLOW_SECRET_EXPORT=1 the value reaches the reply only: not call.json, not the audit, not a parent', async () => {
    const rt = await runtime(p, { DB_PW: ENVV, INFRA_ALLOW_SECRET_EXPORT: '1' });
    const tool = listTools(rt.pipeline.tools(), rt.services).find((t) => t.name === 'secrets')!;
    assert.deepEqual((tool.inputSchema.properties as Record<string, { enum?: string[] }>).action!.enum, ['list', 'get']);

    const byName = await rt.call('secrets', { action: 'get', name: 'SSH_PW' });
    assert.ok(byName.ok, JSON.stringify(byName));
    assert.equal((byName.result as { value: string }).value, STORED, 'not [REDACTED] in the reply');
    const byRef = await rt.call('secrets', { action: 'get', name: 'env:DB_PW' });
    assert.ok(byRef.ok);
    assert.equal((byRef.result as { value: string }).value, ENVV);
    assert.equal((byRef.result as { resolves_from: string }).resolves_from, 'env');

    // recorded without the value
    const row = rt.services.audit.get(byName.call_id)!;
    assert.equal(row.status, 'ok');
    assert.match(row.summary ?? '', /value not recorded/);
    const callJson = readFileSync(join(p.infraDir, 'artifacts', 'calls', byName.call_id, 'call.json'), 'utf8');
    assert.equal((JSON.parse(callJson) as { envelope: { result: { ref: string } } }).envelope.result.ref, 'secret:SSH_PW');
    assertAbsent(callJson, STORED, 'call.json');

    // a nested call (runbook step) never receives it
    const nested = await rt.call('secrets', { action: 'get', name: 'SSH_PW' }, { parentId: byName.call_id });
    assert.ok(nested.ok);
    assert.equal((nested.result as { value?: string }).value, undefined);

    // only what the config refers to or the store holds: not an arbitrary variable or file
    for (const name of ['env:PATH', 'env:HOME', 'file:/etc/passwd', 'NOPE']) {
      const env = await rt.call('secrets', { action: 'get', name });
      assert.equal(env.ok ? 'ok' : env.error.code, 'NOT_FOUND', name);
    }
    const unset = await rt.call('secrets', { action: 'get', name: 'secret:DEPLOY_TOKEN' });
    assert.equal(unset.ok ? 'ok' : unset.error.code, 'NOT_FOUND');

    await rt.close();
    const bytes = allBytes(p.infraDir);
    assertAbsent(bytes, STORED, 'project directory (infra.db and WAL included)');
    assertAbsent(bytes, ENVV, 'project directory (infra.db and WAL included)');
  });
});

void describe('infra secrets set|list|rm (built CLI)', () => {
  before(() => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  });
  const cli = (p: TempProject, args: string[], input?: string) =>
    spawnSync(process.execPath, [CLI, '--project', p.root, ...args], {
      input: input ?? '',
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });

  void it('reads the value from stdin, never from argv; list shows names only; rm removes', () => {
    const p = project();
    const argv = cli(p, ['secrets', 'set', 'TOKEN', 'argv-value-1234']);
    assert.equal(argv.status, 2, argv.stderr);
    assert.match(argv.stderr, /refusing a value on the command line/);
    assert.equal(existsSync(join(p.infraDir, 'secrets.enc.json')), false);

    const set = cli(p, ['secrets', 'set', 'TOKEN'], 'stdin-value-5678\n');
    assert.equal(set.status, 0, set.stderr);
    assert.ok(!set.stdout.includes('stdin-value-5678'));
    assert.equal(new SecretStore({ dir: p.infraDir, env: {} }).get('TOKEN'), 'stdin-value-5678', 'one trailing newline stripped');

    const list = cli(p, ['secrets', 'list', '--json']);
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual(
      JSON.parse(list.stdout).secrets.map((s: { name: string }) => s.name),
      ['TOKEN'],
    );
    assert.ok(!list.stdout.includes('stdin-value-5678'));

    assert.equal(cli(p, ['secrets', 'rm', 'TOKEN']).status, 0);
    assert.equal(cli(p, ['secrets', 'rm', 'TOKEN']).status, 1);
    assert.equal(cli(p, ['secrets', 'set', 'EMPTY'], '').status, 1);
  });
});
