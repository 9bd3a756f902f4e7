import { existsSync, watch, type FSWatcher } from 'node:fs';
import { basename } from 'node:path';
import type { Logger } from '../core/define-action.js';
import type { LoadedConfig } from '../config/load.js';
import { CONFIG_FILES } from '../config/schemas.js';

const SECTIONS: Record<string, keyof LoadedConfig> = {
  'targets.json': 'targets',
  'profiles.json': 'profiles',
  'policy.json': 'policy',
  'runbooks.json': 'runbooks',
  'capabilities.json': 'capabilities',
  'servers.json': 'servers',
};

/**
 * A reload that keeps working config: a file that was valid before and is invalid now keeps
 * its last good contents (and the issue stays listed, so doctor and the log say why). At start
 * there is no last good version, and an invalid policy.json still refuses every call.
 */
export function keepLastGood(prev: LoadedConfig, next: LoadedConfig, log: Logger): LoadedConfig {
  const merged: LoadedConfig = { ...next };
  const bad = (c: LoadedConfig, file: string): boolean => c.issues.some((i) => basename(i.file) === file);
  for (const [file, key] of Object.entries(SECTIONS)) {
    if (!bad(next, file) || bad(prev, file)) continue;
    (merged as unknown as Record<string, unknown>)[key] = prev[key];
    if (key === 'policy') merged.policyIssue = prev.policyIssue;
    const issue = next.issues.find((i) => basename(i.file) === file);
    log.warn('config change not applied: the new file is invalid, the last good version stays in effect', {
      file,
      problem: issue?.message,
      hint: issue?.hint,
    });
  }
  return merged;
}

/**
 * Watches the project directory for changes to the config files and calls `onChange` once per
 * burst (editors write through temp files and renames, so the directory is watched).
 */
export function watchConfig(dir: string, onChange: () => void, log: Logger, debounceMs = 300): { close(): void } {
  if (!existsSync(dir)) return { close: () => undefined };
  const names = new Set(Object.keys(CONFIG_FILES));
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dir, { persistent: false }, (_event, filename) => {
      if (filename && !names.has(basename(filename.toString()))) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        try {
          onChange();
        } catch (e) {
          log.error('config reload failed', { error: (e as Error).message });
        }
      }, debounceMs);
    });
    watcher.on('error', (e) => log.warn('config watch stopped', { dir, error: e.message }));
  } catch (e) {
    log.warn('config files are not watched; restart infra after editing them', { dir, error: (e as Error).message });
  }
  return {
    close: () => {
      clearTimeout(timer);
      watcher?.close();
    },
  };
}
