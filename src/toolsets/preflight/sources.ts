import type { ActionContext } from '../../core/define-action.js';
import type { Envelope } from '../../core/envelope.js';
import type { Services } from '../../core/services.js';
import { actionRefusal } from '../../policy/policy.js';
import { parseRefs } from '../../config/secret-refs.js';
import { stringsWithPath } from '../secrets/references.js';

/** Connection status of DESIGN §2 (as the seed platforms show it). */
export type PreflightStatus = 'ok' | 'missing_credentials' | 'disabled' | 'failed';
export type FailReason = 'unreachable' | 'auth' | 'host_key' | 'tls' | 'timeout' | 'privileges' | 'error';

export interface PreflightItem {
  /** `ssh`, `postgres`, `http`, `upstream` … */
  kind: string;
  name: string;
  status: PreflightStatus;
  /** Why it failed (status failed only). */
  reason?: FailReason;
  message: string;
  /** What a human does about it. */
  hint?: string;
  /** The references that are not set (missing_credentials). */
  missing?: string[];
  /** The policy that disables it (disabled), e.g. `ssh.allow_targets`. */
  policy?: string;
  latency_ms: number | null;
  /** Things that work but deserve a look (e.g. a read_only profile with allow_superuser). */
  warnings?: string[];
  /** The audited child call that probed it. */
  probe_call_id?: string;
}

/**
 * One kind of configured thing preflight reports on. The federation engineer adds upstream MCP
 * servers with `addPreflightSource({ kind: 'upstream', names, check })`.
 */
export interface PreflightSource {
  kind: string;
  /** The configured names of this kind (read at call time). */
  names(services: Services): string[];
  /** Status of one; `probe: false` means report only what needs no connection. */
  check(ctx: ActionContext, name: string, opts: { probe: boolean; timeoutMs: number }): Promise<PreflightItem>;
}

const extra: PreflightSource[] = [];

/** Registers another source (upstream servers); checked after the built-in ones. */
export function addPreflightSource(source: PreflightSource): void {
  const i = extra.findIndex((s) => s.kind === source.kind);
  if (i >= 0) extra[i] = source;
  else extra.push(source);
}

export function extraSources(): readonly PreflightSource[] {
  return extra;
}

// ---- helpers shared by the sources ----

/** The references in a config entry that cannot be resolved now, as `env:NAME` labels. */
export function missingRefs(services: Services, entry: unknown): string[] {
  const out: string[] = [];
  for (const [, v] of stringsWithPath(entry, '')) {
    if (parseRefs(v).length === 0) continue;
    for (const m of services.secrets.missing(v)) if (!out.includes(m)) out.push(m);
  }
  return out;
}

/** policy refusal of the read action a probe uses (tool off, action toggled off …). */
export function probeRefusal(
  services: Services,
  tool: string,
  action: string,
): { message: string; hint: string; policy: string } | undefined {
  const t = services.tools.find((x) => x.name === tool);
  const def = t?.actions.find((a) => a.action === action);
  if (!t || !def) return { message: `the ${tool} tool is not available in this build`, hint: '', policy: 'build' };
  const r = actionRefusal(t, def, 'read', services);
  if (!r) return undefined;
  const m = /\((tools\.[^)]+?) is false\)|policy\.json is invalid/.exec(r.message);
  return { ...r, policy: m?.[1] ? m[1] : m ? 'policy.json (invalid)' : `tools.${tool}` };
}

export function missingItem(kind: string, name: string, missing: string[], services: Services): PreflightItem {
  void services;
  const hints = missing.map(howTo);
  return {
    kind,
    name,
    status: 'missing_credentials',
    message: `${kind} ${name} refers to ${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not set`,
    hint: hints.filter(Boolean).join('; '),
    missing,
    latency_ms: null,
  };
}

function howTo(label: string): string {
  const [kind, ...rest] = label.split(':');
  const name = rest.join(':');
  if (kind === 'secret') return `infra secrets set ${name} (value on stdin)`;
  if (kind === 'file') return `create ${name}`;
  return `set ${name} in infra's environment (MCP clients: the server's "env" block)`;
}

export function disabledItem(kind: string, name: string, r: { message: string; hint: string; policy: string }): PreflightItem {
  return { kind, name, status: 'disabled', message: r.message, hint: r.hint, policy: r.policy, latency_ms: null };
}

/** Reason of a failure from its error code and message. */
export function classify(code: string, message: string): FailReason {
  if (code === 'HOST_KEY_MISMATCH') return 'host_key';
  if (code === 'AUTH_FAILED') return 'auth';
  if (code === 'TIMEOUT') return 'timeout';
  if (/\b(TLS|SSL|certificate|CERT_|self[- ]signed)/i.test(message)) return 'tls';
  if (/timed? ?out|within \d+ ?ms|ETIMEDOUT|CONNECT_TIMEOUT/i.test(message)) return 'timeout';
  if (code === 'CONNECTION_FAILED' || code === 'UPSTREAM_ERROR') return 'unreachable';
  return 'error';
}

export function failedFromEnvelope(kind: string, name: string, env: Envelope & { ok: false }): PreflightItem {
  const e = env.error;
  const details = (e.details ?? {}) as Record<string, unknown>;
  if (e.code === 'AUTH_FAILED' && details.status === 'missing_credentials') {
    return {
      kind,
      name,
      status: 'missing_credentials',
      message: e.message,
      ...(e.hint ? { hint: e.hint } : {}),
      missing: typeof details.missing === 'string' ? [details.missing] : [],
      latency_ms: null,
      probe_call_id: env.call_id,
    };
  }
  if (e.code === 'DENIED' && !/read_only but its login/.test(e.message)) {
    return {
      kind,
      name,
      status: 'disabled',
      message: e.message,
      ...(e.hint ? { hint: e.hint } : {}),
      policy: typeof details.rule === 'string' ? details.rule : 'policy.json',
      latency_ms: null,
      probe_call_id: env.call_id,
    };
  }
  return {
    kind,
    name,
    status: 'failed',
    reason: e.code === 'DENIED' ? 'privileges' : classify(e.code, e.message),
    message: e.message,
    ...(e.hint ? { hint: e.hint } : {}),
    latency_ms: env.duration_ms ?? null,
    probe_call_id: env.call_id,
  };
}
