import { z } from 'zod';
import { defineAction, defineTool } from '../../core/define-action.js';

const jobId = z.string().min(1).max(64).describe('The job_id an async call returned');

export const jobsTool = defineTool({
  name: 'jobs',
  title: 'Jobs',
  description:
    'Follow long actions started with async: true (ssh exec, local exec, runbook run, psql export): list, status, wait, logs, cancel. Cancel only stops work this server started.',
  actions: [
    defineAction({
      tool: 'jobs',
      action: 'list',
      effect: 'read',
      description: 'Recent jobs, newest first',
      input: z.strictObject({
        status: z.enum(['running', 'ok', 'error', 'cancelled', 'timeout', 'interrupted']).optional(),
        limit: z.number().int().min(1).max(500).default(50),
      }),
      summarize: (r: { jobs: unknown[] }) => `${r.jobs.length} jobs`,
      handler: async (ctx, a) => ({ jobs: ctx.services.jobs.list(a) }),
    }),
    defineAction({
      tool: 'jobs',
      action: 'status',
      effect: 'read',
      description: 'Status, progress, and the final envelope once ended',
      input: z.strictObject({ job_id: jobId }),
      target: (a) => a.job_id,
      summarize: (r: { status: string }) => r.status,
      handler: async (ctx, a) => ctx.services.jobs.get(a.job_id),
    }),
    defineAction({
      tool: 'jobs',
      action: 'wait',
      effect: 'read',
      description: 'Wait until the job ends or wait_ms passes (default 30 s), then report its status',
      input: z.strictObject({ job_id: jobId, wait_ms: z.number().int().min(0).max(55_000).default(30_000) }),
      target: (a) => a.job_id,
      summarize: (r: { status: string }) => r.status,
      handler: async (ctx, a) => {
        const wait = Math.max(0, Math.min(a.wait_ms, ctx.deadline - Date.now() - 250));
        return ctx.services.jobs.wait(a.job_id, wait, ctx.signal);
      },
    }),
    defineAction({
      tool: 'jobs',
      action: 'logs',
      effect: 'read',
      description: 'Output of the job so far (head and tail of each stream); full streams are in its artifact',
      input: z.strictObject({ job_id: jobId }),
      target: (a) => a.job_id,
      summarize: (r: { status: string }) => r.status,
      handler: async (ctx, a) => {
        const info = ctx.services.jobs.get(a.job_id);
        const live = ctx.services.jobs.liveOutput(a.job_id);
        if (live) return { job_id: a.job_id, status: info.status, streams: live, artifact: `artifact://calls/${info.call_id}/` };
        const files = await ctx.services.artifacts.listDir(`artifact://calls/${info.call_id}/`).catch(() => []);
        const streams: Record<string, { bytes: number; tail: string }> = {};
        for (const f of files) {
          if (f.type !== 'file' || f.name === 'call.json') continue;
          const r = await ctx.services.artifacts.read(f.uri, { maxBytes: Math.min(ctx.maxBytes, 16384), tail: true });
          streams[f.name] = { bytes: r.bytes, tail: r.content };
        }
        return { job_id: a.job_id, status: info.status, streams, artifact: `artifact://calls/${info.call_id}/` };
      },
    }),
    defineAction({
      tool: 'jobs',
      action: 'cancel',
      effect: 'read',
      description: 'Cancel a running job of this server (stops the remote work too)',
      input: z.strictObject({ job_id: jobId }),
      target: (a) => a.job_id,
      summarize: (r: { status: string }) => `cancel requested (${r.status})`,
      handler: async (ctx, a) => {
        ctx.services.jobs.cancel(a.job_id);
        const info = await ctx.services.jobs.wait(a.job_id, 5000, ctx.signal);
        return { job_id: a.job_id, status: info.status };
      },
    }),
  ],
});
