import { readFileSync } from 'node:fs';
import { ToolError } from '../core/errors.js';
import type { Redactor } from '../artifacts/redactor.js';
import { expandHome } from './paths.js';

/** `${env:NAME}`, `${NAME}`, `${file:path}`, `${secret:NAME}` (DESIGN §3). */
const REF = /\$\{(?:(env|file|secret):)?([^}]+)\}/g;

export interface SecretRef {
  kind: 'env' | 'file' | 'secret';
  name: string;
  /** The text as written, e.g. `${env:API_TOKEN}`. */
  raw: string;
}

/** Looks up `${secret:NAME}` values (the encrypted store); absent → undefined. */
export interface SecretSource {
  get(name: string): string | undefined;
  has(name: string): boolean;
}

export function parseRefs(value: string): SecretRef[] {
  const refs: SecretRef[] = [];
  for (const m of value.matchAll(REF)) {
    const kind = (m[1] ?? 'env') as SecretRef['kind'];
    const name = m[2]!.trim();
    if (kind === 'env' && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) continue;
    refs.push({ kind, name, raw: m[0] });
  }
  return refs;
}

export const refLabel = (r: SecretRef): string => `${r.kind}:${r.name}`;

/**
 * Resolves secret references inside config values at use. Resolved values are registered with
 * the redactor (with their base64 and URL-encoded forms) and never written anywhere.
 * References are only honoured in config files (targets, profiles, servers): callers must
 * never pass tool arguments or agent-written runbooks through here.
 */
export class SecretResolver {
  constructor(
    private readonly redactor: Redactor,
    private readonly env: NodeJS.ProcessEnv,
    private readonly baseDir: string,
    private source: SecretSource | undefined = undefined,
  ) {}

  setSource(source: SecretSource): void {
    this.source = source;
  }

  /** The value of one reference, or undefined when it is not set. */
  lookup(ref: SecretRef): string | undefined {
    switch (ref.kind) {
      case 'env': {
        const v = this.env[ref.name];
        return v === undefined || v === '' ? undefined : v;
      }
      case 'file': {
        try {
          const path = expandHome(ref.name, this.baseDir);
          return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
        } catch {
          return undefined;
        }
      }
      case 'secret':
        return this.source?.get(ref.name);
    }
  }

  /** Labels of the references in `value` that cannot be resolved now. */
  missing(value: string): string[] {
    return parseRefs(value)
      .filter((r) => this.lookup(r) === undefined)
      .map(refLabel);
  }

  /**
   * Replaces every reference in `value`. Throws AUTH_FAILED with `status: missing_credentials`
   * naming the missing reference (and how to provide it) when one is not set. `where` names
   * the config entry for the message (e.g. `profiles.json: app-db.password`).
   */
  resolve(value: string, where: string): string {
    const refs = parseRefs(value);
    if (refs.length === 0) return value;
    let out = value;
    for (const ref of refs) {
      const v = this.lookup(ref);
      if (v === undefined) {
        throw new ToolError('AUTH_FAILED', `${where} refers to ${ref.raw}, which is not set`, {
          hint: howToSet(ref),
          retryable: false,
          details: { status: 'missing_credentials', missing: refLabel(ref) },
        });
      }
      this.redactor.addSecret(v);
      out = out.split(ref.raw).join(v);
    }
    return out;
  }

  /** Resolves every reference it can (to register values with the redactor early); never throws. */
  registerAll(values: Iterable<string>): void {
    for (const value of values) {
      for (const ref of parseRefs(value)) {
        const v = this.lookup(ref);
        if (v !== undefined) this.redactor.addSecret(v);
      }
    }
  }
}

export function howToSet(ref: SecretRef): string {
  switch (ref.kind) {
    case 'env':
      return `set the environment variable ${ref.name} in the environment infra starts with (for MCP clients: the "env" block of the server's config; \`infra config client\` writes it)`;
    case 'file':
      return `create the file ${ref.name} (readable by the user running infra)`;
    case 'secret':
      return `store it with \`infra secrets set ${ref.name}\` (the value is read from stdin)`;
  }
}

/** Every string inside a JSON-like value (for registering config secrets). */
export function* stringsIn(value: unknown): Generator<string> {
  if (typeof value === 'string') yield value;
  else if (Array.isArray(value)) for (const v of value) yield* stringsIn(v);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) yield* stringsIn(v);
}
