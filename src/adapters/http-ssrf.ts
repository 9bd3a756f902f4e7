import ipaddr from 'ipaddr.js';

/**
 * The SSRF rules of DESIGN §5, as pure functions over host names and addresses.
 *
 * Loopback and private ranges are allowed unless `allow_private: false` (internal endpoints are
 * what an ops tool is for). Link-local ranges and cloud-metadata endpoints are refused unless
 * `allow_link_local`, whatever spelling reaches us: decimal / octal / hex IPv4, IPv4-mapped,
 * IPv4-compatible and NAT64 IPv6. The connection layer (http-agents.ts) runs `checkAddress` on
 * every address a name resolves to, inside the socket's lookup, so DNS rebinding cannot slip
 * past a check done earlier on the name.
 */

export interface SsrfOptions {
  allowPrivate: boolean;
  allowLinkLocal: boolean;
}

export type AddressClass = 'metadata' | 'link_local' | 'loopback' | 'private' | 'unspecified' | 'public' | 'special';

export interface SsrfRefusal {
  /** What was refused: the host as written, or the resolved address. */
  subject: string;
  /** The class that made it refused. */
  class: AddressClass | 'metadata_name';
  /** The address the class was computed on (the embedded IPv4 for mapped forms). */
  address?: string;
  /** Which setting would allow it, if any. */
  allowKey: 'allow_link_local' | 'allow_private' | undefined;
  message: string;
}

/** Cloud metadata endpoints that are not inside 169.254.0.0/16 or fe80::/10. */
const METADATA_ADDRESSES: { addr: ipaddr.IPv4 | ipaddr.IPv6; bits: number }[] = [
  { addr: ipaddr.parse('fd00:ec2::254'), bits: 128 }, // AWS IMDS over IPv6
  { addr: ipaddr.parse('100.100.100.200'), bits: 32 }, // Alibaba Cloud
  { addr: ipaddr.parse('169.254.169.254'), bits: 32 }, // AWS, GCP, Azure, OCI, OpenStack …
  { addr: ipaddr.parse('169.254.170.2'), bits: 32 }, // AWS ECS task metadata
  { addr: ipaddr.parse('fd00:ec2::23'), bits: 128 }, // AWS time sync / DNS over IPv6 (IMDS subnet)
];

/** Host names that reach a metadata service from inside a cloud VM. Compared lowercased, trailing dot removed. */
export const METADATA_NAMES: readonly string[] = [
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'metadata.azure.internal',
  'metadata.tencentyun.com',
  'instance-data',
  'instance-data.ec2.internal',
  'metadata.ec2.internal',
  'metadata.packet.net',
  'metadata.platformequinix.com',
  'kubernetes.default.svc.cluster.local.metadata',
];

