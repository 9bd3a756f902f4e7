import type { Command } from 'commander';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { knownHostsName, type HostKeyVerdict } from '../adapters/ssh-host-keys.js';
import { SshPool } from '../adapters/ssh-pool.js';
import { writeFileAtomic } from '../artifacts/atomic-file.js';
import { isToolError } from '../core/errors.js';
import type { Services } from '../core/services.js';
import { parseJsonc } from '../config/jsonc.js';
import { expandHome } from '../config/paths.js';
import { resolveEndpoint } from '../toolsets/ssh/resolve.js';

/**
 * `infra ssh trust <target>`: a human looks at the host key a target presents and pins it in
 * targets.json (or appends it to a known_hosts file). No tool can do this: trusting a key is
 * the human's decision (DESIGN §5).
 */

const out = (s: string): void => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
const err = (s: string): void => void process.stderr.write(s.endsWith('\n') ? s : `${s}\n`);

export function registerSshCommands(program: Command, getServices: () => Promise<Services>): void {
  const ssh = program.command('ssh').description('SSH targets: trust a host key');
  ssh
    .command('trust <target>')
    .description('show the host key a target presents and pin it in targets.json (host_key_sha256) after you confirm it')
    .option('--yes', 'do not ask (you have checked the fingerprint out of band)')
    .option('--print', 'only print the presented key and whether it is trusted')
    .option('--known-hosts <file>', 'append the key to this known_hosts file instead of pinning it in targets.json')
    .action(async (target: string, o: { yes?: boolean; print?: boolean; knownHosts?: string }) => {
      const services = await getServices();
      process.exitCode = await trust(services, target, o);
    });
}

async function trust(services: Services, target: string, o: { yes?: boolean; print?: boolean; knownHosts?: string }): Promise<number> {
  const pool = new SshPool(services.log);
  let verdict: HostKeyVerdict;
  let where: string;
  try {
    const ep = resolveEndpoint(services, target, { auth: false });
    where = `${ep.username}@${ep.host}:${ep.port}${ep.jump ? ` via ${ep.jump.name}` : ''}`;
    verdict = await pool.hostKeyOf(ep, AbortSignal.timeout(ep.connectTimeoutMs + (ep.jump ? ep.jump.connectTimeoutMs : 0) + 2000));
  } catch (e) {
    err(`infra ssh trust: ${isToolError(e) ? `${e.code}: ${e.message}${e.hint ? `\n  hint: ${e.hint}` : ''}` : (e as Error).message}`);
    return 1;
  } finally {
    await pool.close();
  }
  out(`${target} (${where}) presents ${verdict.keyType} ${verdict.fingerprint}`);
  const t = services.config.targets[target]!;
  if (verdict.ok) {
    out(`already trusted (${t.host_key_sha256 ? 'host_key_sha256 pin' : 'known_hosts'}); nothing to do`);
    return 0;
  }
  if (verdict.reason === 'changed') {
    err(
      `WARNING: this key ${verdict.revoked ? 'is marked @revoked' : 'differs from the one trusted for this target'}. ` +
        'A reinstalled host or a man-in-the-middle looks exactly like this: verify the fingerprint out of band ' +
        '(e.g. `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the host console) before trusting it.',
    );
  } else {
    out('not trusted yet: compare the fingerprint with the host (`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on its console)');
  }
  if (o.print) return verdict.ok ? 0 : 2;
  if (!o.yes) {
    if (!process.stdin.isTTY) {
      err('infra ssh trust: not a terminal; pass --yes once you have verified the fingerprint');
      return 1;
    }
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      const answer = await rl.question(`Trust ${verdict.fingerprint} for ${target}? Type "yes": `);
      if (answer.trim().toLowerCase() !== 'yes') {
        err('not trusted');
        return 1;
      }
    } finally {
      rl.close();
    }
  }
  if (o.knownHosts) {
    const file = expandHome(o.knownHosts, process.cwd());
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    appendFileSync(
      file,
      `${text && !text.endsWith('\n') ? '\n' : ''}${knownHostsName(t.host, t.port)} ${verdict.keyType} ${verdict.keyBase64}\n`,
      { mode: 0o600 },
    );
    out(`appended to ${file}`);
    if (t.host_key_sha256) out(`note: ${target} has a host_key_sha256 pin, which takes precedence over known_hosts`);
    else if (!t.known_hosts) out(`note: ${target} reads ~/.ssh/known_hosts unless "known_hosts" is set in targets.json`);
    return 0;
  }
  const path = join(services.project.dir, 'targets.json');
  const before = readFileSync(path, 'utf8');
  const after = setTargetPin(before, target, verdict.fingerprint);
  await writeFileAtomic(path, after);
  out(`pinned host_key_sha256 for ${target} in ${path}${t.known_hosts ? ' (the pin takes precedence over its known_hosts)' : ''}`);
  out('a running infra server picks it up at its next config reload');
  return 0;
}

