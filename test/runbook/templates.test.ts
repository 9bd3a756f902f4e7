import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { Deferred, evaluate, render, shellQuote, truthy, walk, type Scope } from '../../src/toolsets/runbook/template.js';

const data: Record<string, unknown> = {
  input: { service: 'nginx', n: 3, flag: true, list: ['a', 'b'], obj: { k: 'v' }, evil: "x'; rm -rf / #" },
  steps: { q: { rows: [{ id: 7 }], exit_code: 0, stdout: 'ok\n' } },
  state: { hello: 'hi' },
};
const scope: Scope = { resolve: async (path) => walk(data, path) };

void describe('runbook templates', () => {
  void it('a whole-string template keeps its JSON type', async () => {
    assert.equal(await render('{{ input.n }}', scope), 3);
    assert.equal(await render('{{input.flag}}', scope), true);
    assert.deepEqual(await render('{{ input.list }}', scope), ['a', 'b']);
    assert.deepEqual(await render('{{ input.obj }}', scope), { k: 'v' });
    assert.equal(await render('{{ steps.q.rows.0.id }}', scope), 7);
  });

  void it('interpolates into longer strings as text (objects as JSON)', async () => {
    assert.equal(await render('svc={{ input.service }} n={{ input.n }}', scope), 'svc=nginx n=3');
    assert.equal(await render('o={{ input.obj }}', scope), 'o={"k":"v"}');
  });

  void it('an optional value that is absent leaves the argument out; inside text it is an error', async () => {
    assert.deepEqual(await render({ a: '{{ input.missing }}', b: 1 }, scope), { b: 1 });
    await assert.rejects(render('x {{ input.missing }}', scope), /has no value/);
  });

  void it('secret references ${…} stay literal', async () => {
    assert.equal(await render('${env:HOME} ${secret:X} {{ input.service }}', scope), '${env:HOME} ${secret:X} nginx');
  });

  void it('refuses anything but a dotted path in a template', async () => {
    await assert.rejects(render('{{ input.service | upper }}', scope), /not a path/);
    await assert.rejects(render('{{ process.env.HOME }}', scope), /not one of/);
  });

  void it('shell fields quote every interpolated value as one sh word', async () => {
    const out = (await render({ command: 'systemctl restart {{ input.evil }} && echo {{ input.n }}' }, scope, {
      shellFields: new Set(['command']),
    })) as {
      command: string;
    };
    assert.equal(out.command, `systemctl restart 'x'\\''; rm -rf / #' && echo '3'`);
    // sh sees exactly one argument
    const argv = execFileSync('/bin/sh', ['-c', `printf '%s\\n' ${shellQuote("a b'c; $(id) `x`")} | wc -l`], { encoding: 'utf8' });
    assert.equal(argv.trim(), '1');
    const echoed = execFileSync('/bin/sh', ['-c', `printf '%s' ${shellQuote("a b'c; $(id) `x`")}`], { encoding: 'utf8' });
    assert.equal(echoed, "a b'c; $(id) `x`");
    assert.throws(() => shellQuote('a\0b'), /NUL/);
  });

  void it('only the named top-level shell field is quoted', async () => {
    const out = await render({ command: '{{ input.service }}', cwd: '{{ input.service }}', args: ['{{ input.service }}'] }, scope, {
      shellFields: new Set(['command']),
    });
    assert.deepEqual(out, { command: "'nginx'", cwd: 'nginx', args: ['nginx'] });
  });

  void it('evaluates conditions: truthy, comparisons, !, && and ||', async () => {
    assert.equal(await evaluate('{{ steps.q.exit_code }} == 0', scope), true);
    assert.equal(await evaluate('{{ steps.q.exit_code }} != 0', scope), false);
    assert.equal(await evaluate('{{ input.n }} > 2 && {{ input.n }} <= 3', scope), true);
    assert.equal(await evaluate('{{ input.n }} >= 4 || {{ input.service }} == nginx', scope), true);
    assert.equal(await evaluate("{{ input.service }} == 'nginx'", scope), true);
    assert.equal(await evaluate('{{ input.missing }}', scope), false);
    assert.equal(await evaluate('!{{ input.missing }}', scope), true);
    assert.equal(await evaluate('{{ input.flag }}', scope), true);
    assert.equal(await evaluate(false, scope), false);
    assert.equal(await evaluate('{{ steps.q.stdout }} == "ok\\n"', scope), true);
  });

  void it('a dry run leaves conditions on steps not yet run undecided', async () => {
    const dry: Scope = { resolve: async (path) => (path[0] === 'steps' ? new Deferred(path.join('.')) : walk(data, path)) };
    assert.equal(await evaluate('{{ steps.x.exit_code }} == 0', dry), undefined);
    assert.equal(await render('echo {{ steps.x.stdout }}', dry), 'echo {{ steps.x.stdout }}');
  });

  void it('truthiness', () => {
    for (const v of [undefined, null, false, 0, '', 'false', '0', []]) assert.equal(truthy(v), false, JSON.stringify(v));
    for (const v of [true, 1, 'x', [1], {}]) assert.equal(truthy(v), true, JSON.stringify(v));
  });
});

void describe('MCP prompts built on runbooks', () => {
  void it('lists the prompts and renders one with the exact runbook call', async () => {
    const { listPrompts, getPrompt, PROMPTS } = await import('../../src/server/prompts.js');
    const names = listPrompts().prompts.map((p) => p.name);
    assert.deepEqual(names, ['diagnose_host', 'export_table', 'snapshot_repo', 'smoke_test']);
    const config = { config: { targets: {}, profiles: {} } } as unknown as Parameters<typeof getPrompt>[2];
    const r = getPrompt('diagnose_host', { target: 'prod' }, config);
    assert.match(r.messages[0]!.content.text, /"name":"ssh\.health","input":\{"target":"prod"\}/);
    assert.throws(() => getPrompt('diagnose_host', {}, config), /needs target/);
    assert.throws(() => getPrompt('nope', {}, config), /no prompt/);
    // every prompt names a built-in runbook that exists
    const { builtinRunbooks } = await import('../../src/toolsets/runbook/catalog.js');
    for (const p of PROMPTS) {
      const text = p.text({ target: 't', url: 'http://x', table: 'x' }, config);
      const used = [...text.matchAll(/"name":"([^"]+)"/g)].map((m) => m[1]!);
      assert.ok(used.length > 0 && used.every((n) => n in builtinRunbooks()), `${p.name}: ${used.join(', ')}`);
    }
  });
});