/** Strips brackets, a zone id and a trailing dot; lowercases. */
export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  const zone = h.indexOf('%');
  if (zone >= 0 && h.includes(':')) h = h.slice(0, zone);
  while (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/**
 * Parses an address in any spelling the OS resolver or a URL parser might accept: dotted
 * decimal, a single decimal / hex / octal number, short forms (`127.1`), IPv6 with or without
 * brackets. Returns undefined for a host name.
 */
export function parseAddress(host: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const h = normalizeHost(host);
  if (h === '') return undefined;
  if (h.includes(':')) {
    return ipaddr.IPv6.isValid(h) ? ipaddr.IPv6.parse(h) : undefined;
  }
  // ipaddr.js understands 0x/0-prefixed parts and 1-4 part forms, as inet_aton does
  if (/^[0-9a-fx.]+$/.test(h) && ipaddr.IPv4.isValid(h)) {
    try {
      return ipaddr.IPv4.parse(h);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** The IPv4 address carried inside an IPv6 one (mapped, compatible, NAT64), if any. */
export function embeddedIPv4(addr: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const range = addr.range();
  const p = addr.parts;
  const fromLow = (): ipaddr.IPv4 => new ipaddr.IPv4([p[6]! >> 8, p[6]! & 0xff, p[7]! >> 8, p[7]! & 0xff]);
  if (range === 'ipv4Mapped' || range === 'rfc6145') return fromLow();
  if (range === 'rfc6052' && p[1] === 0xff9b && p[2] === 0) return fromLow(); // 64:ff9b::/96
  // IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks); not :: or ::1
  if (p.slice(0, 6).every((x) => x === 0) && (p[6] !== 0 || (p[7] ?? 0) > 1)) return fromLow();
  return undefined;
}

/** Classifies one address; IPv6 forms carrying an IPv4 address are classified by that address. */
export function classifyAddress(input: string | ipaddr.IPv4 | ipaddr.IPv6): { class: AddressClass; address: string } {
  let addr = typeof input === 'string' ? parseAddress(input) : input;
  if (!addr) return { class: 'public', address: String(input) };
  if (addr.kind() === 'ipv6') {
    const v4 = embeddedIPv4(addr as ipaddr.IPv6);
    if (v4) addr = v4;
  }
  const address = addr.toString();
  for (const m of METADATA_ADDRESSES) {
    if (m.addr.kind() === addr.kind() && addr.match(m.addr, m.bits)) return { class: 'metadata', address };
  }
  const range: string = addr.range();
  switch (range) {
    case 'linkLocal':
      return { class: 'link_local', address };
    case 'loopback':
      return { class: 'loopback', address };
    case 'unspecified':
      // connecting to 0.0.0.0 or :: reaches the local host on Linux
      return { class: 'unspecified', address };
    case 'private':
    case 'uniqueLocal':
    case 'carrierGradeNat':
    case 'deprecatedSiteLocal':
      return { class: 'private', address };
    case 'multicast':
    case 'broadcast':
    case 'reserved':
      return { class: 'special', address };
    default:
      // unicast, and the IPv6 transition and documentation ranges: routed like any other
      return { class: 'public', address };
  }
}

/** Refuses an address under the options; undefined when it may be connected to. */
export function checkAddress(address: string, opts: SsrfOptions, subject = address): SsrfRefusal | undefined {
  const c = classifyAddress(address);
  const refuse = (allowKey: SsrfRefusal['allowKey'], what: string): SsrfRefusal => ({
    subject,
    class: c.class,
    address: c.address,
    allowKey,
    message: `${describe(subject, c.address)} is ${what}`,
  });
  switch (c.class) {
    case 'metadata':
    case 'link_local':
      if (opts.allowLinkLocal) return undefined;
      return refuse(
        'allow_link_local',
        c.class === 'metadata' ? 'a cloud metadata endpoint' : 'a link-local address (169.254.0.0/16, fe80::/10)',
      );
    case 'loopback':
    case 'private':
    case 'unspecified':
      if (opts.allowPrivate) return undefined;
      return refuse('allow_private', `a ${c.class === 'private' ? 'private' : 'loopback'} address and private addresses are not allowed`);
    case 'special':
      if (opts.allowPrivate) return undefined;
      return refuse('allow_private', 'a multicast, broadcast or reserved address and non-public addresses are not allowed');
    case 'public':
      return undefined;
  }
}

function describe(subject: string, address: string): string {
  return normalizeHost(subject) === address ? address : `${subject} (${address})`;
}

export function isMetadataName(host: string): boolean {
  return METADATA_NAMES.includes(normalizeHost(host));
}

/**
 * The check that can run on a URL's host before any DNS lookup: metadata names and address
 * literals in any spelling. Names are checked again on their resolved addresses at connect.
 */
export function checkHost(host: string, opts: SsrfOptions): SsrfRefusal | undefined {
  // a pure function of its inputs, asked again for the same few hosts on every call
  const key = `${opts.allowPrivate ? 1 : 0}${opts.allowLinkLocal ? 1 : 0}${host}`;
  const known = hostVerdicts.get(key);
  if (known !== undefined) return known === PASS ? undefined : known;
  const verdict = checkHostUncached(host, opts);
  if (hostVerdicts.size >= HOST_VERDICTS_MAX) hostVerdicts.clear();
  hostVerdicts.set(key, verdict ? Object.freeze(verdict) : PASS);
  return verdict;
}

const PASS = 'pass';
const HOST_VERDICTS_MAX = 1024;
const hostVerdicts = new Map<string, SsrfRefusal | typeof PASS>();

function checkHostUncached(host: string, opts: SsrfOptions): SsrfRefusal | undefined {
  const h = normalizeHost(host);
  if (isMetadataName(h)) {
    if (opts.allowLinkLocal) return undefined;
    return {
      subject: host,
      class: 'metadata_name',
      allowKey: 'allow_link_local',
      message: `${h} is a cloud metadata host name`,
    };
  }
  const addr = parseAddress(h);
  if (addr) return checkAddress(addr.toString(), opts, host);
  return undefined;
}

/**
 * Matches a host against `http.allow_hosts` entries: an exact name, `*.example.com` (any
 * subdomain, not the apex), `*` (anything), an address, or a CIDR range (`10.0.0.0/8`).
 */
export function hostAllowed(host: string, patterns: readonly string[]): boolean {
  const h = normalizeHost(host);
  const addr = parseAddress(h);
  for (const raw of patterns) {
    const p = normalizeHost(raw);
    if (p === '*') return true;
    if (p.includes('/')) {
      if (!addr) continue;
      try {
        const [net, bits] = ipaddr.parseCIDR(p);
        if (net.kind() === addr.kind() && addr.match(net, bits)) return true;
        if (addr.kind() === 'ipv6') {
          const v4 = embeddedIPv4(addr as ipaddr.IPv6);
          if (v4 && net.kind() === 'ipv4' && v4.match(net, bits)) return true;
        }
      } catch {
        /* not a CIDR */
      }
      continue;
    }
    if (p.startsWith('*.')) {
      if (h.endsWith(p.slice(1)) && h.length > p.length - 1) return true;
      continue;
    }
    if (p === h) return true;
    const pa = parseAddress(p);
    if (pa && addr && pa.kind() === addr.kind() && pa.toString() === addr.toString()) return true;
  }
  return false;
}
