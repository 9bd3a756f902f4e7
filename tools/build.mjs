#!/usr/bin/env node
// Bundles src/cli.ts into one ESM file, dist/cli.js (a single file starts faster than a tree of
// modules: DESIGN §6). Native and optional-native packages stay external and load from
// node_modules; heavy adapters are imported lazily by the code itself.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
let commit = process.env.INFRA_COMMIT ?? 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
    .toString()
    .trim();
} catch {
  /* not a git checkout */
}

export const EXTERNAL = ['better-sqlite3', 'ssh2', 'cpu-features', 'pg-native'];

export async function bundle({
  outfile = join(root, 'dist', 'cli.js'),
  format = 'esm',
  external = EXTERNAL,
  entry = join(root, 'src', 'cli.ts'),
} = {}) {
  mkdirSync(dirname(outfile), { recursive: true });
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format,
    external,
    sourcemap: false,
    minify: false,
    legalComments: 'none',
    logLevel: 'warning',
    define: {
      __INFRA_VERSION__: JSON.stringify(pkg.version),
      __INFRA_COMMIT__: JSON.stringify(commit),
    },
    banner:
      format === 'esm'
        ? {
            js: "#!/usr/bin/env node\nimport { createRequire as __infraCreateRequire } from 'node:module';\nconst require = __infraCreateRequire(import.meta.url);",
          }
        : { js: '' },
  });
  chmodSync(outfile, 0o755);
  return outfile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await bundle();
  // the record worker (src/audit/record-worker.ts) runs from its own file next to cli.js; the
  // single-file binary has no such file and records on its main thread instead
  await bundle({ outfile: join(root, 'dist', 'record-worker.js'), entry: join(root, 'src', 'audit', 'record-worker.ts') });
  process.stderr.write(`built ${out} (${pkg.version}, ${commit})\n`);
}
