import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bareRemote, git, initRepo, writeAndCommit } from '../fixtures/git.js';
import { fail, HELLO_WORLD, ok, runbookRig, type Json } from './helpers.js';

void describe('runbook: the seed hello.world and the run record', () => {
  void it('runs hello.world through mcp_state: one parent row, one child row, run.json linking the step', async () => {
    const rig = await runbookRig({ 'runbooks.json': HELLO_WORLD });
    try {
      const r = ok(await rig.run('hello.world', { message: 'hi' }));
      assert.equal(r.result.status, 'ok');
      assert.equal(r.result.run_uri, `artifact://runs/hello.world/${r.call_id}/run.json`);
      assert.equal(rig.rt.services.state.get('hello')?.value, 'hi');
      const kids = rig.children(r.call_id);
      assert.deepEqual(
        kids.map((k) => `${k.tool}.${k.action}:${k.status}`),
        ['state.set:ok'],
      );
      const doc = rig.runDoc('hello.world', r.call_id);
      assert.equal(doc.status, 'ok');
      assert.equal(doc.steps[0]!.call_id, kids[0]!.id);
      assert.equal(doc.steps[0]!.tool, 'state');
      assert.deepEqual(doc.steps[0]!.args, { action: 'set', key: 'hello', value: 'hi' });
      assert.equal(doc.steps[0]!.artifact, `artifact://calls/${kids[0]!.id}/`);
      // the run artifact is readable through the artifacts tool
      const read = ok(await rig.rt.call('artifacts', { action: 'get', uri: r.result.run_uri, max_bytes: 65536 }));
      assert.match(JSON.stringify(read.result), /hello\.world/);
      const parent = rig.rt.services.audit.get(r.call_id)!;
      assert.equal(parent.status, 'ok');
      assert.equal(parent.tool, 'runbook');
    } finally {
      await rig.close();
    }
  });

  void it('a step failing mid-way stops the run; run.json and audit rows show exactly what ran, with inputs and outputs', async () => {
    const rig = await runbookRig({
      'runbooks.json': {
        'three.steps': {
          description: 'set, read a missing key, set again',
          inputs: { who: { type: 'string', required: true } },
          steps: [
            { id: 'first', tool: 'state', args: { action: 'set', key: 'a', value: { who: '{{ input.who }}', n: 1 } } },
            { id: 'missing', tool: 'state', args: { action: 'get', key: 'no-such-{{ steps.first.value.who }}' } },
            { id: 'never', tool: 'state', args: { action: 'set', key: 'b', value: 2 } },
          ],
        },
      },
    });
    try {
      const e = fail(await rig.run('three.steps', { who: 'ann' }), 'NOT_FOUND');
      assert.match(e.error.message, /step missing \(state\.get\) failed/);
      const details = e.error.details as { run_uri: string; failed_step: string };
      assert.equal(details.failed_step, 'missing');
      const doc = rig.runDoc('three.steps', e.call_id);
      assert.equal(doc.status, 'failed');
      assert.deepEqual(
        doc.steps.map((s) => `${s.id}:${s.status}`),
        ['first:ok', 'missing:failed', 'never:not_run'],
      );
      assert.deepEqual(doc.steps[0]!.result?.value, { who: 'ann', n: 1 });
      assert.deepEqual(doc.steps[1]!.args, { action: 'get', key: 'no-such-ann' });
      assert.equal(doc.steps[1]!.error?.code, 'NOT_FOUND');
      assert.equal(doc.steps[2]!.call_id, undefined);
      const kids = rig.children(e.call_id);
      assert.deepEqual(
        kids.map((k) => `${k.tool}.${k.action}:${k.status}`),
        ['state.set:ok', 'state.get:error'],
      );
      assert.deepEqual(JSON.parse(kids[1]!.args!), { action: 'get', key: 'no-such-ann' });
      assert.equal(rig.rt.services.audit.get(e.call_id)!.status, 'error');
      assert.equal(rig.rt.services.state.get('b'), undefined);
    } finally {
      await rig.close();
    }
  });

  void it('continue_on_error, when and _status let a run go on past a failed step', async () => {
    const rig = await runbookRig({
      'runbooks.json': {
        'go.on': {
          inputs: { skip: { type: 'boolean', default: false } },
          steps: [
            { id: 'bad', tool: 'state', args: { action: 'get', key: 'nothing' }, continue_on_error: true },
            {
              id: 'after',
              tool: 'state',
              when: "{{ steps.bad._status }} == 'failed'",
              args: { action: 'set', key: 'after', value: '{{ steps.bad._error.code }}' },
            },
            { id: 'skipped', tool: 'state', when: '{{ input.skip }}', args: { action: 'set', key: 'skipped', value: 1 } },
          ],
        },
      },
    });
    try {
      const r = ok(await rig.run('go.on'));
      assert.equal(r.result.status, 'completed_with_errors');
      assert.deepEqual(
        r.result.steps.map((s) => `${s.id}:${s.status}`),
        ['bad:failed', 'after:ok', 'skipped:skipped'],
      );
      assert.equal(rig.rt.services.state.get('after')?.value, 'NOT_FOUND');
      assert.equal(rig.children(r.call_id).length, 2);
    } finally {
      await rig.close();
    }
  });

  void it('secret references in runbook text are never resolved', async () => {
    const rig = await runbookRig(
      {
        'runbooks.json': {
          'secret.literal': {
            steps: [
              { id: 's', tool: 'state', args: { action: 'set', key: 'k', value: '${env:RB_TEST_SECRET} ${secret:X} ${RB_TEST_SECRET}' } },
            ],
          },
        },
      },
      { RB_TEST_SECRET: 'hunter2-do-not-leak' },
    );
    try {
      ok(await rig.run('secret.literal'));
      assert.equal(rig.rt.services.state.get('k')?.value, '${env:RB_TEST_SECRET} ${secret:X} ${RB_TEST_SECRET}');
    } finally {
      await rig.close();
    }
  });

  void it('refuses unknown and missing inputs, and wrong input types, before anything runs', async () => {
    const rig = await runbookRig({ 'runbooks.json': HELLO_WORLD });
    try {
      fail(await rig.run('hello.world', {}), 'INVALID_ARGUMENT');
      const e = fail(await rig.run('hello.world', { message: 'x', mesage: 'typo' }), 'INVALID_ARGUMENT');
      assert.match(e.error.message, /unknown input "mesage"/);
      const t = fail(await rig.run('repo.snapshot', { max_count: 'ten' }), 'INVALID_ARGUMENT');
      assert.match(t.error.message, /max_count" must be an integer/);
      fail(await rig.run('no.such.runbook'), 'NOT_FOUND');
      assert.equal(rig.rt.services.audit.list({ tool: 'state', limit: 10 }).length, 0);
    } finally {
      await rig.close();
    }
  });
});

void describe('runbook: list, get, validate, upsert, delete, help', () => {
  void it('lists built-ins and project runbooks; a project runbook overrides a built-in by name', async () => {
    const override = { 'repo.snapshot': { description: 'my own snapshot', steps: [{ id: 'x', tool: 'state', args: { action: 'list' } }] } };
    const rig = await runbookRig({ 'runbooks.json': { ...HELLO_WORLD, ...override } });
    try {
      const all = ok(await rig.call({ action: 'list' })).result.runbooks as Json[];
      const names = all.map((r) => r.name);
      for (const n of [
        'repo.snapshot',
        'ssh.system_info',
        'ssh.health',
        'http.check',
        'pg.health',
        'db.export.table',
        'vps.service.restart',
        'smoke.target.baseline',
        'hello.world',
      ]) {
        assert.ok(names.includes(n), `${n} listed`);
      }
      const snap = all.find((r) => r.name === 'repo.snapshot')!;
      assert.equal(snap.source, 'project');
      assert.equal(snap.overrides_builtin, true);
      assert.equal(snap.description, 'my own snapshot');
      const q = ok(await rig.call({ action: 'list', query: 'repo', limit: 5 })).result.runbooks as Json[];
      assert.deepEqual(
        q.map((r) => r.name),
        ['repo.snapshot'],
      );
      const tagged = ok(await rig.call({ action: 'list', tag: 'ssh' })).result.runbooks as Json[];
      assert.ok(tagged.every((r) => (r.tags as string[]).includes('ssh')) && tagged.length >= 3);
      const got = ok(await rig.call({ action: 'get', name: 'vps.service.restart' })).result;
      assert.equal(got.source, 'builtin');
      assert.equal(got.effect, 'write');
      const help = ok(await rig.rt.call('help', { query: 'runbook', limit: 50 })).result as unknown as { matches: Json[] };
      assert.ok(help.matches.some((m) => m.kind === 'runbook' && m.name === 'hello.world'));
      const h2 = ok(await rig.rt.call('help', { query: 'export table' })).result as unknown as { matches: Json[] };
      assert.ok(h2.matches.some((m) => m.kind === 'runbook' && m.name === 'db.export.table'));
    } finally {
      await rig.close();
    }
  });

  void it('validate names the step and field at fault', async () => {
    const rig = await runbookRig();
    try {
      const bad = {
        inputs: ['svc'],
        steps: [
          { id: 'a', tool: 'nosuchtool', args: {} },
          { id: 'b', tool: 'ssh', args: { action: 'exec', target: 't', comand: 'x' } },
          { id: 'c', tool: 'state', args: { action: 'set', key: '{{ input.service }}', value: '{{ steps.d.stdout }}' } },
          { id: 'd', tool: 'state', args: { action: 'get', key: 5 } },
          { id: 'e', tool: 'state', args: { action: 'fly' } },
        ],
      };
      const r = ok(await rig.call({ action: 'validate', runbook: bad })).result as unknown as {
        valid: boolean;
        errors: { step: string; field: string; message: string }[];
      };
      assert.equal(r.valid, false);
      const at = (step: string, field: string): string | undefined => r.errors.find((e) => e.step === step && e.field === field)?.message;
      assert.match(at('a', 'tool')!, /unknown tool "nosuchtool"/);
      assert.match(at('b', 'args.comand')!, /no argument "comand"/);
      assert.match(at('c', 'args')!, /input "service", which the runbook does not declare/);
      assert.ok(r.errors.some((e) => e.step === 'c' && /step "d", which does not run before/.test(e.message)));
      assert.ok(at('d', 'args.key'));
      assert.match(at('e', 'args.action')!, /no action "fly"/);
      const schemaBad = ok(
        await rig.call({ action: 'validate', runbook: { steps: [{ id: 'x', tool: 'state', args: {}, retry: { max_attempts: 'lots' } }] } }),
      ).result as unknown as { errors: { step: string; field: string }[] };
      assert.deepEqual(
        schemaBad.errors.map((e) => `${e.step}:${e.field}`),
        ['x:retry.max_attempts'],
      );
      const good = ok(await rig.call({ action: 'validate', name: 'smoke.target.baseline' })).result;
      assert.equal(good.valid, true);
      assert.equal(good.effect, 'write');
    } finally {
      await rig.close();
    }
  });

  void it('upsert writes runbooks.json atomically, keeps other entries, refuses bad names and bodies; delete removes', async () => {
    const rig = await runbookRig({ 'runbooks.json': { $schema: '../schemas/runbooks.schema.json', ...HELLO_WORLD } });
    try {
      const body = {
        description: 'Set a flag.',
        tags: ['test'],
        inputs: ['v'],
        steps: [{ id: 's', tool: 'mcp_state', args: { action: 'set', key: 'flag', value: '{{ input.v }}' } }],
      };
      const up = ok(await rig.call({ action: 'upsert', name: 'set.flag', runbook: body }));
      assert.equal(up.result.created, true);
      const file = JSON.parse(readFileSync(join(rig.project.infraDir, 'runbooks.json'), 'utf8')) as Json;
      assert.deepEqual(Object.keys(file).sort(), ['$schema', 'hello.world', 'set.flag']);
      ok(await rig.run('set.flag', { v: 42 }));
      assert.equal(rig.rt.services.state.get('flag')?.value, 42);
      // a reload reads the same file
      rig.rt.reload();
      assert.equal(rig.rt.services.config.runbooks['set.flag']?.description, 'Set a flag.');
      fail(await rig.call({ action: 'upsert', name: '../evil', runbook: body }), 'INVALID_ARGUMENT');
      fail(await rig.call({ action: 'upsert', name: 'has space', runbook: body }), 'INVALID_ARGUMENT');
      const invalid = fail(
        await rig.call({ action: 'upsert', name: 'broken', runbook: { steps: [{ id: 's', tool: 'state', args: { action: 'nope' } }] } }),
        'INVALID_ARGUMENT',
      );
      assert.match(invalid.error.message, /step s, args\.action/);
      const del = ok(await rig.call({ action: 'delete', name: 'set.flag' }));
      assert.equal(del.result.deleted, true);
      fail(await rig.run('set.flag', { v: 1 }), 'NOT_FOUND');
      fail(await rig.call({ action: 'delete', name: 'repo.snapshot' }), 'NOT_FOUND');
      const left = JSON.parse(readFileSync(join(rig.project.infraDir, 'runbooks.json'), 'utf8')) as Json;
      assert.deepEqual(Object.keys(left).sort(), ['$schema', 'hello.world']);
      const rows = rig.rt.services.audit.list({ tool: 'runbook', action: 'upsert', limit: 10 });
      assert.deepEqual(rows.map((r) => r.status).sort(), ['invalid', 'invalid', 'invalid', 'ok']);
    } finally {
      await rig.close();
    }
  });

  void it('upsert refuses to overwrite a runbooks.json it cannot parse', async () => {
    const rig = await runbookRig({ 'runbooks.json': '{ "broken": ' });
    try {
      const e = fail(
        await rig.call({ action: 'upsert', name: 'x', runbook: { steps: [{ id: 's', tool: 'state', args: { action: 'list' } }] } }),
        'INVALID_ARGUMENT',
      );
      assert.match(e.error.message, /refusing to overwrite/);
      assert.equal(readFileSync(join(rig.project.infraDir, 'runbooks.json'), 'utf8'), '{ "broken": ');
    } finally {
      await rig.close();
    }
  });
});

void describe('runbook: read-only mode and confirmation', () => {
  void it('INFRA_READ_ONLY refuses a runbook with a writing step before its first step; read-only runbooks and dry runs still run', async () => {
    const rig = await runbookRig(
      {
        'runbooks.json': {
          ...HELLO_WORLD,
          'read.then.write': {
            steps: [
              { id: 'r', tool: 'state', args: { action: 'list' } },
              { id: 'w', tool: 'state', args: { action: 'set', key: 'x', value: 1 } },
            ],
          },
        },
      },
      { INFRA_READ_ONLY: '1' },
    );
    try {
      const e = fail(await rig.run('read.then.write'), 'DENIED');
      assert.match(e.error.message, /INFRA_READ_ONLY=1: w \(state\.set: write\)/);
      assert.equal(rig.children(e.call_id).length, 0);
      assert.equal(rig.rt.services.audit.get(e.call_id)!.status, 'denied');
      fail(
        await rig.call({ action: 'upsert', name: 'x', runbook: { steps: [{ id: 's', tool: 'state', args: { action: 'list' } }] } }),
        'DENIED',
      );
      const dry = ok(await rig.run('hello.world', { message: 'm' }, { dry_run: true }));
      assert.equal(dry.result.status, 'dry_run');
      assert.equal(rig.children(dry.call_id).length, 0);
      assert.deepEqual(dry.result.steps[0]!.args, { action: 'set', key: 'hello', value: 'm' });
      assert.equal(rig.rt.services.state.get('hello'), undefined);
    } finally {
      await rig.close();
    }
  });

  void it('an irreversible runbook asks once before it starts; its steps are not asked again', async () => {
    const rig = await runbookRig({
      'policy.json': { repo: { write: true } },
      'runbooks.json': {
        'push.twice': {
          inputs: { repo: { type: 'string', required: true } },
          steps: [
            { id: 'one', tool: 'repo', args: { action: 'push', repo_path: '{{ input.repo }}' } },
            { id: 'two', tool: 'mcp_repo', args: { action: 'push', repo_path: '{{ input.repo }}' } },
          ],
        },
      },
    });
    try {
      const repo = join(rig.project.root, 'app');
      initRepo(repo);
      bareRemote(repo);
      git(repo, 'push', '-q', '-u', 'origin', 'main');
      writeAndCommit(repo, 'b.txt', 'b\n', 'second');
      const denied = fail(await rig.run('push.twice', { repo: 'app' }), 'DENIED');
      assert.match(denied.error.message, /runbook\.run needs the user's confirmation/);
      assert.equal(rig.children(denied.call_id).length, 0);
      const asked: string[] = [];
      const r = ok(
        await rig.run(
          'push.twice',
          { repo: 'app' },
          {},
          {
            confirm: async (req) => {
              asked.push(req.key);
              return true;
            },
          },
        ),
      );
      assert.deepEqual(asked, ['runbook.run']);
      assert.deepEqual(
        rig.children(r.call_id).map((k) => `${k.tool}.${k.action}:${k.status}`),
        ['repo.push:ok', 'repo.push:ok'],
      );
      assert.equal(ok(await rig.call({ action: 'get', name: 'push.twice' })).result.effect, 'irreversible');
    } finally {
      await rig.close();
    }
  });
});

void describe('runbook: step controls with local steps', () => {
  void it('retry until, foreach (serial and parallel), and a template reading a step output past the inline cap from its artifact', async () => {
    const rig = await runbookRig(
      {
        'runbooks.json': {
          controls: {
            inputs: { hosts: { type: 'array', required: true } },
            steps: [
              {
                id: 'count',
                tool: 'local',
                args: {
                  action: 'exec',
                  shell: true,
                  command: 'n=$(cat counter 2>/dev/null || echo 0); n=$((n+1)); echo $n > counter; printf %s $n',
                  cwd: '{{ state.workdir }}',
                },
                retry: { max_attempts: 5, delay_ms: 10, until: '{{ result.stdout }} == 3' },
              },
              {
                id: 'each',
                tool: 'state',
                foreach: '{{ input.hosts }}',
                args: { action: 'set', key: 'host-{{ index }}', value: { name: '{{ item }}', count: '{{ steps.count.stdout }}' } },
              },
              {
                id: 'par',
                tool: 'local',
                foreach: { items: ['1', '2', '3', '4'], parallel: 2 },
                args: { action: 'exec', command: 'sh', args: ['-c', 'echo item-$0', '{{ item }}'] },
                assert: '{{ result.exit_code }} == 0',
              },
              { id: 'big', tool: 'local', args: { action: 'exec', command: 'head', args: ['-c', '100000', '/dev/zero'] } },
              { id: 'tr', tool: 'local', args: { action: 'exec', command: 'tr', args: ['\\000', 'x'], stdin: '{{ steps.big.stdout }}' } },
              { id: 'keep', tool: 'state', args: { action: 'set', key: 'big-len', value: '{{ steps.tr.stdout.length }}' } },
              { id: 'second', tool: 'state', args: { action: 'set', key: 'par1', value: '{{ steps.par.1.stdout }}' } },
            ],
          },
        },
      },
      { INFRA_UNSAFE_LOCAL: '1' },
    );
    try {
      const work = join(rig.project.root, 'work');
      mkdirSync(work);
      rig.rt.services.state.set('workdir', work);
      const r = ok(await rig.run('controls', { hosts: ['web1', 'web2'] }));
      const byId = Object.fromEntries(r.result.steps.map((s) => [s.id, s]));
      assert.equal(byId.count!.status, 'ok');
      assert.equal(byId.count!.attempts, 3);
      assert.equal(readFileSync(join(work, 'counter'), 'utf8').trim(), '3');
      assert.deepEqual(rig.rt.services.state.get('host-1')?.value, { name: 'web2', count: '3' });
      assert.deepEqual(rig.rt.services.state.get('host-0')?.value, { name: 'web1', count: '3' });
      assert.equal(byId.par!.status, 'ok');
      assert.equal((byId.par!.items as unknown[]).length, 4);
      assert.equal(rig.rt.services.state.get('par1')?.value, 'item-2\n');
      // 100000 bytes went through the template whole, not the 16 KiB inline copy
      assert.equal(rig.rt.services.state.get('big-len')?.value, 100000);
      const kids = rig.children(r.call_id);
      assert.equal(kids.filter((k) => k.tool === 'local').length, 3 + 4 + 2);
      const doc = rig.runDoc('controls', r.call_id);
      assert.equal(doc.steps.find((s) => s.id === 'count')!.attempts!.length, 3);
    } finally {
      await rig.close();
    }
  });

  void it('a template past limits.template_max_bytes fails the step clearly', async () => {
    const rig = await runbookRig(
      {
        'policy.json': { limits: { template_max_bytes: 50000 } },
        'runbooks.json': {
          bounded: {
            steps: [
              { id: 'big', tool: 'local', args: { action: 'exec', command: 'head', args: ['-c', '100000', '/dev/zero'] } },
              { id: 'use', tool: 'state', args: { action: 'set', key: 'v', value: '{{ steps.big.stdout }}' } },
            ],
          },
        },
      },
      { INFRA_UNSAFE_LOCAL: '1' },
    );
    try {
      const e = fail(await rig.run('bounded'), 'LIMIT_EXCEEDED');
      assert.match(e.error.message, /step use .*100000 bytes, over the 50000-byte template bound/);
      assert.equal(rig.rt.services.state.get('v'), undefined);
    } finally {
      await rig.close();
    }
  });

  void it('local steps are refused before the first step without INFRA_UNSAFE_LOCAL', async () => {
    const rig = await runbookRig({
      'runbooks.json': {
        loc: {
          steps: [
            { id: 's', tool: 'state', args: { action: 'set', key: 'x', value: 1 } },
            { id: 'l', tool: 'mcp_local', args: { action: 'exec', command: 'id' } },
          ],
        },
      },
    });
    try {
      const e = fail(await rig.run('loc'), 'DENIED');
      assert.match(e.error.message, /step l \(local\.exec\) is refused/);
      assert.equal(rig.rt.services.state.get('x'), undefined);
    } finally {
      await rig.close();
    }
  });

  void it('async runs as a job with step status; cancel stops the current step and records the run as cancelled', async () => {
    const rig = await runbookRig(
      {
        'runbooks.json': {
          slow: {
            steps: [
              { id: 'mark', tool: 'state', args: { action: 'set', key: 'started', value: true } },
              { id: 'sleep', tool: 'local', args: { action: 'exec', command: 'sleep', args: ['60'] } },
              { id: 'after', tool: 'state', args: { action: 'set', key: 'after', value: true } },
            ],
          },
        },
      },
      { INFRA_UNSAFE_LOCAL: '1' },
    );
    try {
      const start = ok(await rig.call({ action: 'run', name: 'slow', async: true }));
      const jobId = (start.result as unknown as { job_id: string }).job_id;
      let steps: { id: string; status: string }[] = [];
      for (let i = 0; i < 200; i++) {
        const st = ok(await rig.rt.call('jobs', { action: 'status', job_id: jobId })).result as unknown as {
          steps?: { id: string; status: string }[];
        };
        steps = st.steps ?? [];
        if (steps.find((s) => s.id === 'sleep')?.status === 'running') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(steps.find((s) => s.id === 'sleep')?.status, 'running', JSON.stringify(steps));
      const c = ok(await rig.rt.call('jobs', { action: 'cancel', job_id: jobId })).result as unknown as { status: string };
      assert.equal(c.status, 'cancelled');
      const doc = rig.runDoc('slow', start.call_id);
      assert.equal(doc.status, 'cancelled');
      assert.deepEqual(
        doc.steps.map((s) => `${s.id}:${s.status}`),
        ['mark:ok', 'sleep:cancelled', 'after:cancelled'],
      );
      const kids = rig.children(start.call_id);
      assert.deepEqual(
        kids.map((k) => `${k.tool}.${k.action}:${k.status}`),
        ['state.set:ok', 'local.exec:cancelled'],
      );
      assert.equal(rig.rt.services.state.get('after'), undefined);
    } finally {
      await rig.close();
    }
  });

  void it('a runbook may not run itself', async () => {
    const rig = await runbookRig({
      'runbooks.json': { loop: { steps: [{ id: 'again', tool: 'runbook', args: { action: 'run', name: 'loop' } }] } },
    });
    try {
      const e = fail(await rig.run('loop'));
      assert.match(e.error.message, /runs itself through loop → loop/);
    } finally {
      await rig.close();
    }
  });
});

void describe('runbook: intents from capabilities.json', () => {
  const caps = {
    version: 1,
    capabilities: {
      'snapshot.git': { intent: 'snapshot', runbook: 'repo.snapshot', when: { git: true }, inputs: { max_count: 2 } },
      'snapshot.node': { intent: 'snapshot', runbook: 'hello.world', when: { node: true }, inputs: { message: 'node project' } },
      'files.only': {
        intent: 'needs-files',
        runbook: 'hello.world',
        when: { files: ['deploy/app.yaml'] },
        inputs: { message: 'has deploy' },
      },
    },
  };

  void it('matches when against the project files; an ambiguous intent lists the candidates', async () => {
    const rig = await runbookRig({ 'runbooks.json': HELLO_WORLD, 'capabilities.json': caps });
    try {
      initRepo(rig.project.root);
      const r = ok(await rig.call({ action: 'run', intent: 'snapshot', input: {} }));
      assert.equal(r.result.runbook, 'repo.snapshot');
      assert.equal(r.result.capability, 'snapshot.git');
      assert.deepEqual(r.result.input, { repo_path: '.', max_count: 2 });
      writeFileSync(join(rig.project.root, 'package.json'), '{}');
      const amb = fail(await rig.call({ action: 'run', intent: 'snapshot' }), 'INVALID_ARGUMENT');
      assert.match(amb.error.message, /ambiguous.*snapshot\.git → repo\.snapshot.*snapshot\.node → hello\.world/);
      const none = fail(await rig.call({ action: 'run', intent: 'needs-files' }), 'NOT_FOUND');
      assert.match(none.error.hint ?? '', /git/);
      mkdirSync(join(rig.project.root, 'deploy'));
      writeFileSync(join(rig.project.root, 'deploy', 'app.yaml'), 'x: 1\n');
      ok(await rig.call({ action: 'run', intent: 'needs-files' }));
      assert.equal(rig.rt.services.state.get('hello')?.value, 'has deploy');
      fail(await rig.call({ action: 'run', intent: 'unknown-intent' }), 'NOT_FOUND');
      assert.ok(existsSync(join(rig.project.infraDir, 'artifacts', 'runs', 'repo.snapshot')));
    } finally {
      await rig.close();
    }
  });
});
