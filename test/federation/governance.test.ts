// Federation through the runtime (in process): allow/deny globs, tools off by default, approval
// pins and blocks, hidden characters, secret scoping, policy, validation, timeout/cancel
// forwarded upstream, upstream errors, against our fixture and the npm reference servers.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listTools } from '../../src/server/tool-list.js';
import { createRuntime, type Runtime } from '../../src/exec/runtime.js';
import { everythingServer, fixtureServer, memoryServer, rig, uniq, until, type Rig } from './helpers.js';

type Env = Record<string, unknown> & {
  ok: boolean;
  error?: { code: string; message: string; hint?: string };
  result?: Record<string, unknown>;
};
const call = async (rt: Runtime, name: string, args: unknown, opts = {}): Promise<Env> =>
  (await rt.call(name, args as Record<string, unknown>, opts)) as unknown as Env;
const listed = (rt: Runtime): string[] => listTools(rt.pipeline.tools(), rt.services).map((t) => t.name);
const textOf = (e: Env): string => JSON.stringify(e.result ?? e.error);
const toolState = (rt: Runtime, server: string, tool: string): string | undefined =>
  rt
    .serverStatuses()
    .find((s) => s.name === server)
    ?.tools.find((t) => t.tool === tool)?.state;
const auditRows = (rt: Runtime, tool: string): { status: string; action: string | null; summary: string | null }[] =>
  rt.services.audit.list({ tool, limit: 50 });

void describe('allow/deny globs and default-off (server-everything from npm)', () => {
  let r: Rig;
  before(async () => {
    r = await rig({
      ev: everythingServer(uniq('ev'), { tools: { allow: ['echo', 'get-*'], deny: ['get-env', 'get-tiny-*'] } }),
      off: everythingServer(uniq('off')),
    });
  });
  after(() => r.close());

  void it('an unapproved server exposes nothing and says it is pending approval', async () => {
    await r.rt.federation.connect('ev');
    assert.equal(r.rt.serverStatuses().find((s) => s.name === 'ev')?.status, 'pending_approval');
    assert.ok(!listed(r.rt).some((n) => n.startsWith('ev__')));
    const e = await call(r.rt, 'ev__echo', { message: 'x' });
    assert.equal(e.error?.code, 'DENIED');
    assert.match(e.error!.message, /pending approval/);
    assert.match(e.error!.hint!, /infra servers approve ev/);
    assert.equal(auditRows(r.rt, 'ev__echo')[0]?.status, 'denied');
  });

  void it('after approval exactly the allowed tools are listed (deny wins), with their own schemas and annotations', async () => {
    r.rt.federation.approve('ev');
    const names = listed(r.rt).filter((n) => n.startsWith('ev__'));
    assert.deepEqual(names.sort(), [
      'ev__echo',
      'ev__get-annotated-message',
      'ev__get-resource-links',
      'ev__get-resource-reference',
      'ev__get-structured-content',
      'ev__get-sum',
    ]);
    const echo = listTools(r.rt.pipeline.tools(), r.rt.services).find((t) => t.name === 'ev__echo')!;
    assert.equal(echo.inputSchema.type, 'object');
    assert.deepEqual(Object.keys(echo.inputSchema.properties ?? {}), ['message']);
    assert.ok(!('$schema' in echo.inputSchema));
    assert.equal(echo.annotations?.readOnlyHint, true);
    const denied = await call(r.rt, 'ev__get-env', {});
    assert.equal(denied.error?.code, 'DENIED');
    assert.match(denied.error!.message, /not enabled.*denies/);
  });

  void it('a call runs through the pipeline: envelope, call.json, result.json, audit row', async () => {
    const e = await call(r.rt, 'ev__get-sum', { a: 2, b: 3 });
    assert.equal(e.ok, true, textOf(e));
    assert.match(textOf(e), /5/);
    const dir = join(r.rt.project.artifactsDir, 'calls', e.call_id as string);
    assert.ok(existsSync(join(dir, 'call.json')));
    assert.match(readFileSync(join(dir, 'result.json'), 'utf8'), /5/);
    const row = auditRows(r.rt, 'ev__get-sum')[0]!;
    assert.equal(row.status, 'ok');
    assert.equal(row.action, 'call');
    assert.equal((await r.rt.services.audit.verify()).ok, true);
  });

  void it('arguments are validated against the upstream inputSchema before anything runs', async () => {
    const e = await call(r.rt, 'ev__get-sum', { a: 'two' });
    assert.equal(e.error?.code, 'INVALID_ARGUMENT');
    assert.equal(auditRows(r.rt, 'ev__get-sum')[0]?.status, 'invalid');
  });

  void it('tools are off by default: a server with no tools.allow exposes none even when approved', async () => {
    await r.rt.federation.connect('off');
    r.rt.federation.approve('off');
    assert.ok(!listed(r.rt).some((n) => n.startsWith('off__')));
    const st = r.rt.serverStatuses().find((s) => s.name === 'off')!;
    assert.equal(st.status, 'connected');
    assert.ok(st.tools.length > 5 && st.tools.every((t) => t.state === 'not_allowed'));
    const e = await call(r.rt, 'off__echo', { message: 'x' });
    assert.equal(e.error?.code, 'DENIED');
    assert.match(e.error!.hint!, /off by default/);
  });
});

