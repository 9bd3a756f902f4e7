import type { Services } from '../core/services.js';
import { ToolError } from '../core/errors.js';

/**
 * MCP prompts for common workflows, each built on a built-in runbook so that what the agent
 * does is one audited run. Plain data and two functions, so the server wires them with its own
 * `prompts/list` and `prompts/get` handlers (no SDK import here).
 */
export interface PromptArgument {
  name: string;
  description: string;
  required: boolean;
}

export interface PromptDef {
  name: string;
  title: string;
  description: string;
  arguments: PromptArgument[];
  text(args: Record<string, string>, services: Pick<Services, 'config'>): string;
}

const call = (tool: string, args: Record<string, unknown>): string => `\`${tool}\` with \`${JSON.stringify(args)}\``;

function pick(list: string[], given: string | undefined, kind: string): string {
  if (given) return given;
  if (list.length === 1) return list[0]!;
  return `<${kind}: one of ${list.join(', ') || '(none configured)'}>`;
}

export const PROMPTS: PromptDef[] = [
  {
    name: 'diagnose_host',
    title: 'Diagnose a host',
    description: 'Check an SSH target (reachability, host key, auth, load, memory, disks, failed units) and explain what is wrong',
    arguments: [
      { name: 'target', description: 'SSH target name from targets.json', required: true },
      { name: 'symptom', description: 'What the user noticed (optional)', required: false },
    ],
    text: (a, services) => {
      const target = pick(Object.keys(services.config.targets), a.target, 'target');
      return [
        `Diagnose the SSH target "${target}".${a.symptom ? ` The user reports: ${a.symptom}` : ''}`,
        '',
        `1. Run ${call('runbook', { action: 'run', name: 'ssh.health', input: { target } })}. If it fails at the check step, report the error code (CONNECTION_FAILED, AUTH_FAILED, HOST_KEY_MISMATCH) and its hint, and stop.`,
        `2. Run ${call('runbook', { action: 'run', name: 'ssh.system_info', input: { target } })} for load, memory, disks and the busiest processes.`,
        '3. Summarize: what is healthy, what is not (full disks, memory pressure, load above the CPU count, failed units), and the next safe step. Quote the run_uri of each run as evidence.',
        'Do not change anything on the host without asking the user first.',
      ].join('\n');
    },
  },
  {
    name: 'export_table',
    title: 'Export a table',
    description: 'Export a Postgres table to CSV in a read-only transaction (to an artifact, or a local file when allowed)',
    arguments: [
      { name: 'table', description: 'Table or schema.table', required: true },
      { name: 'profile', description: 'Postgres profile (optional when only one exists)', required: false },
      { name: 'file_path', description: 'Local file to write (needs INFRA_UNSAFE_LOCAL=1)', required: false },
    ],
    text: (a, services) => {
      const pgProfiles = Object.entries(services.config.profiles)
        .filter(([, p]) => p.type === 'postgres')
        .map(([n]) => n);
      const input: Record<string, unknown> = { table: a.table ?? '<table>', profile_name: pick(pgProfiles, a.profile, 'profile') };
      if (a.file_path) input.file_path = a.file_path;
      return [
        `Export the table ${input.table as string}.`,
        '',
        `1. Optionally check the columns first: ${call('psql', { action: 'schema', profile: input.profile_name, table: input.table })}.`,
        `2. Run ${call('runbook', { action: 'run', name: 'db.export.table', input })}. For a large table add "async": true and follow the job with the jobs tool.`,
        '3. Report the row count, the byte size, and where the export is (the artifact URI or the file path).',
      ].join('\n');
    },
  },
  {
    name: 'snapshot_repo',
    title: 'Snapshot a repository',
    description: 'Branch, HEAD, upstream, status, recent commits and uncommitted changes of a git repository, read-only',
    arguments: [{ name: 'repo_path', description: 'Repository path (default: the project root ".")', required: false }],
    text: (a) =>
      [
        `Take a snapshot of the repository at ${a.repo_path ?? '.'}.`,
        '',
        `1. Run ${call('runbook', { action: 'run', name: 'repo.snapshot', input: { repo_path: a.repo_path ?? '.' } })}.`,
        '2. Summarize: current branch and HEAD, ahead/behind its upstream, uncommitted changes (from the diffstat), and the last few commits. Quote the run_uri.',
      ].join('\n'),
  },
  {
    name: 'smoke_test',
    title: 'Smoke-test a deployment',
    description: 'SSH, Postgres and HTTP checks of one deployment in a single audited run',
    arguments: [
      { name: 'target', description: 'SSH target name', required: true },
      { name: 'url', description: 'HTTP health URL', required: true },
      { name: 'profile', description: 'Postgres profile (optional when only one exists)', required: false },
    ],
    text: (a) => {
      const input: Record<string, unknown> = { target: a.target ?? '<target>', url: a.url ?? '<url>' };
      if (a.profile) input.profile = a.profile;
      return [
        'Smoke-test the deployment.',
        '',
        `1. Run ${call('runbook', { action: 'run', name: 'smoke.target.baseline', input })}.`,
        "2. If it fails, name the failed step from error.details.failed_step and read that step's artifact for the cause. Report each check as passed or failed, with the run_uri as evidence.",
      ].join('\n');
    },
  },
];

/** The `prompts/list` result. */
export function listPrompts(): { prompts: { name: string; title: string; description: string; arguments: PromptArgument[] }[] } {
  return { prompts: PROMPTS.map(({ name, title, description, arguments: args }) => ({ name, title, description, arguments: args })) };
}

/** The `prompts/get` result; an unknown prompt or a missing required argument is a ToolError (INVALID_ARGUMENT). */
export function getPrompt(
  name: string,
  args: Record<string, string> | undefined,
  services: Pick<Services, 'config'>,
): { description: string; messages: { role: 'user'; content: { type: 'text'; text: string } }[] } {
  const p = PROMPTS.find((x) => x.name === name);
  if (!p)
    throw new ToolError('INVALID_ARGUMENT', `no prompt named ${JSON.stringify(name)}`, {
      hint: `prompts are ${PROMPTS.map((x) => x.name).join(', ')}`,
    });
  const given = args ?? {};
  const missing = p.arguments.filter((a) => a.required && !given[a.name]).map((a) => a.name);
  if (missing.length) throw new ToolError('INVALID_ARGUMENT', `prompt ${name} needs ${missing.join(', ')}`);
  return { description: p.description, messages: [{ role: 'user', content: { type: 'text', text: p.text(given, services) } }] };
}
