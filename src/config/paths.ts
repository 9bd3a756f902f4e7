import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';

/** Expands a leading `~` and makes the path absolute against `base`. */
export function expandHome(p: string, base: string): string {
  if (p === '~') return homedir();
  if (p.startsWith('~/')) return resolve(homedir(), p.slice(2));
  return isAbsolute(p) ? resolve(p) : resolve(base, p);
}
