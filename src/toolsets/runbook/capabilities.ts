import { existsSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import { invalid, notFound } from '../../core/errors.js';
import type { Services } from '../../core/services.js';
import type { Capability } from '../../config/schemas.js';

/**
 * What the project is, detected from its files (the project root: the parent of `.infra/`).
 * capabilities.json `when` clauses are matched against these facts.
 */
export type ProjectFacts = Record<string, boolean>;

const SKIP = new Set(['.git', 'node_modules', '.infra', 'vendor', 'dist', 'build', 'target', '.venv', '__pycache__']);
const MAX_ENTRIES = 4000;

/** Names of files and directories up to three levels below the root (bounded, no symlinks). */
function scan(root: string): { files: Set<string>; dirs: Set<string> } {
  const files = new Set<string>();
  const dirs = new Set<string>();
  let budget = MAX_ENTRIES;
  const walk = (dir: string, depth: number): void => {
    let ents;
    try {
      ents = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const d of ents) {
      if (--budget < 0) return;
      if (d.isDirectory()) {
        dirs.add(d.name);
        if (depth < 3 && !SKIP.has(d.name)) walk(join(dir, d.name), depth + 1);
      } else if (d.isFile()) files.add(d.name);
    }
  };
  walk(root, 1);
  return { files, dirs };
}

export function detectFacts(services: Pick<Services, 'project' | 'config'>): ProjectFacts {
  const root = services.project.root;
  const at = (p: string): boolean => existsSync(join(root, p));
  const { files, dirs } = scan(root);
  const any = (...names: string[]): boolean => names.some((n) => files.has(n));
  const anyDir = (...names: string[]): boolean => names.some((n) => dirs.has(n));
  const profiles = Object.values(services.config.profiles);
  const kustomize = any('kustomization.yaml', 'kustomization.yml', 'Kustomization');
  const helm = any('Chart.yaml');
  return {
    git: at('.git'),
    node: at('package.json'),
    python: at('pyproject.toml') || at('requirements.txt') || at('setup.py'),
    go: at('go.mod'),
    rust: at('Cargo.toml'),
    docker: any('Dockerfile', 'Containerfile') || [...files].some((f) => /^Dockerfile\./.test(f)),
    compose: any('docker-compose.yml', 'docker-compose.yaml', 'compose.yml', 'compose.yaml'),
    kustomize,
    helm,
    k8s: kustomize || helm || anyDir('k8s', 'kubernetes', 'manifests', 'overlays'),
    flux: anyDir('flux-system') || any('gotk-components.yaml', 'gotk-sync.yaml'),
    argocd: anyDir('argocd', 'argo-cd', 'argo'),
    terraform: [...files].some((f) => f.endsWith('.tf')),
    ansible: any('ansible.cfg', 'playbook.yml', 'site.yml'),
    ssh_targets: Object.keys(services.config.targets).length > 0,
    postgres_profiles: profiles.some((p) => p.type === 'postgres'),
    http_profiles: profiles.some((p) => p.type === 'http'),
  };
}

/** Paths a `when.files` clause may name: relative, inside the project root. */
function fileInRoot(root: string, p: string): boolean {
  if (typeof p !== 'string' || p === '' || isAbsolute(p) || p.includes('\0')) return false;
  const n = normalize(p);
  if (n.startsWith('..')) return false;
  try {
    statSync(join(root, n));
    return true;
  } catch {
    return false;
  }
}

/**
 * A `when` clause holds: every key is a fact that must equal its value (`{"git": true,
 * "k8s": true}`), or `files` / `files_any` (paths relative to the project root that must all /
 * any exist). An unknown fact is false.
 */
export function whenMatches(when: Record<string, unknown> | undefined, facts: ProjectFacts, root: string): boolean {
  if (!when) return true;
  for (const [k, v] of Object.entries(when)) {
    if (k === 'files' || k === 'files_any') {
      const list = Array.isArray(v) ? v : [v];
      const hits = list.map((p) => fileInRoot(root, p as string));
      if (k === 'files' ? !hits.every(Boolean) : !hits.some(Boolean)) return false;
    } else if ((facts[k] ?? false) !== v) return false;
  }
  return true;
}

export interface IntentMatch {
  capability: string;
  cap: Capability;
}

/** Capabilities whose name or intent is `intent` and whose `when` holds for this project. */
export function resolveIntent(services: Pick<Services, 'project' | 'config'>, intent: string): IntentMatch {
  const caps = services.config.capabilities.capabilities;
  const named = Object.entries(caps).filter(([name, c]) => name === intent || c.intent === intent);
  if (named.length === 0) {
    const known = [...new Set(Object.entries(caps).map(([n, c]) => c.intent ?? n))];
    throw notFound(
      `no capability for intent ${JSON.stringify(intent)}`,
      known.length
        ? `intents in capabilities.json: ${known.join(', ')}`
        : 'capabilities.json maps intents to runbooks; it has none (or run the runbook by name)',
    );
  }
  const facts = detectFacts(services);
  const matching = named.filter(([, c]) => whenMatches(c.when, facts, services.project.root));
  if (matching.length === 0) {
    const factList = Object.entries(facts)
      .filter(([, v]) => v)
      .map(([k]) => k);
    throw notFound(
      `intent ${JSON.stringify(intent)} has capabilities (${named.map(([n]) => n).join(', ')}) but none applies to this project`,
      `their "when" clauses did not match; this project is: ${factList.join(', ') || '(nothing detected)'}`,
      { facts },
    );
  }
  if (matching.length > 1) {
    throw invalid(
      `intent ${JSON.stringify(intent)} is ambiguous: ${matching.length} capabilities match: ${matching.map(([n, c]) => `${n} → ${c.runbook}`).join(', ')}`,
      'run one of these runbooks by name, or narrow their "when" clauses in capabilities.json',
      { candidates: matching.map(([n, c]) => ({ capability: n, runbook: c.runbook, description: c.description ?? null })) },
    );
  }
  const [capability, cap] = matching[0]!;
  return { capability, cap };
}
