import { randomBytes } from 'node:crypto';
import { promises as fsp, writeFileSync, renameSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A temp name next to `path`, hidden and recognisable as partial. */
let tempCounter = 0;
const tempPrefix = `${process.pid}-${randomBytes(3).toString('hex')}`;

export function tempNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${tempPrefix}-${(tempCounter++).toString(36)}.partial`);
}

/** Writes to a temp name and renames, mode 0600 (no fsync: not on the hot path, DESIGN §6). */
export async function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  const tmp = tempNameFor(path);
  await fsp.writeFile(tmp, data, { mode: 0o600 });
  await fsp.rename(tmp, path);
}

export function writeFileAtomicSync(path: string, data: string | Buffer): void {
  const tmp = tempNameFor(path);
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, path);
}
