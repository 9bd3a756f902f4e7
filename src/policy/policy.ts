import type { ActionDef, Effect, ToolDef } from '../core/define-action.js';
import type { EnvFlags, Services } from '../core/services.js';

/** The part of Services that policy decisions read. */
export type PolicyView = Pick<Services, 'flags' | 'config'>;
import type { z } from 'zod';

const truthy = (v: string | undefined): boolean => v === '1' || v === 'true' || v === 'yes';

export function readFlags(env: NodeJS.ProcessEnv): EnvFlags {
  return {
    unsafeLocal: truthy(env.INFRA_UNSAFE_LOCAL),
    allowSecretExport: truthy(env.INFRA_ALLOW_SECRET_EXPORT),
    readOnly: truthy(env.INFRA_READ_ONLY),
  };
}

export interface Refusal {
  message: string;
  hint: string;
}

/**
 * Whether policy leaves this tool visible and callable at all. Applied both to tools/list and
 * again at call time (a hidden tool is still refused by name).
 */
export function toolRefusal(tool: ToolDef, services: PolicyView): Refusal | undefined {
  if (tool.enabledBy && !tool.enabledBy(services)) {
    if (tool.name === 'local') {
      return {
        message: 'the local tool is disabled: local process spawns and file access are off by default',
        hint: 'a human can enable it by starting infra with INFRA_UNSAFE_LOCAL=1 in its environment',
      };
    }
    return { message: `the ${tool.name} tool is disabled`, hint: 'see docs/SECURITY.md for the flag that enables it' };
  }
  const t = services.config.policy.tools[tool.name];
  if (t?.enabled === false) {
    return {
      message: `the ${tool.name} tool is disabled by policy.json (tools.${tool.name}.enabled is false)`,
      hint: `a human can set "tools": { "${tool.name}": { "enabled": true } } in policy.json`,
    };
  }
  return undefined;
}

/**
 * Whether policy leaves this action visible. `effect` is the effect being judged: the action's
 * most severe one when listing, the effect of this call at call time.
 */
export function actionRefusal(
  tool: ToolDef,
  def: ActionDef<z.ZodObject, unknown>,
  effect: Effect,
  services: PolicyView,
): Refusal | undefined {
  const issue = services.config.policyIssue;
  if (issue) return { message: `policy.json is invalid, so every call is refused: ${issue.message}`, hint: issue.hint };
  const t = toolRefusal(tool, services);
  if (t) return t;
  if (def.enabledBy && !def.enabledBy.check(services)) {
    return { message: `${tool.name}.${def.action} is disabled by default`, hint: def.enabledBy.hint };
  }
  const toggle = services.config.policy.tools[tool.name]?.actions?.[def.action];
  if (toggle === false) {
    return {
      message: `${tool.name}.${def.action} is disabled by policy.json (tools.${tool.name}.actions.${def.action} is false)`,
      hint: `a human can set it to true in policy.json`,
    };
  }
  if (services.flags.readOnly && effect !== 'read') {
    return {
      message: `${tool.name}.${def.action} is a ${effect} action and infra runs with INFRA_READ_ONLY=1`,
      hint: 'read-only mode hides and refuses every write and irreversible action; a human can unset INFRA_READ_ONLY to allow it',
    };
  }
  return undefined;
}

/** The least severe effect an action can have: actions whose effect depends on arguments may be read. */
export function listingEffect(def: ActionDef<z.ZodObject, unknown>): Effect {
  return def.effectOf ? 'read' : def.effect;
}

/**
 * Whether this call must be confirmed by the user first. policy.confirm["tool.action"] decides
 * when present; otherwise irreversible actions are confirmed.
 */
export function needsConfirm(tool: string, action: string, effect: Effect, services: PolicyView): boolean {
  const explicit = services.config.policy.confirm[`${tool}.${action}`] ?? services.config.policy.confirm[tool];
  if (explicit !== undefined) return explicit;
  return effect === 'irreversible';
}