interface Tok {
  kind: '{' | '}' | '[' | ']' | ':' | ',' | 'string' | 'literal';
  start: number;
  end: number;
  value?: string;
}

/** Tokens of JSONC text with their positions (comments and whitespace skipped). */
function tokenize(text: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) i++;
    else if (c === '/' && text[i + 1] === '/') while (i < text.length && text[i] !== '\n') i++;
    else if (c === '/' && text[i + 1] === '*') {
      const e = text.indexOf('*/', i + 2);
      i = e < 0 ? text.length : e + 2;
    } else if ('{}[]:,'.includes(c)) toks.push({ kind: c as Tok['kind'], start: i, end: ++i });
    else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      toks.push({ kind: 'string', start: i, end: j + 1, value: JSON.parse(text.slice(i, j + 1)) as string });
      i = j + 1;
    } else {
      let j = i;
      while (j < text.length && !/[\s,:{}[\]/]/.test(text[j]!)) j++;
      toks.push({ kind: 'literal', start: i, end: Math.max(j, i + 1) });
      i = Math.max(j, i + 1);
    }
  }
  return toks;
}

/** Index of the token after the value starting at `i`. */
function skipValue(toks: Tok[], i: number): number {
  const t = toks[i];
  if (!t) return i;
  if (t.kind !== '{' && t.kind !== '[') return i + 1;
  let depth = 0;
  for (let j = i; j < toks.length; j++) {
    const k = toks[j]!.kind;
    if (k === '{' || k === '[') depth++;
    else if (k === '}' || k === ']') {
      depth--;
      if (depth === 0) return j + 1;
    }
  }
  return toks.length;
}

/** Members of the object whose `{` is at token `open`: key token index and value token index. */
function members(toks: Tok[], open: number): Array<{ key: number; value: number }> {
  const out: Array<{ key: number; value: number }> = [];
  let i = open + 1;
  while (i < toks.length && toks[i]!.kind !== '}') {
    if (toks[i]!.kind === ',') {
      i++;
      continue;
    }
    if (toks[i]!.kind !== 'string' || toks[i + 1]?.kind !== ':') throw new Error('targets.json is not an object of targets');
    out.push({ key: i, value: i + 2 });
    i = skipValue(toks, i + 2);
  }
  return out;
}

/**
 * Sets `host_key_sha256` of one target in targets.json text, keeping comments, order and
 * formatting. Throws when the result would not parse back to the pin.
 */
export function setTargetPin(text: string, target: string, pin: string): string {
  const toks = tokenize(text);
  if (toks[0]?.kind !== '{') throw new Error('targets.json is not a JSON object');
  const entry = members(toks, 0).find((m) => toks[m.key]!.value === target);
  if (!entry || toks[entry.value]?.kind !== '{') throw new Error(`targets.json has no object for target "${target}"`);
  const inner = members(toks, entry.value);
  const existing = inner.find((m) => toks[m.key]!.value === 'host_key_sha256');
  let result: string;
  if (existing) {
    const v = toks[existing.value]!;
    result = text.slice(0, v.start) + JSON.stringify(pin) + text.slice(v.end);
  } else {
    const open = toks[entry.value]!;
    const first = inner[0] ? toks[inner[0].key]! : undefined;
    if (first) {
      const lineStart = text.lastIndexOf('\n', first.start) + 1;
      const indent = /^[ \t]*$/.test(text.slice(lineStart, first.start)) ? text.slice(lineStart, first.start) : '';
      const sep = indent || text.slice(open.end, first.start).includes('\n') ? `\n${indent}` : ' ';
      result = `${text.slice(0, first.start)}"host_key_sha256": ${JSON.stringify(pin)},${sep}${text.slice(first.start)}`;
    } else {
      result = `${text.slice(0, open.end)} "host_key_sha256": ${JSON.stringify(pin)} ${text.slice(open.end)}`;
    }
  }
  const check = parseJsonc(result) as Record<string, Record<string, unknown>>;
  if (check[target]?.host_key_sha256 !== pin) throw new Error('editing targets.json failed; it was left unchanged');
  return result;
}