void describe('trust on first use: pins, changed definitions, new tools, hidden characters', () => {
  let r: Rig;
  before(async () => {
    r = await rig({
      fx: fixtureServer(uniq('fx'), { FIXTURE_MUTATE: '1' }, { tools: { allow: ['*'] } }),
      hid: fixtureServer(uniq('hid'), { FIXTURE_HIDDEN: '1' }, { tools: { allow: ['*'] } }),
    });
  });
  after(() => r.close());

  void it('a changed tool description blocks that tool until it is approved again, and the block is audited', async () => {
    await r.rt.federation.connect('fx');
    r.rt.federation.approve('fx');
    assert.ok(listed(r.rt).includes('fx__greet'));
    let changes = 0;
    const off = r.rt.federation.onToolsChanged(() => changes++);
    const first = await call(r.rt, 'fx__greet', { name: 'ada' });
    assert.equal(first.ok, true, textOf(first));
    // the fixture now rewrites greet's description and sends notifications/tools/list_changed
    await until(() => toolState(r.rt, 'fx', 'greet') === 'changed', 'greet blocked after list_changed');
    assert.ok(changes > 0, 'the change is forwarded to the server (toolsChanged)');
    off();
    assert.ok(!listed(r.rt).includes('fx__greet'));
    assert.ok(listed(r.rt).includes('fx__note'), 'only the changed tool is blocked');
    const blocked = await call(r.rt, 'fx__greet', { name: 'ada' });
    assert.equal(blocked.error?.code, 'DENIED');
    assert.match(blocked.error!.message, /blocked: .*description changed/);
    const rows = auditRows(r.rt, 'fx__greet');
    assert.ok(
      rows.some((x) => x.action === 'pin_check' && x.status === 'denied'),
      'the block itself is an audit row',
    );
    assert.equal(rows[0]?.status, 'denied');
    const diff = r.rt.federation.diff('fx');
    assert.deepEqual(
      diff.changed.map((c) => c.tool),
      ['greet'],
    );
    r.rt.federation.approve('fx');
    assert.ok(listed(r.rt).includes('fx__greet'));
    assert.equal((await call(r.rt, 'fx__greet', { name: 'bo' })).ok, true);
    assert.ok(auditRows(r.rt, 'servers').some((x) => x.action === 'approve'));
  });

  void it('a description with a hidden character is refused (not listed, not pinned, not callable)', async () => {
    await r.rt.federation.connect('hid');
    const res = r.rt.federation.approve('hid');
    assert.deepEqual(
      res.refused.map((x) => x.tool),
      ['sneaky'],
    );
    assert.match(res.refused[0]!.reason, /U\+200B/);
    assert.equal(toolState(r.rt, 'hid', 'sneaky'), 'hidden_characters');
    assert.ok(listed(r.rt).includes('hid__greet'));
    assert.ok(!listed(r.rt).includes('hid__sneaky'));
    const e = await call(r.rt, 'hid__sneaky', {});
    assert.equal(e.error?.code, 'DENIED');
    assert.match(e.error!.message, /hidden character \(U\+200B in description\)/);
  });
});

void describe('tools first seen after approval start disabled', () => {
  void it('a new upstream tool waits for approval; the others stay exposed', async () => {
    const marker = uniq('late');
    const r = await rig({ fx: fixtureServer(marker, {}, { tools: { allow: ['*'] } }) });
    try {
      await r.rt.federation.connect('fx');
      r.rt.federation.approve('fx');
      // the server now brings a tool it did not have when it was approved
      r.p.write('servers.json', { mcpServers: { fx: fixtureServer(marker, { FIXTURE_EXTRA: '1' }, { tools: { allow: ['*'] } }) } });
      r.rt.reload({ keepLastGood: true });
      await r.rt.federation.connect('fx');
      assert.equal(toolState(r.rt, 'fx', 'extra'), 'pending_approval');
      assert.ok(listed(r.rt).includes('fx__greet'));
      assert.ok(!listed(r.rt).includes('fx__extra'));
      const e = await call(r.rt, 'fx__extra', {});
      assert.equal(e.error?.code, 'DENIED');
      assert.match(e.error!.message, /appeared after the server was approved/);
    } finally {
      await r.close();
    }
  });
});

