import type { Services } from '../core/services.js';
import { isToolError } from '../core/errors.js';
import { addPreflightSource, type PreflightItem } from '../toolsets/preflight/index.js';
import { classify } from '../toolsets/preflight/sources.js';
import type { Federation, ServerStatus } from './federation.js';

const byServices = new WeakMap<Services, Federation>();

/** The federation of a runtime, found from its services (preflight sources only get those). */
export function registerFederation(services: Services, federation: Federation): void {
  byServices.set(services, federation);
}

function item(s: ServerStatus, started: number | undefined): PreflightItem {
  const blocked = s.tools.filter((t) => t.state === 'changed' || t.state === 'hidden_characters' || t.state === 'refused');
  const exposed = s.tools.filter((t) => t.state === 'exposed').length;
  const warnings = blocked.map((t) => `${t.name} is ${t.state === 'changed' ? 'blocked' : 'refused'}: ${t.reason ?? t.state}`);
  const pending = s.tools.filter((t) => t.state === 'pending_approval').map((t) => t.name);
  if (s.status !== 'pending_approval' && pending.length) warnings.push(`pending approval: ${pending.join(', ')}`);
  const base = {
    kind: 'upstream',
    name: s.name,
    latency_ms: started === undefined ? null : Date.now() - started,
    ...(warnings.length ? { warnings } : {}),
  };
  switch (s.status) {
    case 'disabled':
      return {
        ...base,
        status: 'disabled',
        message: `server ${s.name} is disabled in servers.json`,
        policy: `servers.json ${s.name}.enabled`,
        latency_ms: null,
      };
    case 'missing_credentials':
      return {
        ...base,
        status: 'missing_credentials',
        message: `server ${s.name}: ${s.reason ?? 'missing credentials'}`,
        ...(s.hint ? { hint: s.hint } : {}),
        missing: (s.reason ?? '')
          .replace(/^not set: /, '')
          .split(', ')
          .filter(Boolean),
        latency_ms: null,
      };
    case 'pending_approval':
      return {
        ...base,
        status: 'disabled',
        message: `server ${s.name} is pending approval (${s.reason ?? 'never approved'}); none of its tools are exposed`,
        ...(s.hint ? { hint: s.hint } : {}),
        policy: 'tool_pins (infra servers approve)',
      };
    case 'failed':
      return {
        ...base,
        status: 'failed',
        reason: classify('CONNECTION_FAILED', s.reason ?? ''),
        message: `server ${s.name} failed: ${s.reason ?? 'unknown'}`,
        ...(s.hint ? { hint: s.hint } : {}),
      };
    default:
      return {
        ...base,
        status: 'ok',
        message: `server ${s.name} ${s.status === 'idle' ? 'not started yet (lazy)' : s.status}; ${exposed} tool(s) exposed of ${s.tools.length}`,
      };
  }
}

addPreflightSource({
  kind: 'upstream',
  names: (services) => Object.keys(services.config.servers ?? {}),
  check: async (ctx, name, opts) => {
    const fed = byServices.get(ctx.services);
    const find = (): ServerStatus | undefined => fed?.statuses().find((s) => s.name === name);
    let s = find();
    if (!fed || !s)
      return { kind: 'upstream', name, status: 'failed', reason: 'error', message: `server ${name} is not loaded`, latency_ms: null };
    let started: number | undefined;
    if (opts.probe && s.status !== 'disabled' && s.status !== 'missing_credentials') {
      started = Date.now();
      try {
        await Promise.race([
          fed.connect(name),
          new Promise((_, rej) => setTimeout(() => rej(new Error(`no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs).unref()),
        ]);
      } catch (e) {
        if (!isToolError(e)) ctx.log.debug('upstream probe', { server: name, error: (e as Error).message });
      }
      s = find() ?? s;
    }
    return item(s, started);
  },
});
