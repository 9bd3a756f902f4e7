import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { writeFileAtomicSync } from './atomic-file.js';

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
