import { z } from 'zod';
import { checkHost, hostAllowed, type SsrfOptions, type SsrfRefusal } from '../../adapters/http-ssrf.js';
import type { TlsSettings } from '../../adapters/http-agents.js';
import { denied, invalid, notFound, ToolError } from '../../core/errors.js';
import type { Services } from '../../core/services.js';
import { expandHome } from '../../config/paths.js';
import type { HttpProfile } from '../../config/schemas.js';

/** Arguments that say where a request goes (shared by request and check). */
export const destinationArgs = {
  url: z.string().min(1).max(8192).optional().describe("Absolute http(s) URL; with a profile it must be on the profile's origin"),
  profile: z.string().min(1).max(64).optional().describe('http profile from profiles.json (base_url, headers, TLS)'),
  profile_name: z.string().min(1).max(64).optional().describe("Same as profile (the seed's spelling)"),
  path: z.string().max(8192).optional().describe("Path (and optional ?query) appended to the profile's base_url"),
  query: z
    .record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.array(z.union([z.string(), z.number(), z.boolean()]))]))
    .optional()
    .describe('Query parameters added to the URL (arrays repeat the key)'),
  headers: z.record(z.string(), z.string()).optional().describe("Request headers (over the profile's headers)"),
};

export interface DestinationArgs {
  url?: string | undefined;
  profile?: string | undefined;
  profile_name?: string | undefined;
  path?: string | undefined;
  query?: Record<string, string | number | boolean | (string | number | boolean)[]> | undefined;
  headers?: Record<string, string> | undefined;
}

export interface Destination {
  url: URL;
  profileName: string | undefined;
  profile: HttpProfile | undefined;
  /** Origin of the profile's base_url: its headers, TLS settings and allowances apply only here. */
  profileOrigin: string | undefined;
}

export function profileKey(a: DestinationArgs): string | undefined {
  if (a.profile !== undefined && a.profile_name !== undefined && a.profile !== a.profile_name) {
    throw invalid('profile and profile_name name different profiles', 'pass one of them');
  }
  return a.profile ?? a.profile_name;
}

export function httpProfiles(services: Services): [string, HttpProfile][] {
  return Object.entries(services.config.profiles).filter((e): e is [string, HttpProfile] => e[1].type === 'http');
}

function getProfile(name: string, services: Services): HttpProfile {
  const p = services.config.profiles[name];
  if (!p || p.type !== 'http') {
    const names = httpProfiles(services).map(([n]) => n);
    throw notFound(
      p ? `profile ${JSON.stringify(name)} is a ${p.type} profile, not an http one` : `no http profile named ${JSON.stringify(name)}`,
      names.length
        ? `http profiles: ${names.join(', ')} (http {action:"profiles"} lists them)`
        : 'define one in profiles.json: { "api": { "type": "http", "base_url": "https://…" } }',
    );
  }
  return p;
}

function parseUrl(text: string, what: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw invalid(`${what} is not an absolute URL: ${JSON.stringify(text.slice(0, 200))}`, 'use http://host[:port]/path or https://…');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw invalid(`${what} uses ${u.protocol.replace(/:$/, '')}:, only http and https are allowed`);
  }
  if (u.username || u.password) {
    throw invalid(
      `${what} carries credentials in the URL, which would be recorded in the audit`,
      'put credentials in an http profile\'s headers in profiles.json, by reference: "Authorization": "Bearer ${env:API_TOKEN}"',
    );
  }
  u.hash = '';
  return u;
}

/**
 * The destination of a call's arguments, resolved once: the gate (before the audit row opens)
 * and the handler see the same one, checked once (keyed by the validated arguments object).
 */
const resolved = new WeakMap<object, Destination>();
export function destinationFor(a: DestinationArgs, services: Services): Destination {
  let d = resolved.get(a);
  if (!d) {
    d = resolveDestination(a, services);
    resolved.set(a, d);
  }
  return d;
}

