import { z } from 'zod';
import { defineAction, defineTool } from '../../core/define-action.js';
import type { Services } from '../../core/services.js';
import { actionJsonSchema } from '../../exec/schemas.js';
import { actionRefusal, listingEffect } from '../../policy/policy.js';

interface Doc {
  kind: 'action' | 'runbook' | 'target' | 'profile';
  name: string;
  text: string;
  build: () => Record<string, unknown>;
}

/** Extra searchable documents (runbooks) contributed by other toolsets. */
export type HelpSource = (services: Services) => Doc[];
const sources: HelpSource[] = [];
export function addHelpSource(s: HelpSource): void {
  sources.push(s);
}
export type { Doc as HelpDoc };

function docs(services: Services): Doc[] {
  const out: Doc[] = [];
  for (const tool of services.tools) {
    for (const def of tool.actions) {
      if (actionRefusal(tool, def, listingEffect(def), services)) continue;
      const props = Object.keys(def.input.shape).join(' ');
      out.push({
        kind: 'action',
        name: `${tool.name}.${def.action}`,
        text: `${tool.name} ${def.action} ${tool.title} ${def.description} ${props}`,
        build: () => ({
          tool: tool.name,
          action: def.action,
          effect: def.effect,
          description: def.description,
          ...(def.long ? { async: 'accepts async: true (returns a job_id)' } : {}),
          input_schema: actionJsonSchema(def),
        }),
      });
    }
  }
  for (const [name, t] of Object.entries(services.config.targets)) {
    out.push({
      kind: 'target',
      name,
      text: `ssh target ${name} ${t.host} ${t.username} ${t.tags.join(' ')} ${t.description ?? ''}`,
      build: () => ({
        target: name,
        host: t.host,
        port: t.port,
        username: t.username,
        tags: t.tags,
        jump: t.jump ?? null,
        description: t.description ?? null,
      }),
    });
  }
  for (const [name, p] of Object.entries(services.config.profiles)) {
    out.push({
      kind: 'profile',
      name,
      text: `${p.type} profile ${name} ${p.type === 'http' ? `http api ${p.base_url}` : `postgres psql database db ${p.mode}`} ${p.description ?? ''}`,
      build: () => ({
        profile: name,
        type: p.type,
        ...(p.type === 'http' ? { base_url: p.base_url } : { mode: p.mode }),
        description: p.description ?? null,
      }),
    });
  }
  for (const s of sources) out.push(...s(services));
  return out;
}

function score(doc: Doc, words: string[]): number {
  if (words.length === 0) return 1;
  const name = doc.name.toLowerCase();
  const text = doc.text.toLowerCase();
  let s = 0;
  for (const w of words) {
    if (name === w) s += 10;
    else if (name.includes(w)) s += 4;
    if (text.includes(w)) s += 1;
  }
  return s;
}

export const helpTool = defineTool({
  name: 'help',
  title: 'Help',
  description:
    'Search the tools, actions, arguments, runbooks, ssh targets and profiles of this server; returns the exact input schema of each matching action. Start here.',
  actions: [
    defineAction({
      tool: 'help',
      action: 'search',
      effect: 'read',
      description: 'Search by words, e.g. "ssh exec", "runbook", "export table"',
      input: z.strictObject({
        query: z.string().max(512).default('').describe('Words to look for; empty lists everything'),
        limit: z.number().int().min(1).max(100).default(10),
      }),
      summarize: (r: { matches: unknown[] }) => `${r.matches.length} matches`,
      handler: async (ctx, a) => {
        const words = a.query
          .toLowerCase()
          .split(/[\s,.:/]+/)
          .filter((w) => w.length > 0);
        const all = docs(ctx.services);
        const ranked = all
          .map((d) => ({ d, s: score(d, words) }))
          .filter((x) => x.s > 0)
          .sort((x, y) => y.s - x.s || x.d.name.localeCompare(y.d.name));
        const matches = ranked.slice(0, a.limit).map((x) => ({ kind: x.d.kind, name: x.d.name, ...x.d.build() }));
        return {
          query: a.query,
          total: ranked.length,
          matches,
          tools: ctx.services.tools.map((t) => t.name),
          hint: matches.length === 0 ? 'no match: try fewer words, or an empty query to list everything' : undefined,
        };
      },
    }),
  ],
});
