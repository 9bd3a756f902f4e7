import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSshd, type Sshd } from '../fixtures/sshd.js';
import { fail, ok, sshRig, targetFor, type SshRig } from './helpers.js';

/** pgrep pattern in brackets so the shell running pgrep does not match itself. */
const gone = async (rig: SshRig, pattern: string): Promise<string> =>
  ok(await rig.call({ action: 'exec', target: 'prod', command: `pgrep -af '${pattern}' || echo none` })).result.stdout.trim();

describe('ssh exec through the pipeline', () => {
  let sshd: Sshd;
  let rig: SshRig;

  before(async () => {
    sshd = await startSshd();
    rig = await sshRig({ 'targets.json': { prod: targetFor(sshd, { tags: ['web'] }) } }, { INFRA_UNSAFE_LOCAL: '1' });
  });
  after(async () => {
    await rig?.close();
    await sshd?.stop();
  });

  const exec = async (args: Record<string, unknown>) => ok(await rig.call({ action: 'exec', target: 'prod', ...args })).result;

  it('returns stdout, stderr and the exit code; non-zero exit is a result, not an error', async () => {
    const r = await exec({ command: 'echo out; echo err >&2; exit 3' });
    assert.deepEqual([r.exit_code, r.signal, r.stdout, r.stderr, r.stdout_bytes, r.stderr_bytes], [3, null, 'out\n', 'err\n', 4, 4]);
    assert.equal((await exec({ command: 'true' })).exit_code, 0);
    assert.equal((await exec({ command: 'exit 255' })).exit_code, 255);
  });

  it('reports a signal that killed the command', async () => {
    const r = await exec({ command: 'kill -TERM $$' });
    assert.deepEqual([r.exit_code, r.signal], [null, 'SIGTERM']);
    const k = await exec({ command: 'kill -KILL $$' });
    assert.equal(k.signal, 'SIGKILL');
  });

  it('every call is audited with its target and artifact; output files hold the streams', async () => {
    const e = ok(await rig.call({ action: 'exec', target: 'prod', command: 'printf abc; printf xyz >&2' }));
    const row = rig.rt.services.audit.get(e.call_id)!;
    assert.deepEqual([row.tool, row.action, row.target, row.status], ['ssh', 'exec', 'prod', 'ok']);
    assert.equal(row.artifact, e.artifact);
    const dir = join(rig.rt.project.artifactsDir, 'calls', e.call_id);
    assert.equal(readFileSync(join(dir, 'stdout'), 'utf8'), 'abc');
    assert.equal(readFileSync(join(dir, 'stderr'), 'utf8'), 'xyz');
  });

  it('cwd and env are applied, with values quoted', async () => {
    const value = `it's "quoted" $HOME \`id\` \\ ;|&\nline2`;
    const r = await exec({ command: 'pwd; printf %s "$V"', cwd: '/usr/share', env: { V: value } });
    assert.equal(r.stdout, `/usr/share\n${value}`);
  });

  it('attack: a NUL byte in the command, cwd or an env value is refused; the text before it never runs', async () => {
    // sshd hands the command to the shell as a C string, which ends at the first NUL: what was
    // sent (and confirmed) was not what ran
    const marker = `/tmp/infra-nul-${process.pid}`;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ command: `touch ${marker}-cmd\u0000 && echo but only in a dry run` }, /command: must not contain a NUL byte/],
      [{ command: `touch ${marker}-cwd`, cwd: '/tmp\u0000/x' }, /cwd: must not contain a NUL byte/],
      [{ command: `touch ${marker}-env`, env: { V: 'a\u0000b' } }, /env\.V: must not contain a NUL byte/],
    ];
    for (const [args, said] of cases) {
      const e = fail(await rig.call({ action: 'exec', target: 'prod', ...args })).error;
      assert.equal(e.code, 'INVALID_ARGUMENT');
      assert.match(e.message, said);
    }
    for (const suffix of ['cmd', 'cwd', 'env']) assert.equal(existsSync(`${marker}-${suffix}`), false, `${suffix}: nothing ran`);
  });

  it('attack: shell injection through an env value runs nothing', async () => {
    const marker = `/tmp/infra-pwned-${process.pid}-env`;
    const r = await exec({ command: 'printf %s "$X"', env: { X: `'; touch ${marker}; echo '` } });
    assert.equal(r.stdout, `'; touch ${marker}; echo '`);
    assert.equal((await exec({ command: `test -e ${marker} && echo yes || echo no` })).stdout, 'no\n');
  });

  it('attack: shell injection through cwd runs nothing', async () => {
    const marker = `/tmp/infra-pwned-${process.pid}-cwd`;
    const r = await exec({ command: 'pwd', cwd: `/tmp'; touch ${marker}; echo '` });
    assert.notEqual(r.exit_code, 0, 'cd to the odd directory fails');
    assert.equal(r.stdout, '');
    assert.equal((await exec({ command: `test -e ${marker} && echo yes || echo no` })).stdout, 'no\n');
  });

  it('attack: an env name that is not a variable name is refused', async () => {
    fail(await rig.call({ action: 'exec', target: 'prod', command: 'true', env: { 'X;touch /tmp/p': '1' } }), 'INVALID_ARGUMENT');
  });

  it("a syntax error in the command is the command's result (exit 2), the prologue still ran", async () => {
    const r = await exec({ command: 'if then fi', cwd: '/tmp' });
    assert.notEqual(r.exit_code, 0);
    assert.match(r.stderr, /syntax/);
  });

  it('stdin: text', async () => {
    assert.equal((await exec({ command: 'cat', stdin: 'hello\nworld' })).stdout, 'hello\nworld');
  });

  it('stdin_base64: binary bytes arrive intact', async () => {
    const bytes = Buffer.from(Array.from({ length: 256 * 40 }, (_, i) => i % 256));
    const r = await exec({ command: 'sha256sum | cut -d" " -f1', stdin_base64: bytes.toString('base64') });
    assert.equal(r.stdout.trim(), createHash('sha256').update(bytes).digest('hex'));
  });

  it('stdin_file streams a local file (INFRA_UNSAFE_LOCAL=1)', async () => {
    const f = join(rig.project.root, 'input.txt');
    writeFileSync(f, 'from a file\n');
    assert.equal((await exec({ command: 'cat', stdin_file: f })).stdout, 'from a file\n');
  });

  it('stdin_ref streams an artifact from an earlier call', async () => {
    const first = ok(await rig.call({ action: 'exec', target: 'prod', command: 'seq 1 1000' }));
    const r = await exec({ command: 'wc -l', stdin_ref: `${first.artifact}stdout` });
    assert.equal(r.stdout.trim(), '1000');
  });

  it('more than one stdin source is refused', async () => {
    fail(await rig.call({ action: 'exec', target: 'prod', command: 'cat', stdin: 'a', stdin_base64: 'Yg==' }), 'INVALID_ARGUMENT');
  });

  it('stdin_eof: false keeps stdin open (cat waits until the timeout); a command that stops reading still ends', async () => {
    const partial = await exec({ command: 'head -c 5', stdin: 'hello world', stdin_eof: false });
    assert.equal(partial.stdout, 'hello');
    const e = fail(
      await rig.call({ action: 'exec', target: 'prod', command: 'cat', stdin: 'x', stdin_eof: false, timeout_ms: 1500 }),
      'TIMEOUT',
    );
    assert.ok(e);
  });

  it('pty: true gives the command a terminal', async () => {
    assert.equal((await exec({ command: 'test -t 1 && echo tty || echo notty' })).stdout, 'notty\n');
    const r = await exec({ command: 'test -t 1 && echo tty || echo notty', pty: true });
    assert.equal(r.stdout.replace(/\r/g, ''), 'tty\n');
  });

  it('large output: head and tail inline, the whole stream in the artifact, truncated reported', async () => {
    const e = ok(await rig.call({ action: 'exec', target: 'prod', command: 'seq 1 200000', max_bytes: 1024 }));
    const r = e.result;
    assert.ok(r.stdout.startsWith('1\n2\n3\n'));
    assert.ok(r.stdout.endsWith('199999\n200000\n'));
    assert.ok(r.stdout.length < 1300);
    assert.equal(e.truncated?.stdout?.bytes, r.stdout_bytes);
    const file = readFileSync(join(rig.rt.project.artifactsDir, 'calls', e.call_id, 'stdout'));
    assert.equal(file.length, r.stdout_bytes);
  });

  it('100 MB of output streams to the artifact with flat memory', async () => {
    const size = 100_000_000;
    const line = '0123456789abcdef\n';
    const expected = createHash('sha256');
    const block = Buffer.from(line.repeat(1 << 16));
    let left = size;
    while (left > 0) {
      const b = block.subarray(0, Math.min(left, block.length));
      expected.update(b);
      left -= b.length;
    }
    global.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const e = ok(
      await rig.call({ action: 'exec', target: 'prod', command: `yes 0123456789abcdef | head -c ${size}`, timeout_ms: 120_000 }),
    );
    clearInterval(sampler);
    assert.equal(e.result.stdout_bytes, size);
    const file = join(rig.rt.project.artifactsDir, 'calls', e.call_id, 'stdout');
    const h = createHash('sha256');
    h.update(readFileSync(file));
    assert.equal(h.digest('hex'), expected.digest('hex'));
    const grew = (peak - base) / 1e6;
    assert.ok(grew < 60, `rss grew by ${grew.toFixed(1)} MB while streaming 100 MB`);
  });

  it('timeout stops the remote process group: the sleep 1000 (and its background sibling) are gone', async () => {
    const t0 = Date.now();
    const e = fail(
      await rig.call({ action: 'exec', target: 'prod', command: 'sleep 1001.25 & sleep 1000.25', timeout_ms: 1000 }),
      'TIMEOUT',
    );
    assert.ok(Date.now() - t0 < 4500, 'the reply does not wait for the command');
    assert.ok(e.call_id);
    assert.equal(await gone(rig, 'sleep 100[01][.]25'), 'none');
  });

  it('a command that ignores TERM is killed too', async () => {
    fail(
      await rig.call({ action: 'exec', target: 'prod', command: "trap '' TERM; sleep 1000.5; echo survived", timeout_ms: 800 }),
      'TIMEOUT',
    );
    assert.equal(await gone(rig, 'sleep 1000[.]5'), 'none');
  });

  it('client cancellation stops the remote process (CANCELLED)', async () => {
    const ac = new AbortController();
    const p = rig.call({ action: 'exec', target: 'prod', command: 'sleep 1000.75' }, { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 600));
    ac.abort();
    fail(await p, 'CANCELLED');
    assert.equal(await gone(rig, 'sleep 1000[.]75'), 'none');
  });

  it('async: true returns a job; jobs wait gives the result; jobs cancel stops the remote process', async () => {
    const started = ok(await rig.call({ action: 'exec', target: 'prod', command: 'sleep 0.3; echo done-async', async: true }));
    const jobId = started.result.job_id as string;
    assert.ok(jobId);
    const waited = ok(await rig.rt.call('jobs', { action: 'wait', job_id: jobId, wait_ms: 20_000 }));
    assert.equal(waited.result.status, 'ok');
    assert.equal((waited.result.envelope as { result: { stdout: string } }).result.stdout, 'done-async\n');

    const long = ok(await rig.call({ action: 'exec', target: 'prod', command: 'sleep 1000.875', async: true }));
    await new Promise((r) => setTimeout(r, 600));
    ok(await rig.rt.call('jobs', { action: 'cancel', job_id: long.result.job_id }));
    const end = ok(await rig.rt.call('jobs', { action: 'wait', job_id: long.result.job_id, wait_ms: 20_000 }));
    assert.equal(end.result.status, 'cancelled');
    assert.equal(await gone(rig, 'sleep 1000[.]875'), 'none');
  });

  it('progress notifications carry output while the command runs', async () => {
    const updates: string[] = [];
    ok(
      await rig.call(
        { action: 'exec', target: 'prod', command: 'for i in 1 2 3 4; do echo tick$i; sleep 0.4; done' },
        { onProgress: (u) => updates.push(u.message ?? '') },
      ),
    );
    assert.ok(updates.length >= 2, `got ${updates.length} progress updates`);
    assert.ok(updates.some((m) => /tick/.test(m)));
  });

  it('20 concurrent execs on one target run in parallel channels', async () => {
    const t0 = Date.now();
    const all = await Promise.all(
      Array.from({ length: 20 }, (_, i) => rig.call({ action: 'exec', target: 'prod', command: `sleep 1; echo n${i}` })),
    );
    const took = Date.now() - t0;
    all.forEach((e, i) => assert.equal(ok(e).result.stdout, `n${i}\n`));
    assert.ok(took < 10_000, `20 × sleep 1 took ${took} ms (a queue would take 20 s)`);
  });
});
