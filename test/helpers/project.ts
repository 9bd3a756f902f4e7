import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempProject {
  /** Project root (parent of .infra). */
  root: string;
  /** The .infra directory. */
  infraDir: string;
  write(file: string, content: unknown): void;
  cleanup(): void;
}

/** A temporary project with a `.infra/` holding the given config files (objects are JSON-encoded). */
export function makeProject(files: Record<string, unknown> = {}): TempProject {
  const root = mkdtempSync(join(tmpdir(), 'infra-test-'));
  const infraDir = join(root, '.infra');
  mkdirSync(infraDir, { recursive: true });
  const write = (file: string, content: unknown): void => {
    writeFileSync(join(infraDir, file), typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  };
  for (const [f, c] of Object.entries(files)) write(f, c);
  return { root, infraDir, write, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
