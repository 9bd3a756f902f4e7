import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Services } from '../../core/services.js';
import { parseJsonc } from '../../config/jsonc.js';
import { howToSet, parseRefs, refLabel, type SecretRef } from '../../config/secret-refs.js';

export type Resolution = 'env' | 'file' | 'store' | 'missing';

export interface ReferenceInfo {
  /** `env:API_TOKEN`, `secret:DB_PASSWORD`, `file:~/.pgpass-token` */
  ref: string;
  kind: SecretRef['kind'];
  name: string;
  /** Where the value comes from now (never the value). */
  resolves_from: Resolution;
  /** Config entries that use it, e.g. `profiles.json: api.headers.Authorization`. */
  used_by: string[];
  /** How a human provides it, when missing. */
  hint?: string;
}

/** Every string of a config value with its dotted path. */
export function* stringsWithPath(value: unknown, path: string): Generator<[string, string]> {
  if (typeof value === 'string') yield [path, value];
  else if (Array.isArray(value)) for (let i = 0; i < value.length; i++) yield* stringsWithPath(value[i], `${path}[${i}]`);
  else if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) if (k !== '$schema') yield* stringsWithPath(v, path ? `${path}.${k}` : k);
}

/** servers.json (federation) when it exists; read raw so this works before its loader lands. */
export function serversConfig(services: Pick<Services, 'project'>): Record<string, unknown> {
  const p = join(services.project.dir, 'servers.json');
  if (!existsSync(p)) return {};
  try {
    const v = parseJsonc(readFileSync(p, 'utf8')) as Record<string, unknown> | null;
    const servers = v && typeof v === 'object' ? (v.mcpServers ?? v) : {};
    return servers && typeof servers === 'object' ? (servers as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The config files that may hold references, as [file, entries]. */
export function configSources(services: Pick<Services, 'config' | 'project'>): [string, Record<string, unknown>][] {
  return [
    ['targets.json', services.config.targets as Record<string, unknown>],
    ['profiles.json', services.config.profiles as Record<string, unknown>],
    ['servers.json', serversConfig(services)],
  ];
}

export function resolution(services: Pick<Services, 'secrets'>, ref: SecretRef): Resolution {
  if (services.secrets.lookup(ref) === undefined) return 'missing';
  return ref.kind === 'secret' ? 'store' : ref.kind;
}

/** Every `${…}` reference in targets.json, profiles.json and servers.json, with where it resolves from. */
export function collectReferences(services: Pick<Services, 'config' | 'project' | 'secrets'>): ReferenceInfo[] {
  const byLabel = new Map<string, ReferenceInfo & { parsed: SecretRef }>();
  for (const [file, entries] of configSources(services)) {
    for (const [path, value] of stringsWithPath(entries, '')) {
      for (const ref of parseRefs(value)) {
        const label = refLabel(ref);
        let info = byLabel.get(label);
        if (!info) {
          info = { ref: label, kind: ref.kind, name: ref.name, resolves_from: 'missing', used_by: [], parsed: ref };
          byLabel.set(label, info);
        }
        const where = `${file}: ${path}`;
        if (!info.used_by.includes(where)) info.used_by.push(where);
      }
    }
  }
  const out: ReferenceInfo[] = [];
  for (const { parsed, ...info } of byLabel.values()) {
    info.resolves_from = resolution(services, parsed);
    if (info.resolves_from === 'missing') info.hint = howToSet(parsed);
    out.push(info);
  }
  return out.sort((a, b) => a.ref.localeCompare(b.ref));
}
