import { randomBytes } from 'node:crypto';
import { promises as fsp, renameSync, rmSync, writeFileSync } from 'node:fs';
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
  try {
    await fsp.writeFile(tmp, data, { mode: 0o600 });
    await fsp.rename(tmp, path);
  } catch (e) {
    // a failed write (ENOSPC) leaves no temp file taking space
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
}

export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  const tmp = tempNameFor(path);
  try {
    writeFileSync(tmp, data, { mode: 0o600 });
    renameSync(tmp, path);
  } catch (e) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      /* nothing to remove */
    }
    throw e;
  }
}
