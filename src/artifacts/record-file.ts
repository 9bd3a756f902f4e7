import { mkdirSync, promises as fsp, renameSync, writeFileSync } from 'node:fs';
import { writeFileAtomic, writeFileAtomicSync } from './atomic-file.js';

/** A call's call.json, written after its reply (DESIGN §6, docs/DECISIONS.md). */
export interface RecordFile {
  /** The call's directory, `artifacts/calls/<call_id>`. */
  dir: string;
  /** `<dir>/call.json`. */
  path: string;
  /** The pre-created empty file of a spare directory the call already took, if any. */
  spareFile?: string | undefined;
  /** Redacted contents. */
  data: string;
}

/** Writes call.json to a temp name (or into the spare file) and renames it: 0600, atomic. */
export function writeRecordFileSync(f: RecordFile): void {
  if (f.spareFile) {
    writeFileSync(f.spareFile, f.data, { flag: 'r+' });
    renameSync(f.spareFile, f.path);
    return;
  }
  mkdirSync(f.dir, { recursive: true, mode: 0o700 });
  writeFileAtomicSync(f.path, f.data);
}

/** writeRecordFileSync through the thread pool (when no record worker runs). */
export async function writeRecordFile(f: RecordFile): Promise<void> {
  if (f.spareFile) {
    await fsp.writeFile(f.spareFile, f.data, { flag: 'r+' });
    await fsp.rename(f.spareFile, f.path);
    return;
  }
  await fsp.mkdir(f.dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(f.path, f.data);
}
