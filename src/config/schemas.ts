import { z } from 'zod';

/**
 * zod schemas of every config file of DESIGN §3. `schemas/*.schema.json` is generated from
 * these (tools/generate.ts); unknown keys are errors (strict objects).
 */

const schemaKey = { $schema: z.string().optional() };
const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const name = z.string().regex(TARGET_NAME, 'names use letters, digits, ".", "_" and "-" (max 64), starting with a letter or digit');

export const SshTargetSchema = z
  .strictObject({
    description: z.string().optional(),
    host: z.string().min(1).describe('Host name or address'),
    port: z.number().int().min(1).max(65535).default(22),
    username: z.string().min(1),
    key_file: z.string().optional().describe('Private key path (~ expanded) or ${file:…}/${secret:…} reference'),
    private_key: z.string().optional().describe('Private key contents by reference: ${secret:NAME} or ${env:NAME}'),
    passphrase: z.string().optional().describe('Key passphrase by reference: ${env:NAME} / ${secret:NAME}'),
    password: z
      .string()
      .optional()
      .describe('Password by reference: ${env:NAME} / ${secret:NAME}; also answers keyboard-interactive password prompts (PAM)'),
    agent: z.union([z.boolean(), z.string()]).optional().describe('true uses $SSH_AUTH_SOCK; a string is the agent socket path'),
    known_hosts: z.string().optional().describe('known_hosts file to verify the host key (default ~/.ssh/known_hosts)'),
    host_key_sha256: z
      .string()
      .regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, 'a pin looks like SHA256:<base64> as printed by ssh-keygen -lf')
      .optional()
      .describe('Pinned host key fingerprint, OpenSSH form SHA256:<base64>'),
    jump: name.optional().describe('Name of another target to jump through (ProxyJump)'),
    tags: z.array(z.string()).default([]),
    keepalive_interval_ms: z.number().int().min(0).default(15000),
    connect_timeout_ms: z.number().int().min(100).default(10000),
    idle_timeout_ms: z.number().int().min(1000).default(300000).describe('Close the pooled connection after this long unused'),
  })
  .describe('An SSH target');

export const TargetsFileSchema = z
  .object({ ...schemaKey })
  .catchall(SshTargetSchema)
  .describe('targets.json: named SSH targets');

export const PostgresProfileSchema = z.strictObject({
  type: z.literal('postgres'),
  description: z.string().optional(),
  url: z.string().optional().describe('postgres://user@host:port/db; password by reference, e.g. ${env:DATABASE_URL}'),
  host: z.string().optional(),
  port: z.number().int().min(1).max(65535).optional(),
  database: z.string().optional(),
  user: z.string().optional(),
  password: z.string().optional().describe('By reference: ${env:NAME} / ${secret:NAME}'),
  sslmode: z.enum(['disable', 'prefer', 'require', 'verify-ca', 'verify-full']).optional(),
  ca_file: z.string().optional(),
  mode: z.enum(['read_only', 'read_write']).default('read_only'),
  statement_timeout_ms: z.number().int().min(1).default(30000),
  max_rows: z.number().int().min(1).default(1000),
  pool_max: z.number().int().min(1).max(100).default(5),
  allow_superuser: z
    .boolean()
    .default(false)
    .describe(
      'Human opt-out: let a read_only profile run as a login that can act outside its READ ONLY transaction: a superuser, server-file/program/signal roles, dblink, pg_logical_emit_message under wal_level = logical, or write grants before PostgreSQL 16',
    ),
});

export const HttpProfileSchema = z.strictObject({
  type: z.literal('http'),
  description: z.string().optional(),
  base_url: z.string().url(),
  headers: z.record(z.string(), z.string()).default({}),
  timeout_ms: z.number().int().min(1).optional(),
  ca_file: z.string().optional(),
  insecure: z.boolean().default(false).describe('Skip TLS verification (a human-only setting)'),
  allow_private: z.boolean().optional(),
  allow_link_local: z.boolean().optional(),
});

export const ProfileSchema = z.discriminatedUnion('type', [PostgresProfileSchema, HttpProfileSchema]);

export const ProfilesFileSchema = z
  .object({ ...schemaKey })
  .catchall(ProfileSchema)
  .describe('profiles.json: named postgres and http profiles');

const ToolToggleSchema = z.strictObject({
  enabled: z.boolean().optional(),
  actions: z.record(z.string(), z.boolean()).optional(),
});

