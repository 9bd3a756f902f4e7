import { z } from 'zod';
import { defineAction } from '../../core/define-action.js';
import { parseRefs, refLabel } from '../../config/secret-refs.js';
import { httpProfiles } from './destination.js';

export interface ProfileInfo {
  name: string;
  description?: string;
  base_url: string;
  /** Header names only: values may hold secrets and never leave the server. */
  headers: string[];
  timeout_ms?: number;
  tls: { ca_file: boolean; insecure: boolean };
  allow_private?: boolean;
  allow_link_local?: boolean;
  /** ok, or missing_credentials when a referenced variable or secret is not set. */
  status: 'ok' | 'missing_credentials';
  missing?: string[];
}

/** base_url without userinfo (credentials belong in headers, by reference). */
function safeUrl(u: string): string {
  try {
    const url = new URL(u);
    url.username = '';
    url.password = '';
    return url.href;
  } catch {
    return '(invalid URL)';
  }
}

export const profilesAction = defineAction({
  tool: 'http',
  action: 'profiles',
  effect: 'read',
  description:
    'List the http profiles of profiles.json: name, base_url, header names (never values), TLS settings, whether their credentials resolve',
  input: z.strictObject({}),
  summarize: (r: { profiles: ProfileInfo[] }) => `${r.profiles.length} http profiles`,
  handler: async (ctx) => {
    const profiles: ProfileInfo[] = httpProfiles(ctx.services).map(([name, p]) => {
      const missing = Object.values(p.headers).flatMap((v) => ctx.services.secrets.missing(v));
      const refs = Object.values(p.headers).flatMap((v) => parseRefs(v).map(refLabel));
      return {
        name,
        ...(p.description ? { description: p.description } : {}),
        base_url: safeUrl(p.base_url),
        headers: Object.keys(p.headers),
        ...(refs.length ? { credential_refs: refs } : {}),
        ...(p.timeout_ms !== undefined ? { timeout_ms: p.timeout_ms } : {}),
        tls: { ca_file: p.ca_file !== undefined, insecure: p.insecure },
        ...(p.allow_private !== undefined ? { allow_private: p.allow_private } : {}),
        ...(p.allow_link_local !== undefined ? { allow_link_local: p.allow_link_local } : {}),
        status: missing.length ? 'missing_credentials' : 'ok',
        ...(missing.length ? { missing } : {}),
      };
    });
    return { profiles };
  },
});
