import type { ActionContext } from '../../core/define-action.js';
import type { Services } from '../../core/services.js';
import type { SshTarget } from '../../config/schemas.js';
import { targetAllowed } from '../ssh/resolve.js';
import { pickProfile, postgresProfiles } from '../psql/common.js';
import { httpProfiles } from '../http/destination.js';
import {
  classify,
  disabledItem,
  failedFromEnvelope,
  missingItem,
  missingRefs,
  probeRefusal,
  type PreflightItem,
  type PreflightSource,
} from './sources.js';
import { isToolError } from '../../core/errors.js';

/** The target and every jump host it goes through (missing credentials anywhere stop it). */
function jumpChain(services: Services, name: string): [string, SshTarget][] {
  const out: [string, SshTarget][] = [];
  let cur: string | undefined = name;
  while (cur !== undefined && out.length < 9 && !out.some(([n]) => n === cur)) {
    const t: SshTarget | undefined = services.config.targets[cur];
    if (!t) break;
    out.push([cur, t]);
    cur = t.jump;
  }
  return out;
}

export const sshSource: PreflightSource = {
  kind: 'ssh',
  names: (services) => Object.keys(services.config.targets),
  async check(ctx: ActionContext, name, opts): Promise<PreflightItem> {
    const services = ctx.services;
    const refused = probeRefusal(services, 'ssh', 'check');
    if (refused) return disabledItem('ssh', name, refused);
    if (!targetAllowed(services, name)) {
      return disabledItem('ssh', name, {
        message: `ssh target ${name} is not in policy.json ssh.allow_targets`,
        hint: `a human can add "${name}" to ssh.allow_targets in policy.json`,
        policy: 'ssh.allow_targets',
      });
    }
    const missing = jumpChain(services, name).flatMap(([, t]) => {
      const m = missingRefs(services, t);
      if (t.agent === true && !services.secrets.lookup({ kind: 'env', name: 'SSH_AUTH_SOCK', raw: '${env:SSH_AUTH_SOCK}' }))
        m.push('env:SSH_AUTH_SOCK');
      return m;
    });
    if (missing.length) return missingItem('ssh', name, [...new Set(missing)], services);
    if (!opts.probe) return notProbed('ssh', name);
    const env = await ctx.call('ssh', { action: 'check', target: name }, { timeoutMs: opts.timeoutMs });
    if (!env.ok) return failedFromEnvelope('ssh', name, env);
    const r = env.result as {
      ok: boolean;
      reachable: boolean | null;
      latency_ms: number | null;
      connect_ms: number | null;
      error?: { code: string; message: string; hint?: string };
    };
    if (r.ok) {
      return {
        kind: 'ssh',
        name,
        status: 'ok',
        message: `connected in ${r.connect_ms} ms, command round trip ${r.latency_ms} ms`,
        latency_ms: r.latency_ms,
        probe_call_id: env.call_id,
      };
    }
    const code = r.error?.code ?? 'CONNECTION_FAILED';
    const message = r.error?.message ?? 'check failed';
    if (code === 'AUTH_FAILED' && r.reachable === null) {
      // credentials configured but unusable before connecting (an unreadable key file)
      return {
        kind: 'ssh',
        name,
        status: 'missing_credentials',
        message,
        ...(r.error?.hint ? { hint: r.error.hint } : {}),
        missing: [],
        latency_ms: null,
        probe_call_id: env.call_id,
      };
    }
    return {
      kind: 'ssh',
      name,
      status: 'failed',
      reason: classify(code, message),
      message,
      ...(r.error?.hint ? { hint: r.error.hint } : {}),
      latency_ms: env.duration_ms,
      probe_call_id: env.call_id,
    };
  },
};

export const postgresSource: PreflightSource = {
  kind: 'postgres',
  names: (services) => Object.keys(postgresProfiles(services)),
  async check(ctx, name, opts): Promise<PreflightItem> {
    const services = ctx.services;
    const refused = probeRefusal(services, 'psql', 'query');
    if (refused) return disabledItem('postgres', name, refused);
    try {
      pickProfile(services, { profile: name });
    } catch (e) {
      if (isToolError(e) && e.code === 'DENIED')
        return disabledItem('postgres', name, { message: e.message, hint: e.hint ?? '', policy: 'psql.allow_profiles' });
      throw e;
    }
    const profile = postgresProfiles(services)[name]!;
    const warnings: string[] = [];
    if (profile.mode === 'read_only' && profile.allow_superuser) {
      warnings.push(
        `read_only profile with "allow_superuser": true: a superuser (or a login with server-file, program or signal roles) can act outside a READ ONLY transaction; prefer a login with GRANT pg_read_all_data`,
      );
    }
    const missing = missingRefs(services, profile);
    if (missing.length) return { ...missingItem('postgres', name, missing, services), ...(warnings.length ? { warnings } : {}) };
    if (!opts.probe) return { ...notProbed('postgres', name), ...(warnings.length ? { warnings } : {}) };
    const env = await ctx.call('psql', { action: 'query', profile: name, sql: 'select 1 as ok' }, { timeoutMs: opts.timeoutMs });
    const item: PreflightItem = env.ok
      ? {
          kind: 'postgres',
          name,
          status: 'ok',
          message: `select 1 answered (${profile.mode})`,
          latency_ms: env.duration_ms,
          probe_call_id: env.call_id,
        }
      : failedFromEnvelope('postgres', name, env);
    return warnings.length ? { ...item, warnings } : item;
  },
};

export const httpSource: PreflightSource = {
  kind: 'http',
  names: (services) => httpProfiles(services).map(([n]) => n),
  async check(ctx, name, opts): Promise<PreflightItem> {
    const services = ctx.services;
    const refused = probeRefusal(services, 'http', 'check');
    if (refused) return disabledItem('http', name, refused);
    const profile = services.config.profiles[name];
    const missing = missingRefs(services, profile);
    if (missing.length) return missingItem('http', name, missing, services);
    if (!opts.probe) return notProbed('http', name);
    // any answer but 401/403 means reachable with working credentials (base_url may not serve a page)
    const env = await ctx.call('http', { action: 'check', profile: name }, { timeoutMs: opts.timeoutMs });
    if (!env.ok) return failedFromEnvelope('http', name, env);
    const r = env.result as { status: number | null; latency_ms: number | null; reasons: string[]; url: string };
    const base = { kind: 'http', name, latency_ms: r.latency_ms, probe_call_id: env.call_id };
    if (r.status === null) {
      const message = r.reasons[0] ?? `no response from ${r.url}`;
      return { ...base, status: 'failed', reason: classify('CONNECTION_FAILED', message), message };
    }
    if (r.status === 401 || r.status === 403) {
      return {
        ...base,
        status: 'failed',
        reason: 'auth',
        message: `${r.url} answered ${r.status}: the credentials were refused`,
        hint: `check the Authorization (or API key) header of profile ${name} and the value it refers to`,
      };
    }
    if (r.status >= 500) {
      return { ...base, status: 'failed', reason: 'error', message: `${r.url} answered ${r.status}` };
    }
    return { ...base, status: 'ok', message: `${r.url} answered ${r.status}` };
  },
};

function notProbed(kind: string, name: string): PreflightItem {
  return { kind, name, status: 'ok', message: 'configuration complete (not probed: probe false)', latency_ms: null };
}

export const BUILTIN_SOURCES: readonly PreflightSource[] = [sshSource, postgresSource, httpSource];