export const LimitsSchema = z.strictObject({
  artifact_max_bytes: z.number().int().min(0).default(2147483648),
  inline_max_bytes: z.number().int().min(256).default(16384),
  default_timeout_ms: z.number().int().min(1).default(50000),
  job_timeout_ms: z.number().int().min(1).default(21600000),
  retention_days: z.number().min(0).default(30),
  template_max_bytes: z.number().int().min(0).default(16777216),
});

export const PolicyFileSchema = z
  .strictObject({
    ...schemaKey,
    tools: z.record(z.string(), ToolToggleSchema).default({}),
    ssh: z.strictObject({ allow_targets: z.array(z.string()).optional() }).default({}),
    http: z
      .strictObject({
        allow_hosts: z.array(z.string()).optional(),
        allow_private: z.boolean().default(true),
        allow_link_local: z.boolean().default(false),
      })
      .default({ allow_private: true, allow_link_local: false }),
    psql: z.strictObject({ allow_profiles: z.array(z.string()).optional() }).default({}),
    repo: z
      .strictObject({
        roots: z.array(z.string()).optional(),
        write: z.boolean().default(false),
        force_push: z.boolean().default(false),
      })
      .default({ write: false, force_push: false }),
    confirm: z.record(z.string(), z.boolean()).default({}),
    limits: LimitsSchema.default(LimitsSchema.parse({})),
  })
  .describe('policy.json: human-owned policy; no tool can change it');

const TypedInputSchema = z.strictObject({
  type: z.enum(['string', 'number', 'integer', 'boolean', 'object', 'array', 'any']).default('string'),
  required: z.boolean().default(false),
  default: z.unknown().optional(),
  description: z.string().optional(),
});

export const RunbookStepSchema: z.ZodType<RunbookStep> = z.lazy(() =>
  z.strictObject({
    id: z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/, 'step ids use letters, digits, "_" and "-"'),
    tool: z.string().min(1),
    args: z.record(z.string(), z.unknown()).default({}),
    description: z.string().optional(),
    when: z.union([z.string(), z.boolean()]).optional(),
    retry: z
      .strictObject({
        max_attempts: z.number().int().min(1).max(100).default(1),
        delay_ms: z.number().int().min(0).default(0),
        until: z.string().optional(),
      })
      .optional(),
    continue_on_error: z.boolean().default(false),
    assert: z
      .string()
      .optional()
      .describe('A condition on the step\'s own result that must hold, e.g. "{{ result.exit_code }} == 0"; false fails the step'),
    timeout_ms: z.number().int().min(1).optional(),
    foreach: z
      .union([
        z.string(),
        z.array(z.unknown()),
        z.strictObject({
          items: z.union([z.string(), z.array(z.unknown())]),
          parallel: z.number().int().min(1).max(32).default(1),
        }),
      ])
      .optional(),
  }),
);

export interface RunbookStep {
  id: string;
  tool: string;
  args: Record<string, unknown>;
  description?: string | undefined;
  when?: string | boolean | undefined;
  retry?: { max_attempts: number; delay_ms: number; until?: string | undefined } | undefined;
  continue_on_error: boolean;
  assert?: string | undefined;
  timeout_ms?: number | undefined;
  foreach?: string | unknown[] | { items: string | unknown[]; parallel: number } | undefined;
}

export const RunbookSchema = z.strictObject({
  description: z.string().default(''),
  tags: z.array(z.string()).default([]),
  inputs: z.union([z.array(z.string()), z.record(z.string(), TypedInputSchema)]).default([]),
  steps: z.array(RunbookStepSchema).min(1, 'a runbook needs at least one step'),
});

export const RUNBOOK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const RunbooksFileSchema = z
  .object({ ...schemaKey })
  .catchall(RunbookSchema)
  .describe('runbooks.json: runbooks keyed by name');

export const CapabilitySchema = z.strictObject({
  description: z.string().optional(),
  intent: z.string().optional(),
  runbook: z.string(),
  when: z.record(z.string(), z.unknown()).optional(),
  inputs: z.record(z.string(), z.unknown()).optional(),
  tags: z.array(z.string()).optional(),
});

export const CapabilitiesFileSchema = z.strictObject({
  ...schemaKey,
  version: z.number().int().default(1),
  capabilities: z.record(z.string(), CapabilitySchema).default({}),
});

// servers.json (federation, src/federation/): the `mcpServers` shape clients use, plus governance
const SERVER_NAME = /^[A-Za-z0-9][A-Za-z0-9-]*(?:_[A-Za-z0-9-]+)*$/;

