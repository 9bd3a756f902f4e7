import type { Command } from 'commander';
import { isToolError } from '../core/errors.js';
import { createRuntime, type Runtime } from '../exec/runtime.js';
import type { ServerStatus } from '../federation/index.js';
import { addDoctorSection, type DoctorCheck } from './doctor.js';

const out = (s: string): void => {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
};

const CONNECT_BOUND_MS = 40_000;

async function withRuntime<T>(program: Command, fn: (rt: Runtime) => Promise<T>): Promise<T> {
  const rt = await createRuntime({ projectFlag: program.opts<{ project?: string }>().project });
  try {
    return await fn(rt);
  } finally {
    await rt.close();
  }
}

/** Connects one server, bounded; failures stay in its status. */
async function tryConnect(rt: Runtime, name: string): Promise<string | undefined> {
  try {
    await Promise.race([
      rt.federation.connect(name),
      new Promise((_, rej) => setTimeout(() => rej(new Error(`no answer within ${CONNECT_BOUND_MS / 1000}s`)), CONNECT_BOUND_MS).unref()),
    ]);
    return undefined;
  } catch (e) {
    return isToolError(e) ? `${e.message}${e.hint ? ` (hint: ${e.hint})` : ''}` : (e as Error).message;
  }
}

function statusLines(s: ServerStatus): string[] {
  const lines = [
    `${s.name}  ${s.status}${s.reason ? `: ${s.reason}` : ''}  (${s.transport}, start ${s.start}${s.pid ? `, pid ${s.pid}` : ''}${s.approved_at ? `, approved ${s.approved_at}` : ''})`,
  ];
  if (s.description) lines.push(`  ${s.description}`);
  if (s.hint) lines.push(`  hint: ${s.hint}`);
  for (const t of s.tools) lines.push(`  ${t.state.padEnd(18)} ${t.name} (${t.effect})${t.reason ? `: ${t.reason}` : ''}`);
  if (s.tools.length === 0) lines.push(`  (no tools known${s.tools_from === 'pins' ? ' yet: not started and nothing pinned' : ''})`);
  return lines;
}

/** `infra servers list|test|approve` and the doctor section for upstream servers (issue 9). */
export function registerServersCommands(program: Command): void {
  const servers = program.command('servers').description('upstream MCP servers of servers.json: status, test, approve');

  servers
    .command('list')
    .description('configured servers, their status and tools (from the pins; nothing is started)')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      await withRuntime(program, async (rt) => {
        const st = rt.serverStatuses();
        if (o.json) return out(JSON.stringify(st, null, 2));
        if (st.length === 0) return out('no servers in servers.json');
        for (const s of st) out(statusLines(s).join('\n'));
      });
    });

  servers
    .command('test')
    .description('connect a server, list its tools and show what changed since it was approved')
    .argument('<name>', 'server name in servers.json')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { json?: boolean }) => {
      await withRuntime(program, async (rt) => {
        const error = await tryConnect(rt, name);
        const status = rt.serverStatuses().find((s) => s.name === name);
        const diff = error ? undefined : rt.federation.diff(name);
        if (o.json) out(JSON.stringify({ ok: !error, error, status, changes: diff }, null, 2));
        else {
          if (status) out(statusLines(status).join('\n'));
          if (error) out(`connection failed: ${error}`);
          if (diff) {
            out(
              `since the pins: ${diff.added.length} new, ${diff.changed.length} changed, ${diff.removed.length} removed, ${diff.unchanged.length} unchanged`,
            );
            for (const t of diff.added) out(`  new       ${t}`);
            for (const t of diff.changed) out(`  changed   ${t.tool}: ${t.what}`);
            for (const t of diff.removed) out(`  removed   ${t}`);
            if (diff.added.length || diff.changed.length) out(`approve with: infra servers approve ${name}`);
          }
        }
        process.exitCode = error || !status ? 1 : 0;
      });
    });

  servers
    .command('approve')
    .description("pin the current definitions of a server's tools (trust on first use); changed tools need this again")
    .argument('<name>', 'server name in servers.json')
    .option('--tool <glob...>', 'approve only these tools')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { tool?: string[]; json?: boolean }) => {
      await withRuntime(program, async (rt) => {
        const error = await tryConnect(rt, name);
        if (error) {
          process.stderr.write(`infra: cannot approve ${name}: ${error}\n`);
          process.exitCode = 1;
          return;
        }
        const diff = rt.federation.diff(name);
        const r = rt.federation.approve(name, o.tool);
        if (o.json) return out(JSON.stringify({ ok: true, ...r, changes: diff }, null, 2));
        out(`approved ${r.pinned.length} tool definition(s) of ${name}`);
        for (const t of diff.added) if (r.pinned.includes(t)) out(`  new       ${t}`);
        for (const t of diff.changed) if (r.pinned.includes(t.tool)) out(`  changed   ${t.tool}: ${t.what}`);
        for (const t of r.refused) out(`  refused   ${t.tool}: ${t.reason}`);
        const st = rt.serverStatuses().find((s) => s.name === name);
        const exposed = st?.tools.filter((t) => t.state === 'exposed').map((t) => t.name) ?? [];
        out(`exposed now: ${exposed.join(', ') || '(none: add tool names or globs to tools.allow in servers.json)'}`);
      });
    });

  // connection status is preflight's (kind "upstream"); this section says what each server exposes
  addDoctorSection(async (rt) => {
    const checks: DoctorCheck[] = [];
    for (const s of rt.serverStatuses()) {
      if (s.status === 'disabled' || s.status === 'missing_credentials') continue;
      await tryConnect(rt, s.name);
    }
    const statuses = rt.serverStatuses();
    for (const s of statuses) {
      const exposed = s.tools.filter((t) => t.state === 'exposed').map((t) => t.tool);
      const pending = s.tools.filter((t) => t.state === 'pending_approval').map((t) => t.tool);
      const blocked = s.tools.filter((t) => t.state === 'changed' || t.state === 'hidden_characters' || t.state === 'refused');
      const parts = [
        `${s.status}`,
        `exposed ${exposed.length} of ${s.tools.length}${exposed.length ? ` (${exposed.join(', ')})` : ''}`,
        ...(pending.length ? [`pending approval: ${pending.join(', ')}`] : []),
        ...blocked.map((t) => `${t.tool} ${t.state}: ${t.reason ?? ''}`),
      ];
      checks.push({
        name: `server ${s.name} tools`,
        status: pending.length || blocked.length ? 'warn' : 'ok',
        detail: parts.join('; '),
        ...(pending.length || blocked.length
          ? { fix: `review with \`infra servers test ${s.name}\`, then \`infra servers approve ${s.name}\`` }
          : {}),
      });
    }
    return { name: 'servers', checks, data: statuses };
  });
}