/** Works out the first URL of a call from url / profile + path / query. */
export function resolveDestination(a: DestinationArgs, services: Services): Destination {
  const name = profileKey(a);
  let url: URL;
  let profile: HttpProfile | undefined;
  let profileOrigin: string | undefined;
  if (name !== undefined) {
    profile = getProfile(name, services);
    const base = parseUrl(profile.base_url, `profiles.json: ${name}.base_url`);
    profileOrigin = base.origin;
    if (a.url !== undefined) {
      if (a.path !== undefined) throw invalid('pass either url or path with a profile, not both');
      url = parseUrl(a.url, 'url');
      if (url.origin !== profileOrigin) {
        throw invalid(
          `url ${url.origin} is not on the origin of profile ${name} (${profileOrigin})`,
          "a profile's headers are only sent to its base_url origin; use path with the profile, or url without it",
        );
      }
    } else {
      const path = a.path ?? '';
      // a path must stay a path: no scheme, no network-path reference, no backslashes
      if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(path) || path.startsWith('//') || hasControlOrBackslash(path)) {
        throw invalid(
          `path ${JSON.stringify(path.slice(0, 200))} is not a relative path`,
          'pass a path like /v1/items?limit=10; for another host use url without the profile',
        );
      }
      const [p, q] = splitQuery(path);
      const basePath = base.pathname.replace(/\/+$/, '');
      const rel = p === '' ? '' : `/${p.replace(/^\/+/, '')}`;
      url = new URL(`${basePath}${rel}` || '/', base.origin);
      if (p === '' && base.pathname.endsWith('/')) url.pathname = base.pathname;
      url.search = base.search;
      if (q) for (const [k, v] of new URLSearchParams(q)) url.searchParams.append(k, v);
      if (url.origin !== profileOrigin) throw invalid(`path ${JSON.stringify(path)} leaves the profile's origin`);
    }
  } else {
    if (a.url === undefined) {
      throw invalid(
        'pass url, or profile (+ path)',
        'e.g. {"url": "https://api.example.com/health"} or {"profile": "api", "path": "/health"}',
      );
    }
    if (a.path !== undefined) throw invalid('path needs a profile; with url put the path in the url');
    url = parseUrl(a.url, 'url');
  }
  for (const [k, v] of Object.entries(a.query ?? {})) {
    for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(item));
  }
  return { url, profileName: name, profile, profileOrigin };
}

/** URL parsing drops tabs and newlines, which could turn `/\t/host` into `//host`. */
function hasControlOrBackslash(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x5c) return true;
  }
  return false;
}

function splitQuery(path: string): [string, string] {
  const i = path.indexOf('?');
  return i < 0 ? [path, ''] : [path.slice(0, i), path.slice(i + 1)];
}

/** True when the profile's settings (headers, TLS, allowances) apply to this URL. */
export function onProfileOrigin(dest: Destination, url: URL): boolean {
  return dest.profile !== undefined && url.origin === dest.profileOrigin;
}

/**
 * The SSRF options for one hop: the policy's, and on the profile's own origin the profile's
 * allowances too (a profile's allow_private decides for its origin when it is set).
 */
export function guardFor(dest: Destination, url: URL, services: Services): SsrfOptions {
  const pol = services.config.policy.http;
  if (!onProfileOrigin(dest, url)) return { allowPrivate: pol.allow_private, allowLinkLocal: pol.allow_link_local };
  const p = dest.profile!;
  return {
    allowPrivate: p.allow_private ?? pol.allow_private,
    allowLinkLocal: p.allow_link_local === true || pol.allow_link_local,
  };
}

export function tlsFor(dest: Destination, url: URL, services: Services): TlsSettings {
  if (!onProfileOrigin(dest, url) || url.protocol !== 'https:') return {};
  const p = dest.profile!;
  return {
    caFile: p.ca_file ? expandHome(p.ca_file, services.project.dir) : undefined,
    insecure: p.insecure,
  };
}

/** The refusal for an SSRF rule, naming the key that would allow it. */
export function ssrfDenied(refusal: SsrfRefusal, url: URL, dest: Destination, hop: number): ToolError {
  const where = hop === 0 ? '' : ` (redirect hop ${hop})`;
  const key = refusal.allowKey;
  const profileNote =
    dest.profileName && onProfileOrigin(dest, url) ? `, or "${key}": true in profile ${dest.profileName} in profiles.json` : '';
  const hint =
    key === 'allow_link_local'
      ? `link-local and cloud-metadata endpoints are refused; a human can allow them with "http": { "allow_link_local": true } in policy.json${profileNote}`
      : key === 'allow_private'
        ? `private and loopback addresses are refused by "http": { "allow_private": false } in policy.json${profileNote ? profileNote.replace(`"${key}": true`, `"allow_private": true`) : ''}`
        : 'this address cannot be reached through the http tool';
  return denied(`http: refused ${url.host}${where}: ${refusal.message}`, hint, {
    rule: 'ssrf',
    class: refusal.class,
    ...(refusal.address ? { address: refusal.address } : {}),
    allow_key: key ?? null,
    hop,
  });
}

/**
 * The checks that can run on a URL before connecting: scheme, http.allow_hosts, metadata names
 * and address literals. Names are checked again on their resolved addresses at connect.
 */
export function checkUrl(url: URL, dest: Destination, services: Services, hop: number): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw denied(`http: refused ${url.href.slice(0, 200)}${hop ? ` (redirect hop ${hop})` : ''}: only http and https are allowed`);
  }
  const allow = services.config.policy.http.allow_hosts;
  if (allow !== undefined && !hostAllowed(url.hostname, allow)) {
    throw denied(
      `http: ${url.hostname}${hop ? ` (redirect hop ${hop})` : ''} is not in http.allow_hosts of policy.json`,
      `a human can add "${url.hostname}" (or a pattern like "*.${url.hostname.split('.').slice(1).join('.') || url.hostname}") to "http": { "allow_hosts": [...] } in policy.json`,
      { rule: 'allow_hosts', host: url.hostname, hop },
    );
  }
  const r = checkHost(url.hostname, guardFor(dest, url, services));
  if (r) throw ssrfDenied(r, url, dest, hop);
}
