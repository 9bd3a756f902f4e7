import { z } from 'zod';
import { defineAction, defineTool } from '../../core/define-action.js';
import { isToolError } from '../../core/errors.js';
import { BUILTIN_SOURCES } from './builtin.js';
import { extraSources, type PreflightItem, type PreflightStatus } from './sources.js';

export { addPreflightSource, type PreflightItem, type PreflightSource } from './sources.js';

export interface PreflightResult {
  summary: Record<PreflightStatus, number> & { total: number };
  items: PreflightItem[];
}

/** Probes run a few at a time: enough to finish quickly, few enough not to flood a bastion. */
const PARALLEL = 4;
const DEFAULT_PROBE_TIMEOUT_MS = 15_000;

const runAction = defineAction({
  tool: 'preflight',
  action: 'run',
  effect: 'read',
  description:
    'Status of every ssh target, postgres and http profile (and upstream server): ok, missing_credentials (names the reference), disabled (names the policy), or failed (reason: unreachable, auth, host_key, tls, timeout, privileges) with latency. Each probe is a real, audited child call (ssh check, psql select 1, http check).',
  input: z.strictObject({
    kinds: z.array(z.string().min(1).max(32)).max(16).optional().describe('Only these kinds: ssh, postgres, http, upstream'),
    names: z.array(z.string().min(1).max(128)).max(256).optional().describe('Only these target/profile names'),
    probe: z.boolean().default(true).describe('false: report configuration only (credentials, policy), without connecting'),
    probe_timeout_ms: z
      .number()
      .int()
      .min(100)
      .max(120_000)
      .optional()
      .describe(`Bound of each probe (default ${DEFAULT_PROBE_TIMEOUT_MS})`),
  }),
  summarize: (r: PreflightResult) =>
    `${r.summary.total} checked: ${r.summary.ok} ok, ${r.summary.missing_credentials} missing_credentials, ${r.summary.disabled} disabled, ${r.summary.failed} failed`,
  handler: async (ctx, a): Promise<PreflightResult> => {
    const sources = [...BUILTIN_SOURCES, ...extraSources()].filter((s) => !a.kinds || a.kinds.includes(s.kind));
    const jobs: { kind: string; name: string; run: () => Promise<PreflightItem> }[] = [];
    for (const source of sources) {
      let names: string[] = [];
      try {
        names = source.names(ctx.services);
      } catch (e) {
        ctx.log.warn('preflight source failed to list', { kind: source.kind, error: (e as Error).message });
      }
      for (const name of names) {
        if (a.names && !a.names.includes(name)) continue;
        jobs.push({
          kind: source.kind,
          name,
          run: () => source.check(ctx, name, { probe: a.probe, timeoutMs: a.probe_timeout_ms ?? DEFAULT_PROBE_TIMEOUT_MS }),
        });
      }
    }
    const items: PreflightItem[] = new Array<PreflightItem>(jobs.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < jobs.length && !ctx.signal.aborted) {
        const i = next++;
        const job = jobs[i]!;
        try {
          items[i] = await job.run();
        } catch (e) {
          const message = isToolError(e) ? e.message : String((e as Error)?.message ?? e);
          items[i] = { kind: job.kind, name: job.name, status: 'failed', reason: 'error', message, latency_ms: null };
        }
        ctx.progress({
          progress: items.filter(Boolean).length,
          total: jobs.length,
          message: `${job.kind} ${job.name}: ${items[i]!.status}`,
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, jobs.length) }, worker));
    const done = items.filter(Boolean);
    const summary = { total: done.length, ok: 0, missing_credentials: 0, disabled: 0, failed: 0 };
    for (const it of done) summary[it.status]++;
    return { summary, items: done };
  },
});

export const preflightTool = defineTool({
  name: 'preflight',
  title: 'Preflight',
  description:
    'Connection status of everything configured (ssh targets, postgres and http profiles, upstream servers), as a human would check it before work: what is ok, what lacks credentials, what policy disables, what fails and why.',
  actions: [runAction],
});
