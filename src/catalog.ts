import type { ToolDef } from './core/define-action.js';
import type { EnvFlags } from './core/services.js';
import { loadConfigFile, type LoadedConfig } from './config/load.js';
import { CapabilitiesFileSchema, PolicyFileSchema } from './config/schemas.js';
import { actionJsonSchema } from './exec/schemas.js';
import type { PolicyView } from './policy/policy.js';
import { TOOL_ALIASES } from './toolsets/registry.js';

/** tool_catalog.json: every native tool and action with its effect and exact input schema. */
export function buildCatalog(tools: readonly ToolDef[]): Record<string, unknown> {
  return {
    $comment: 'Generated from the action definitions by tools/generate.ts; do not edit by hand.',
    tools: tools.map((t) => ({
      name: t.name,
      title: t.title,
      description: t.description,
      ...(t.enabledBy ? { gated: t.name === 'local' ? 'INFRA_UNSAFE_LOCAL=1' : 'flag' } : {}),
      actions: t.actions.map((a) => ({
        action: a.action,
        effect: a.effect,
        ...(a.effectOf ? { effect_depends_on_arguments: true } : {}),
        ...(a.long ? { async: true } : {}),
        description: a.description,
        input_schema: actionJsonSchema(a),
      })),
    })),
    aliases: TOOL_ALIASES,
  };
}

/** A policy view with every default: what a fresh project sees (for snapshots and docs). */
export function defaultPolicyView(flags: Partial<EnvFlags> = {}): PolicyView {
  const issues: never[] = [];
  const config: LoadedConfig = {
    targets: {},
    profiles: {},
    policy: PolicyFileSchema.parse({}),
    runbooks: {},
    capabilities: loadConfigFile('/nonexistent/capabilities.json', CapabilitiesFileSchema, issues).value,
    servers: {},
    issues,
    policyIssue: undefined,
    runbooksPath: '/nonexistent/runbooks.json',
  };
  return { flags: { unsafeLocal: false, allowSecretExport: false, readOnly: false, ...flags }, config };
}
