import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { EFFECT_RANK, type Effect, type ToolDef, type UpstreamToolSpec } from '../core/define-action.js';
import { OUTPUT_SCHEMA, toolInputSchema } from '../exec/schemas.js';
import { actionRefusal, listingEffect, type PolicyView } from '../policy/policy.js';

/** Tools that reach systems outside this process. */
const OPEN_WORLD = new Set(['ssh', 'http', 'psql', 'repo', 'runbook', 'local']);

/**
 * The tools/list answer: only what policy leaves visible (it is checked again at call time).
 * Annotations derive from the most severe visible action's effect.
 */
export function listTools(tools: readonly ToolDef[], services: PolicyView): Tool[] {
  const out: Tool[] = [];
  for (const tool of tools) {
    if (tool.upstream) {
      const listed = upstreamListing(tool, tool.upstream, services);
      if (listed) out.push(listed);
      continue;
    }
    const visible = tool.actions.filter((def) => !actionRefusal(tool, def, listingEffect(def), services));
    if (visible.length === 0) continue;
    let worst: Effect = 'read';
    for (const def of visible) {
      // in read-only mode an argument-dependent action is listed for its read uses
      const e = services.flags.readOnly && def.effectOf ? 'read' : def.effect;
      if (EFFECT_RANK[e] > EFFECT_RANK[worst]) worst = e;
    }
    const actionsText = visible.map((d) => d.action).join(', ');
    out.push({
      name: tool.name,
      title: tool.title,
      description: `${tool.description} Actions: ${actionsText}.`,
      inputSchema: toolInputSchema(tool, visible) as Tool['inputSchema'],
      outputSchema: OUTPUT_SCHEMA as Tool['outputSchema'],
      annotations: {
        title: tool.title,
        readOnlyHint: worst === 'read',
        destructiveHint: worst === 'irreversible',
        idempotentHint: worst === 'read',
        openWorldHint: OPEN_WORLD.has(tool.name),
      },
    });
  }
  return out;
}

/**
 * A federated tool is listed with its own (sanitized) inputSchema and annotations, when policy,
 * the server's allow/deny globs and its approval pin all leave it visible.
 */
function upstreamListing(tool: ToolDef, up: UpstreamToolSpec, services: PolicyView): Tool | undefined {
  if (actionRefusal(tool, up.action, up.effect, services) || up.refusal()) return undefined;
  return {
    name: tool.name,
    ...(tool.title ? { title: tool.title } : {}),
    description: tool.description,
    inputSchema: up.inputSchema as Tool['inputSchema'],
    outputSchema: OUTPUT_SCHEMA as Tool['outputSchema'],
    ...(up.annotations ? { annotations: up.annotations } : {}),
  };
}
