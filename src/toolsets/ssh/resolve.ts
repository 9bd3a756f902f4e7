import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import picomatch from 'picomatch';
import type { SshEndpoint } from '../../adapters/ssh-pool.js';
import { SshPool } from '../../adapters/ssh-pool.js';
import type { ActionContext } from '../../core/define-action.js';
import { denied, invalid, notFound, ToolError } from '../../core/errors.js';
import type { Services } from '../../core/services.js';
import { expandHome } from '../../config/paths.js';
import { parseRefs } from '../../config/secret-refs.js';
import type { SshTarget } from '../../config/schemas.js';

/** From targets.json (read at call time) to a connectable endpoint with secrets resolved. */

const MAX_JUMP_DEPTH = 8;

export function pool(services: Services): SshPool {
  return services.shared('ssh-pool', () => new SshPool(services.log));
}

export function allowedTargetNames(services: Services): string[] {
  return Object.keys(services.config.targets).filter((n) => targetAllowed(services, n));
}

export function targetAllowed(services: Services, name: string): boolean {
  const allow = services.config.policy.ssh.allow_targets;
  if (!allow) return true;
  return allow.some((p) => (p.includes('*') || p.includes('?') ? picomatch.isMatch(name, p) : p === name));
}

/** policy.json `ssh.allow_targets` (DESIGN §3). Jump hosts named by an allowed target's config are the human's choice and are not checked. */
export function gateTarget(name: string, services: Services): void {
  if (targetAllowed(services, name)) return;
  const allowed = allowedTargetNames(services);
  throw denied(
    `ssh target "${name}" is not in policy.json ssh.allow_targets`,
    allowed.length
      ? `allowed targets: ${allowed.join(', ')}; a human can add "${name}" to ssh.allow_targets in policy.json`
      : `no target is allowed; a human can list targets in ssh.allow_targets in policy.json`,
    { rule: 'ssh.allow_targets' },
  );
}

export function getTarget(services: Services, name: string): SshTarget {
  const t = Object.prototype.hasOwnProperty.call(services.config.targets, name) ? services.config.targets[name] : undefined;
  if (t) return t;
  const known = allowedTargetNames(services);
  const issue = services.config.issues.find((i) => i.file.endsWith('targets.json'));
  throw notFound(
    `no ssh target named "${name}"`,
    issue
      ? `targets.json could not be loaded: ${issue.message}`
      : known.length
        ? `known targets: ${known.join(', ')} (ssh {action:"targets"} lists them)`
        : `no targets are configured: a human adds them to ${join(services.project.dir, 'targets.json')}`,
    { known },
  );
}

const looksLikeKey = (s: string): boolean =>
  /^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(s.trimStart()) || s.startsWith('PuTTY-User-Key-File');

export interface ResolveOptions {
  /** false: skip credentials (for `infra ssh trust`, which only needs the host key). */
  auth?: boolean;
}

export function resolveEndpoint(services: Services, name: string, opts: ResolveOptions = {}, chain: string[] = []): SshEndpoint {
  if (chain.includes(name))
    throw invalid(`targets.json: jump chain loops: ${[...chain, name].join(' → ')}`, 'fix the "jump" entries in targets.json');
  if (chain.length >= MAX_JUMP_DEPTH)
    throw invalid(`targets.json: jump chain deeper than ${MAX_JUMP_DEPTH}: ${[...chain, name].join(' → ')}`);
  const t = getTarget(services, name);
  const sec = services.secrets;
  const where = (k: string): string => `targets.json: ${name}.${k}`;
  const ep: Omit<SshEndpoint, 'id'> & { id?: string } = {
    name,
    host: t.host,
    port: t.port,
    username: t.username,
    hostKey: t.host_key_sha256
      ? { kind: 'pin', sha256: t.host_key_sha256 }
      : t.known_hosts
        ? { kind: 'known_hosts', files: [expandHome(t.known_hosts, services.project.root)], explicit: true }
        : { kind: 'known_hosts', files: [join(homedir(), '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts'], explicit: false },
    keepaliveIntervalMs: t.keepalive_interval_ms,
    connectTimeoutMs: t.connect_timeout_ms,
    idleTimeoutMs: t.idle_timeout_ms,
  };
  if (opts.auth !== false) {
    if (t.key_file !== undefined) {
      const v = sec.resolve(t.key_file, where('key_file'));
      if (looksLikeKey(v)) ep.privateKey = v;
      else {
        const path = expandHome(v, services.project.root);
        try {
          ep.privateKey = readFileSync(path);
        } catch (e) {
          throw new ToolError(
            'AUTH_FAILED',
            `${where('key_file')}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
            {
              hint: 'check the path (~ is expanded; relative paths are from the project root) and that the user running infra can read it',
              retryable: false,
              details: { status: 'missing_credentials' },
            },
          );
        }
      }
    }
    if (t.private_key !== undefined) ep.privateKey = resolveSecret(services, t.private_key, where('private_key'));
    if (t.passphrase !== undefined) ep.passphrase = resolveSecret(services, t.passphrase, where('passphrase'));
    if (t.password !== undefined) ep.password = resolveSecret(services, t.password, where('password'));
    if (t.agent === true) {
      const sock = sec.lookup({ kind: 'env', name: 'SSH_AUTH_SOCK', raw: '${env:SSH_AUTH_SOCK}' });
      if (!sock) {
        throw new ToolError('AUTH_FAILED', `${where('agent')} is true but SSH_AUTH_SOCK is not set`, {
          hint: 'start infra with SSH_AUTH_SOCK in its environment (MCP clients: the "env" block), or give the agent socket path as "agent": "/path/to/sock"',
          retryable: false,
          details: { status: 'missing_credentials', missing: 'env:SSH_AUTH_SOCK' },
        });
      }
      ep.agent = sock;
    } else if (typeof t.agent === 'string') {
      ep.agent = expandHome(sec.resolve(t.agent, where('agent')), services.project.root);
    }
    if (ep.privateKey === undefined && ep.password === undefined && ep.agent === undefined) {
      throw invalid(
        `targets.json: ${name} has no credentials`,
        'give it "key_file", "private_key", "password": "${env:NAME}" or "agent": true',
      );
    }
  }
  if (t.jump) ep.jump = resolveEndpoint(services, t.jump, { auth: true }, [...chain, name]);
  ep.id = createHash('sha256')
    .update(
      JSON.stringify([
        ep.host,
        ep.port,
        ep.username,
        ep.hostKey,
        ep.keepaliveIntervalMs,
        ep.connectTimeoutMs,
        ep.idleTimeoutMs,
        ep.agent ?? null,
        ep.password ?? null,
        ep.passphrase ?? null,
        ep.jump?.id ?? null,
      ]),
    )
    .update(ep.privateKey ?? '')
    .digest('hex');
  return ep as SshEndpoint;
}

/** A config value that may be a literal or a reference; either way it is a secret to redact. */
function resolveSecret(services: Services, value: string, where: string): string {
  const v = services.secrets.resolve(value, where);
  if (parseRefs(value).length === 0) services.redactor.addSecret(v);
  return v;
}

/** Resolves the endpoint for a call; throws the ToolErrors above. */
export function endpointFor(ctx: ActionContext, name: string): SshEndpoint {
  return resolveEndpoint(ctx.services, name);
}
