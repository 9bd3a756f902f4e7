import { Command, Option } from 'commander';
import { createInterface } from 'node:readline/promises';
import { buildCatalog, defaultPolicyView } from './catalog.js';
import { initProject } from './cli/init.js';
import { clientSnippet, CLIENTS, type ClientKind } from './cli/client-config.js';
import { runDoctor } from './cli/doctor.js';
import { registerServersCommands } from './cli/servers-commands.js';
import { registerSecretsCommands } from './cli/secrets-commands.js';
import { registerSshCommands } from './cli/ssh-commands.js';
import { createRuntime, type Runtime } from './exec/runtime.js';
import type { Confirmer } from './exec/pipeline.js';
import { readFlags } from './policy/policy.js';
import { listTools } from './server/tool-list.js';
import { serve } from './server/serve.js';
import { NATIVE_TOOLS } from './toolsets/registry.js';
import { COMMIT, VERSION } from './version.js';

const out = (s: string): void => {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
};

/** The CLI asks on the terminal; without one, confirmation is impossible (fail closed). */
const terminalConfirm: Confirmer = async (req) => {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${req.message}\nType "yes" to allow: `);
    return answer.trim().toLowerCase() === 'yes';
  } finally {
    rl.close();
  }
};

function parseJsonArg(text: string | undefined, what: string): Record<string, unknown> {
  if (text === undefined || text.trim() === '') return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (e) {
    process.stderr.write(`infra: ${what} must be a JSON object, e.g. '{"action":"get","key":"k"}' (${(e as Error).message})\n`);
    process.exit(2);
  }
}

async function withRuntime<T>(program: Command, fn: (rt: Runtime) => Promise<T>): Promise<T> {
  const rt = await createRuntime({ projectFlag: program.opts<{ project?: string }>().project });
  try {
    return await fn(rt);
  } finally {
    await rt.close();
  }
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('infra')
    .description('One local stdio MCP server for AI-agent infrastructure operations, with audit and artifacts for every call.')
    .version(`${VERSION} (${COMMIT})`, '-V, --version', 'print the version and commit')
    .addOption(new Option('--project <dir>', 'project root or its .infra directory (default: MCP_PROFILES_DIR, then the nearest .infra/)'))
    // a word that is no command reaches the default action (serve): say so, not "too many arguments"
    .allowExcessArguments(true)
    .action(async () => {
      const [word] = program.args;
      if (word !== undefined) {
        const names = program.commands.map((c) => c.name());
        program.error(`error: unknown command '${word}' (commands: ${names.join(', ')}; infra --help describes them)`);
      }
      await serve({ projectFlag: program.opts<{ project?: string }>().project });
    });

  program
    .command('serve')
    .description('serve MCP on stdio (the default)')
    .action(async () => {
      await serve({ projectFlag: program.opts<{ project?: string }>().project });
    });

  program
    .command('call')
    .description('run one tool call through the same pipeline and print the envelope')
    .argument('<tool>', 'tool name, e.g. state')
    .argument('[args]', 'arguments as a JSON object, e.g. \'{"action":"get","key":"k"}\'')
    .action(async (tool: string, argsText: string | undefined) => {
      const args = parseJsonArg(argsText, 'args');
      const env = await withRuntime(program, (rt) =>
        rt.call(tool, args, { confirm: terminalConfirm, client: { name: 'infra-cli', version: VERSION } }),
      );
      out(JSON.stringify(env, null, 2));
      process.exitCode = env.ok ? 0 : 1;
    });

  program
    .command('init')
    .description('scaffold .infra/ (targets, profiles, policy, runbooks, capabilities, .gitignore, schemas)')
    .argument('[dir]', 'project root', '.')
    .action((dir: string) => {
      const r = initProject(dir);
      out(
        `${r.infraDir}\n  wrote: ${r.written.join(', ') || '(nothing)'}${r.kept.length ? `\n  kept existing: ${r.kept.join(', ')}` : ''}\nnext: infra doctor`,
      );
    });

  const audit = program.command('audit').description('read the audit index');
  audit
    .command('list')
    .description('recent calls, newest first')
    .option('--limit <n>', 'rows', '20')
    .option('--tool <tool>')
    .option('--status <status>')
    .option('--json', 'print JSON')
    .action(async (o: { limit: string; tool?: string; status?: string; json?: boolean }) => {
      await withRuntime(program, async (rt) => {
        const rows = rt.services.audit.list({ limit: Number(o.limit), tool: o.tool, status: o.status });
        if (o.json) return out(JSON.stringify(rows, null, 2));
        for (const r of rows) {
          out(
            `${r.started_at}  ${r.status.padEnd(11)} ${`${r.tool}.${r.action ?? '?'}`.padEnd(22)} ${(r.target ?? '').padEnd(16)} ${r.id}  ${(r.summary ?? '').slice(0, 80)}`,
          );
        }
      });
    });
  audit
    .command('verify')
    .description('walk the hash chain')
    .action(async () => {
      await withRuntime(program, async (rt) => {
        const v = await rt.services.audit.verify();
        out(JSON.stringify(v, null, 2));
        process.exitCode = v.ok ? 0 : 1;
      });
    });

  program
    .command('catalog')
    .description('print the tool catalog (tools, actions, effects, exact input schemas)')
    .option('--tools-list', 'print the exact tools/list answer for the current environment flags instead')
    .action((o: { toolsList?: boolean }) => {
      if (o.toolsList) return out(JSON.stringify(listTools(NATIVE_TOOLS, defaultPolicyView(readFlags(process.env))), null, 2));
      out(JSON.stringify(buildCatalog(NATIVE_TOOLS), null, 2));
    });

  const artifacts = program.command('artifacts').description('manage the artifact store');
  artifacts
    .command('prune')
    .description('delete artifacts older than limits.retention_days (audit rows stay, marked pruned)')
    .option('--days <n>', 'override the retention in days')
    .action(async (o: { days?: string }) => {
      await withRuntime(program, async (rt) => {
        const days = o.days !== undefined ? Number(o.days) : rt.services.config.policy.limits.retention_days;
        const r = await rt.services.artifacts.prune(days);
        rt.services.audit.markPruned(r.calls);
        out(`pruned ${r.calls.length} call artifacts and ${r.runs} run artifacts older than ${days} days`);
      });
    });

  program
    .command('doctor')
    .description('diagnose the environment, the project and its configuration')
    .option('--json', 'print JSON for scripts')
    .action(async (o: { json?: boolean }) => {
      const report = await runDoctor({ projectFlag: program.opts<{ project?: string }>().project });
      out(o.json ? JSON.stringify(report, null, 2) : report.text);
      process.exitCode = report.ok ? 0 : 1;
    });

  registerSecretsCommands(program);

  const config = program.command('config').description('client configuration');
  config
    .command('client')
    .description('print the JSON snippet that adds infra to an MCP client')
    .addOption(new Option('--client <client>', 'which client').choices(CLIENTS).default('claude'))
    .action((o: { client: ClientKind }) => {
      out(clientSnippet(o.client, { projectFlag: program.opts<{ project?: string }>().project }));
    });

  registerServersCommands(program);

  // commands that need the project's services share one runtime, closed after the command
  let commandRuntime: Runtime | undefined;
  registerSshCommands(program, async () => {
    commandRuntime ??= await createRuntime({ projectFlag: program.opts<{ project?: string }>().project });
    return commandRuntime.services;
  });
  program.hook('postAction', async () => {
    await commandRuntime?.close();
    commandRuntime = undefined;
  });
  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((e: unknown) => {
    process.stderr.write(`infra: ${(e as Error).message}\n`);
    process.exit(1);
  });
