import { existsSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { basename, join } from 'node:path';
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
 * Watches the config files and calls `onChange` once per burst (editors write through temp
 * files and renames). Each file is polled by path (fs.watchFile: a stat every `intervalMs` on
 * libuv's thread pool), which sees a file replaced by a rename as well as one edited in place.
 * The directory is not watched with inotify: it also holds infra.db, whose WAL the record worker
 * writes after every call, and each of those writes woke the main thread several times per call
 * (docs/DECISIONS.md, "Config files are polled, not watched").
 */
export function watchConfig(
  dir: string,
  onChange: () => void,
  log: Logger,
  opts: { debounceMs?: number; intervalMs?: number } = {},
): { close(): void } {
  if (!existsSync(dir)) return { close: () => undefined };
  const debounceMs = opts.debounceMs ?? 300;
  const interval = opts.intervalMs ?? 500;
  let timer: NodeJS.Timeout | undefined;
  // libuv calls a poll listener when the file's stat changed (created, removed, written,
  // replaced), and once at the start for a file that does not exist: that one is no change
  const changed = (curr: Stats, prev: Stats): void => {
    if (curr.ino === prev.ino && curr.mtimeMs === prev.mtimeMs && curr.ctimeMs === prev.ctimeMs && curr.size === prev.size) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      try {
        onChange();
      } catch (e) {
        log.error('config reload failed', { error: (e as Error).message });
      }
    }, debounceMs);
  };
  const files = Object.keys(CONFIG_FILES).map((name) => join(dir, name));
  const watched: string[] = [];
  for (const file of files) {
    try {
      watchFile(file, { persistent: false, interval }, changed);
      watched.push(file);
    } catch (e) {
      log.warn('a config file is not watched; restart infra after editing it', { file, error: (e as Error).message });
    }
  }
  return {
    close: () => {
      clearTimeout(timer);
      for (const file of watched) unwatchFile(file, changed);
    },
  };
}
