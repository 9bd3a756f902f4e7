import { z } from 'zod';
import { defineAction } from '../../core/define-action.js';
import { parseRefs, refLabel } from '../../config/secret-refs.js';
import { loadUrlParser } from '../../adapters/pg-pools.js';
import { postgresProfiles } from './common.js';

export interface ProfileInfo {
  name: string;
  description?: string;
  mode: 'read_only' | 'read_write';
  host: string | null;
  port: number | null;
  database: string | null;
  user: string | null;
  sslmode: string | null;
  statement_timeout_ms: number;
  max_rows: number;
  pool_max: number;
  allow_superuser: boolean;
  allowed_by_policy: boolean;
  /** References (env:NAME, secret:NAME …) that are not set now. */
  missing_credentials?: string[];
}

export const profilesAction = defineAction({
  tool: 'psql',
  action: 'profiles',
  effect: 'read',
  description: 'List the postgres profiles: name, mode, host, port, database, user, limits (never passwords)',
  input: z.strictObject({}),
  summarize: (r: { profiles: ProfileInfo[] }) => `${r.profiles.length} postgres profile${r.profiles.length === 1 ? '' : 's'}`,
  handler: async (ctx) => {
    const services = ctx.services;
    const allow = services.config.policy.psql.allow_profiles;
    const parse = await loadUrlParser();
    const profiles: ProfileInfo[] = [];
    for (const [name, p] of Object.entries(postgresProfiles(services))) {
      const missing = [p.url, p.host, p.user, p.database, p.password]
        .filter((v): v is string => typeof v === 'string')
        .flatMap((v) =>
          parseRefs(v)
            .filter((r) => services.secrets.lookup(r) === undefined)
            .map(refLabel),
        );
      let fromUrl: Record<string, unknown> = {};
      if (p.url && parseRefs(p.url).every((r) => services.secrets.lookup(r) !== undefined)) {
        try {
          fromUrl = parse(services.secrets.resolve(p.url, `profiles.json: ${name}.url`));
        } catch {
          fromUrl = {};
        }
      }
      const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
      const plain = (v: string | undefined): string | null => (v !== undefined && parseRefs(v).length === 0 ? v : null);
      profiles.push({
        name,
        ...(p.description ? { description: p.description } : {}),
        mode: p.mode,
        host: plain(p.host) ?? str(fromUrl.host),
        port: p.port ?? (fromUrl.port ? Number(fromUrl.port) : p.url || p.host ? 5432 : null),
        database: plain(p.database) ?? str(fromUrl.database),
        user: plain(p.user) ?? str(fromUrl.user),
        sslmode: p.sslmode ?? str(fromUrl.sslmode),
        statement_timeout_ms: p.statement_timeout_ms,
        max_rows: p.max_rows,
        pool_max: p.pool_max,
        allow_superuser: p.allow_superuser,
        allowed_by_policy:
          !allow ||
          allow.some(
            (a) =>
              a === name ||
              (a.includes('*') &&
                new RegExp(
                  `^${a
                    .split('*')
                    .map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
                    .join('.*')}$`,
                ).test(name)),
          ),
        ...(missing.length ? { missing_credentials: [...new Set(missing)] } : {}),
      });
    }
    return { profiles };
  },
});