export const UpstreamServerSchema = z
  .strictObject({
    description: z.string().optional(),
    enabled: z.boolean().default(true).describe('false stops the server and hides all its tools'),
    command: z.string().min(1).optional().describe('stdio: the executable to start (argv, no shell)'),
    args: z.array(z.string()).default([]),
    env: z
      .record(z.string(), z.string())
      .default({})
      .describe('stdio: environment of the child; ${env:…}/${secret:…} references resolve for this server only'),
    cwd: z.string().optional().describe('stdio: working directory (relative to the project root; ~ expanded)'),
    url: z.string().url().optional().describe('remote: the server endpoint'),
    transport: z.enum(['stdio', 'http', 'sse']).optional().describe('remote: "http" (streamable HTTP, the default) or "sse"'),
    type: z.enum(['stdio', 'http', 'sse']).optional().describe('accepted as the spelling some clients use for `transport`'),
    headers: z
      .record(z.string(), z.string())
      .default({})
      .describe('remote: request headers; ${env:…}/${secret:…} references resolve for this server only'),
    tools: z
      .strictObject({
        allow: z.array(z.string()).default([]).describe('globs of upstream tool names to expose (none by default)'),
        deny: z.array(z.string()).default([]).describe('globs of upstream tool names never exposed (deny wins)'),
      })
      .default({ allow: [], deny: [] }),
    timeout_ms: z.number().int().min(1).optional().describe('bound on each call to this server (default limits.default_timeout_ms)'),
    inherit_env: z
      .union([z.boolean(), z.array(z.string())])
      .default(false)
      .describe("stdio: false gives the child only PATH, HOME and `env`; a list passes those variables too; true passes all of infra's"),
    start: z.enum(['lazy', 'startup']).default('lazy').describe('lazy starts the server at its first call; startup when infra starts'),
  })
  .superRefine((s, ctx) => {
    const kind = s.transport ?? s.type;
    if (s.transport && s.type && s.transport !== s.type)
      ctx.addIssue({ code: 'custom', message: '"transport" and "type" disagree; keep one', path: ['type'] });
    if (!s.command === !s.url)
      ctx.addIssue({ code: 'custom', message: 'give exactly one of "command" (stdio) or "url" (http/sse)', path: ['command'] });
    if (s.command && kind && kind !== 'stdio')
      ctx.addIssue({ code: 'custom', message: `"command" starts a stdio server; "${kind}" needs "url"`, path: ['transport'] });
    if (s.url && kind === 'stdio') ctx.addIssue({ code: 'custom', message: 'a stdio server needs "command", not "url"', path: ['url'] });
    if (s.url && (s.args.length || Object.keys(s.env).length || s.cwd || s.inherit_env !== false))
      ctx.addIssue({ code: 'custom', message: '"args", "env", "cwd" and "inherit_env" apply to stdio servers only', path: ['url'] });
    if (s.command && Object.keys(s.headers).length)
      ctx.addIssue({ code: 'custom', message: '"headers" apply to remote (url) servers only', path: ['headers'] });
  })
  .describe('An upstream MCP server governed by infra');

export const ServersFileSchema = z
  .strictObject({
    ...schemaKey,
    mcpServers: z
      .record(
        z.string().max(60).regex(SERVER_NAME, 'server names use letters, digits, "-" and single "_" (tools appear as <server>__<tool>)'),
        UpstreamServerSchema,
      )
      .default({}),
  })
  .describe('servers.json: upstream MCP servers federated behind infra');

export type SshTarget = z.output<typeof SshTargetSchema>;
export type PostgresProfile = z.output<typeof PostgresProfileSchema>;
export type HttpProfile = z.output<typeof HttpProfileSchema>;
export type Profile = z.output<typeof ProfileSchema>;
export type Policy = z.output<typeof PolicyFileSchema>;
export type Limits = z.output<typeof LimitsSchema>;
export type Runbook = z.output<typeof RunbookSchema>;
export type Capability = z.output<typeof CapabilitySchema>;
export type CapabilitiesFile = z.output<typeof CapabilitiesFileSchema>;
export type UpstreamServer = z.output<typeof UpstreamServerSchema>;

/** Every config file with its schema, for loading and for schemas/ generation. */
export const CONFIG_FILES = {
  'targets.json': TargetsFileSchema,
  'profiles.json': ProfilesFileSchema,
  'policy.json': PolicyFileSchema,
  'runbooks.json': RunbooksFileSchema,
  'capabilities.json': CapabilitiesFileSchema,
  'servers.json': ServersFileSchema,
} as const;
