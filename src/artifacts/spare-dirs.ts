import { existsSync, mkdirSync, promises as fsp, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ownerAlive, processStartTime } from '../audit/owner.js';

const TARGET = 32;
const SPARE_FILE = '.call.json.spare';

/**
 * Pre-created call directories (each with an empty 0600 file for call.json), renamed into place
 * when a call needs one. Allocating inodes (mkdir, create) is the slowest file-system work of a
 * call and stalls badly when the disk is busy; a rename does not, so the allocation happens in
 * the background between calls and the hot path keeps one rename, one write and one rename
 * (DESIGN §6).
 */
export class SpareDirs {
  private readonly ready: string[] = [];
  private refilling: Promise<void> | undefined;
  private closed = false;
  private seq = 0;
  private readonly prefix: string;

  constructor(private readonly parent: string) {
    this.prefix = `.spare-${process.pid}-${processStartTime(process.pid) ?? '0'}-`;
    mkdirSync(parent, { recursive: true, mode: 0o700 });
    this.removeStale();
  }

  /** Moves a spare directory to `dir`; false when none is ready (the caller mkdirs). */
  take(dir: string): { spareFile: string | undefined } | false {
    const spare = this.ready.pop();
    this.refill();
    if (!spare) return false;
    try {
      renameSync(spare, dir);
    } catch {
      return false;
    }
    return { spareFile: join(dir, SPARE_FILE) };
  }

  refill(): void {
    if (this.closed || this.refilling || this.ready.length >= TARGET / 2) return;
    this.refilling = (async () => {
      try {
        while (!this.closed && this.ready.length < TARGET) {
          const d = join(this.parent, `${this.prefix}${(this.seq++).toString(36)}`);
          try {
            await fsp.mkdir(d, { mode: 0o700 });
            await fsp.writeFile(join(d, SPARE_FILE), '', { mode: 0o600 });
          } finally {
            // made while closing: not left behind
            if (this.closed) await fsp.rm(d, { recursive: true, force: true });
          }
          if (!this.closed) this.ready.push(d);
        }
      } catch {
        /* the directory is gone or full: calls fall back to mkdir */
      } finally {
        this.refilling = undefined;
      }
    })();
  }

  /**
   * Removes spares of this process (at close) so none are left behind, including one a refill
   * in progress is making: the promise settles once that is gone too.
   */
  close(): Promise<void> {
    this.closed = true;
    for (const d of this.ready.splice(0)) rmSync(d, { recursive: true, force: true });
    return this.refilling ?? Promise.resolve();
  }

  /** Spares left by processes that have ended. */
  private removeStale(): void {
    if (!existsSync(this.parent)) return;
    for (const name of readdirSync(this.parent)) {
      const m = /^\.spare-(\d+)-(\d+)-/.exec(name);
      if (!m) continue;
      if (ownerAlive({ pid: Number(m[1]), start: m[2]! })) continue;
      rmSync(join(this.parent, name), { recursive: true, force: true });
    }
  }
}

/** Writes `data` into a pre-created empty file, then renames it to `path` (atomic, 0600). */
export function writeIntoSpare(spareFile: string, path: string, data: string | Buffer): void {
  writeFileSync(spareFile, data, { flag: 'r+' });
  renameSync(spareFile, path);
}