void describe('secrets are scoped to the server that declares them', () => {
  const token = 'tok-A-7f3a9c1e5b2d4f60';
  let r: Rig;
  before(async () => {
    r = await rig(
      {
        a: fixtureServer(uniq('a'), { FIXTURE_SECRET: '${env:A_TOKEN}' }, { tools: { allow: ['*'] } }),
        b: everythingServer(uniq('b'), { tools: { allow: ['get-env'] } }),
        c: fixtureServer(uniq('c'), {}, { tools: { allow: ['env'] }, inherit_env: ['LANG_FOR_TEST'] }),
      },
      { env: { A_TOKEN: token, OTHER_SECRET: 'other-secret-value-123', LANG_FOR_TEST: 'xx' } },
    );
    for (const s of ['a', 'b', 'c']) {
      await r.rt.federation.connect(s);
      r.rt.federation.approve(s);
    }
  });
  after(() => r.close());

  void it("server B's environment has neither A's secret nor infra's other variables (PATH and HOME only)", async () => {
    const e = await call(r.rt, 'b__get-env', {});
    assert.equal(e.ok, true, textOf(e));
    const text = textOf(e);
    assert.ok(!text.includes(token) && !text.includes('A_TOKEN') && !text.includes('OTHER_SECRET'), text);
    assert.match(text, /PATH/);
    const c = await call(r.rt, 'c__env', {});
    assert.match(textOf(c), /LANG_FOR_TEST/, 'inherit_env lists extra variables to pass');
    assert.ok(!textOf(c).includes('OTHER_SECRET'));
  });

  void it('server A gets its own secret, and what it sends back is redacted in the reply and the artifacts', async () => {
    const e = await call(r.rt, 'a__leak', {});
    assert.equal(e.ok, true, textOf(e));
    assert.ok(!textOf(e).includes(token));
    assert.match(textOf(e), /the secret is \[REDACTED\]/);
    const dir = join(r.rt.project.artifactsDir, 'calls', e.call_id as string);
    for (const f of ['call.json', 'result.json']) assert.ok(!readFileSync(join(dir, f), 'utf8').includes(token), f);
  });

  void it('a server whose reference is not set is missing_credentials, hidden, and refused with the name to set', async () => {
    const m = await rig({ m: fixtureServer(uniq('m'), { FIXTURE_SECRET: '${env:NOT_SET_ANYWHERE}' }, { tools: { allow: ['*'] } }) });
    try {
      const st = m.rt.serverStatuses()[0]!;
      assert.equal(st.status, 'missing_credentials');
      assert.match(st.reason!, /env:NOT_SET_ANYWHERE/);
      await assert.rejects(m.rt.federation.connect('m'), /NOT_SET_ANYWHERE/);
    } finally {
      await m.close();
    }
  });
});

