import { z } from 'zod';
import { defineAction } from '../../core/define-action.js';
import { isToolError } from '../../core/errors.js';
import { targetArg } from './exec.js';
import { endpointFor, gateTarget, pool } from './resolve.js';

export interface CheckResult {
  target: string;
  ok: boolean;
  reachable: boolean | null;
  host_key_ok: boolean | null;
  auth_ok: boolean | null;
  /** The presented host key, OpenSSH form. */
  host_key_sha256: string | null;
  connect_ms: number | null;
  /** Round trip of one `true` exec on the connection. */
  latency_ms: number | null;
  jump: string | null;
  error?: { code: string; message: string; hint?: string };
}

/** Codes that describe the target rather than our call: check reports them as its result. */
const TARGET_CODES = new Set(['CONNECTION_FAILED', 'AUTH_FAILED', 'HOST_KEY_MISMATCH']);

export const checkAction = defineAction({
  tool: 'ssh',
  action: 'check',
  effect: 'read',
  description:
    'Health of one target on a fresh connection: reachable, host key ok, auth ok, connect time and command latency. ' +
    'A failing target is a result with ok:false and the error code, not a tool error.',
  input: z.strictObject({ target: targetArg }),
  target: (a) => a.target,
  gate: (a, services) => gateTarget(a.target, services),
  summarize: (r: CheckResult) => (r.ok ? `ok: connect ${r.connect_ms} ms, latency ${r.latency_ms} ms` : `failed: ${r.error?.code ?? '?'}`),
  handler: async (ctx, a): Promise<CheckResult> => {
    const jumpName = ctx.services.config.targets[a.target]?.jump ?? null;
    const base = { target: a.target, jump: jumpName };
    try {
      const ep = endpointFor(ctx, a.target);
      const r = await pool(ctx.services).probe(ep, ctx.signal);
      return {
        ...base,
        ok: true,
        reachable: true,
        host_key_ok: true,
        auth_ok: true,
        host_key_sha256: r.hostKey?.fingerprint ?? null,
        connect_ms: r.connectMs,
        latency_ms: r.latencyMs,
      };
    } catch (e) {
      if (ctx.signal.aborted || !isToolError(e) || !TARGET_CODES.has(e.code)) throw e;
      const fp = typeof e.details?.fingerprint === 'string' ? e.details.fingerprint : null;
      const missing = e.details?.status === 'missing_credentials';
      return {
        ...base,
        ok: false,
        reachable: e.code === 'CONNECTION_FAILED' ? false : missing ? null : true,
        host_key_ok: e.code === 'HOST_KEY_MISMATCH' ? false : e.code === 'AUTH_FAILED' && !missing ? true : null,
        auth_ok: e.code === 'AUTH_FAILED' ? false : null,
        host_key_sha256: fp,
        connect_ms: null,
        latency_ms: null,
        error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) },
      };
    }
  },
});
