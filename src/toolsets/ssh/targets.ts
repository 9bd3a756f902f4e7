import { z } from 'zod';
import { defineAction } from '../../core/define-action.js';
import { targetAllowed } from './resolve.js';

export interface TargetSummary {
  name: string;
  host: string;
  port: number;
  username: string;
  description?: string;
  tags: string[];
  jump: string | null;
  /** Which credentials are configured (never their values). */
  auth: string[];
  host_key: 'pin' | 'known_hosts';
  allowed: boolean;
}

export const targetsAction = defineAction({
  tool: 'ssh',
  action: 'targets',
  effect: 'read',
  description:
    'The named SSH targets from targets.json: name, host, port, user, tags, jump host, auth kinds and whether policy allows them. Never secrets.',
  input: z.strictObject({
    query: z.string().optional().describe('Substring matched against name, host, description and tags'),
    limit: z.number().int().min(1).max(1000).default(100),
  }),
  summarize: (r: { targets: TargetSummary[]; total: number }) => `${r.targets.length} of ${r.total} targets`,
  handler: async (ctx, a) => {
    const q = a.query?.toLowerCase();
    const all: TargetSummary[] = Object.entries(ctx.services.config.targets).map(([name, t]) => ({
      name,
      host: t.host,
      port: t.port,
      username: t.username,
      ...(t.description ? { description: t.description } : {}),
      tags: t.tags,
      jump: t.jump ?? null,
      auth: [
        (t.key_file !== undefined || t.private_key !== undefined) && 'key',
        t.password !== undefined && 'password',
        t.agent !== undefined && t.agent !== false && 'agent',
      ].filter((x): x is string => typeof x === 'string'),
      host_key: t.host_key_sha256 ? 'pin' : 'known_hosts',
      allowed: targetAllowed(ctx.services, name),
    }));
    const matched = q ? all.filter((t) => [t.name, t.host, t.description ?? '', ...t.tags].some((s) => s.toLowerCase().includes(q))) : all;
    return { targets: matched.slice(0, a.limit), total: matched.length };
  },
});
