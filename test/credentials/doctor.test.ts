/**
 * A newcomer's path through the built CLI: `infra init`, then `infra doctor` says what to fix
 * (missing credentials by name, how to set them), `infra secrets set` fixes one, and
 * `infra doctor --json` gives scripts the same facts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHttpServer, type FixtureServer } from '../fixtures/http-server.js';
import { CLI } from '../helpers/client.js';

let dir: string;
let web: FixtureServer;

before(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  dir = mkdtempSync(join(tmpdir(), 'infra-newcomer-'));
  web = await startHttpServer();
});
after(async () => {
  await web?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs the built CLI without blocking this process (the HTTP fixture lives here). */
function infra(args: string[], input = ''): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CLI, ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, INFRA_LOG_LEVEL: 'error' },
    });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('error', reject);
    c.on('close', (status) => resolve({ status, stdout, stderr }));
    c.stdin.end(input);
  });
}

void describe('infra init, then infra doctor', () => {
  void it('a fresh project passes, and doctor says what to configure next', async () => {
    const init = await infra(['init', dir]);
    assert.equal(init.status, 0, init.stderr);
    const doc = await infra(['doctor', '--project', dir]);
    assert.equal(doc.status, 0, doc.stdout + doc.stderr);
    assert.match(doc.stdout, /\[ok {2}\] secrets: no secret store yet/);
    assert.match(doc.stdout, /\[warn\] preflight: nothing to check yet/);
    assert.match(doc.stdout, /fix: add SSH targets to .*targets\.json/);
    assert.match(doc.stdout, /all checks passed/);
  });

  void it('names each missing credential and how to set it; secrets set fixes one', async () => {
    const infraDir = join(dir, '.infra');
    writeFileSync(
      join(infraDir, 'profiles.json'),
      JSON.stringify({
        'app-db': { type: 'postgres', url: '${env:DATABASE_URL}', mode: 'read_only' },
        api: { type: 'http', base_url: `${web.url}/json`, headers: { Authorization: 'Bearer ${secret:API_TOKEN}' } },
      }),
    );
    writeFileSync(join(infraDir, 'targets.json'), JSON.stringify({ prod: { host: '127.0.0.1', username: 'deploy', agent: true } }));
    writeFileSync(join(infraDir, 'policy.json'), JSON.stringify({ ssh: { allow_targets: ['staging'] } }));

    const before = await infra(['doctor', '--project', dir]);
    assert.equal(before.status, 1, before.stdout);
    assert.match(before.stdout, /\[FAIL\] postgres app-db: missing_credentials \(env:DATABASE_URL\)/);
    assert.match(before.stdout, /fix: set DATABASE_URL in infra's environment/);
    assert.match(before.stdout, /\[FAIL\] http api: missing_credentials \(secret:API_TOKEN\)/);
    assert.match(before.stdout, /fix: infra secrets set API_TOKEN/);
    assert.match(before.stdout, /\[warn\] ssh prod: disabled \(ssh\.allow_targets\)/);
    assert.match(before.stdout, /some checks failed/);

    const set = await infra(['--project', dir, 'secrets', 'set', 'API_TOKEN'], 'doctor-token-31415926\n');
    assert.equal(set.status, 0, set.stderr);

    const json = await infra(['doctor', '--project', dir, '--json']);
    const report = JSON.parse(json.stdout) as {
      ok: boolean;
      checks: { name: string; status: string; detail: string }[];
      sections: { preflight: { items: { kind: string; name: string; status: string; missing?: string[]; latency_ms: number | null }[] } };
    };
    assert.equal(report.ok, false, 'app-db still lacks DATABASE_URL');
    const items = Object.fromEntries(report.sections.preflight.items.map((i) => [`${i.kind} ${i.name}`, i]));
    assert.equal(items['http api']!.status, 'ok', JSON.stringify(items['http api']));
    assert.equal(typeof items['http api']!.latency_ms, 'number');
    assert.deepEqual(items['postgres app-db']!.missing, ['env:DATABASE_URL']);
    assert.equal(items['ssh prod']!.status, 'disabled');
    assert.match(report.checks.find((c) => c.name === 'secrets')!.detail, /1 stored/);
    assert.ok(!json.stdout.includes('doctor-token-31415926'), 'doctor never prints a value');
  });
});