void describe('policy, read-only, confirmation, timeout and cancel on upstream tools', () => {
  let r: Rig;
  let fxLog: string;
  before(async () => {
    const marker = uniq('pol');
    r = await rig(
      { fx: fixtureServer(marker, {}, { tools: { allow: ['*'] }, timeout_ms: 1500 }) },
      { files: { 'policy.json': { tools: { fx__note: { enabled: false } } } } },
    );
    fxLog = join(r.p.root, 'fx.log');
    r.p.write('servers.json', {
      mcpServers: { fx: fixtureServer(marker, { FIXTURE_LOG: fxLog }, { tools: { allow: ['*'] }, timeout_ms: 1500 }) },
    });
    r.rt.reload();
    await r.rt.federation.connect('fx');
    r.rt.federation.approve('fx');
  });
  after(() => r.close());

  void it('policy.json tool toggles apply to <server>__<tool> names', async () => {
    assert.ok(!listed(r.rt).includes('fx__note'));
    const e = await call(r.rt, 'fx__note', { text: 'x' });
    assert.equal(e.error?.code, 'DENIED');
    assert.match(e.error!.message, /policy\.json/);
  });

  void it('a tool annotated destructive needs confirmation; without elicitation it is DENIED', async () => {
    const e = await call(r.rt, 'fx__drop', {});
    assert.equal(e.error?.code, 'DENIED');
    assert.match(e.error!.hint!, /"confirm": \{ "fx__drop": false \}/);
    const ok = await call(r.rt, 'fx__drop', {}, { confirm: async () => true });
    assert.equal(ok.ok, true, textOf(ok));
  });

  void it('servers.json timeout_ms bounds the call, and the cancellation reaches the upstream server', async () => {
    const e = await call(r.rt, 'fx__slow', { ms: 120000 });
    assert.equal(e.error?.code, 'TIMEOUT');
    assert.equal(auditRows(r.rt, 'fx__slow')[0]?.status, 'timeout');
    await until(
      () => existsSync(fxLog) && readFileSync(fxLog, 'utf8').includes('cancelled slow'),
      'the upstream saw notifications/cancelled',
    );
  });

  void it('a client cancel is forwarded upstream', async () => {
    const before = readFileSync(fxLog, 'utf8').split('cancelled slow').length;
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const e = await call(r.rt, 'fx__slow', { ms: 1000, timeout_ms: 5 }, { signal: ac.signal });
    // timeout_ms belongs to the upstream tool's arguments here: the server's own bound applies
    assert.equal(e.error?.code, 'CANCELLED');
    await until(() => readFileSync(fxLog, 'utf8').split('cancelled slow').length > before, 'second cancel upstream');
  });

  void it('an upstream tool error is UPSTREAM_ERROR with the upstream result kept as an artifact', async () => {
    const e = await call(r.rt, 'fx__fail', {});
    assert.equal(e.error?.code, 'UPSTREAM_ERROR');
    assert.match(e.error!.message, /fixture failure on purpose/);
    const f = join(r.rt.project.artifactsDir, 'calls', e.call_id as string, 'result.json');
    assert.match(readFileSync(f, 'utf8'), /"isError": true/);
  });

  void it('INFRA_READ_ONLY=1 lists and runs only tools annotated readOnlyHint: true', async () => {
    const ro = await rig({ fx: fixtureServer(uniq('ro'), {}, { tools: { allow: ['*'] } }) }, { env: { INFRA_READ_ONLY: '1' } });
    try {
      await ro.rt.federation.connect('fx');
      ro.rt.federation.approve('fx');
      const names = listed(ro.rt).filter((n) => n.startsWith('fx__'));
      assert.ok(names.includes('fx__greet'));
      assert.ok(!names.includes('fx__note') && !names.includes('fx__drop'));
      const e = await call(ro.rt, 'fx__note', { text: 'x' });
      assert.equal(e.error?.code, 'DENIED');
      assert.match(e.error!.message, /INFRA_READ_ONLY/);
    } finally {
      await ro.close();
    }
  });
});

void describe('server-memory from npm through the pipeline', () => {
  void it('a lazy server is listed from its pins and started by the first call', async () => {
    const r = await rig({});
    const file = join(r.p.root, 'memory.jsonl');
    r.p.write('servers.json', { mcpServers: { mem: memoryServer(file, { tools: { allow: ['create_entities', 'read_graph'] } }) } });
    r.rt.reload();
    try {
      await r.rt.federation.connect('mem');
      r.rt.federation.approve('mem');
      await r.rt.close();
      // a new infra process: nothing started yet, the approved tools are listed from infra.db
      const rt = await createRuntime({ projectDir: r.p.infraDir, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' } });
      try {
        const st = rt.serverStatuses()[0]!;
        assert.equal(st.status, 'idle');
        assert.equal(st.tools_from, 'pins');
        assert.ok(listed(rt).includes('mem__create_entities') && listed(rt).includes('mem__read_graph'));
        assert.ok(!listed(rt).includes('mem__delete_entities'), 'not in tools.allow');
        const created = await call(rt, 'mem__create_entities', {
          entities: [{ name: 'db-primary', entityType: 'host', observations: ['runs postgres 16'] }],
        });
        assert.equal(created.ok, true, textOf(created));
        assert.equal(rt.serverStatuses()[0]!.status, 'connected');
        const graph = await call(rt, 'mem__read_graph', {});
        assert.match(textOf(graph), /db-primary/);
        assert.match(readFileSync(file, 'utf8'), /runs postgres 16/);
      } finally {
        await rt.close();
      }
    } finally {
      r.p.cleanup();
    }
  });
});
