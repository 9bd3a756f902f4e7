import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from './atomic-file.js';

/** A file name in a call's directory: what the artifact store writes and journal recovery accepts. */
export const CALL_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A small file of a call held back with its call.json (already redacted, or raw as asked). */
export interface HeldFile {
  /** A plain file name in the call's directory (checked by the artifact store). */
  name: string;
  data: Uint8Array;
}

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
  /** The call's other small files (a read's response body, its plan), written before call.json. */
  extra?: HeldFile[] | undefined;
}

/**
 * Writes the call's held files, then call.json to a temp name (or into the spare file) and
 * renames it: 0600, atomic. call.json comes last, so a call.json on disk means its record is
 * whole.
 */
export function writeRecordFileSync(f: RecordFile): void {
  if (!f.spareFile) mkdirSync(f.dir, { recursive: true, mode: 0o700 });
  for (const x of f.extra ?? []) writeFileAtomicSync(join(f.dir, x.name), x.data);
  if (f.spareFile) {
    writeFileSync(f.spareFile, f.data, { flag: 'r+' });
    renameSync(f.spareFile, f.path);
    return;
  }
  writeFileAtomicSync(f.path, f.data);
}

/** Bytes a record holds in memory until it is laid out. */
export function recordBytes(f: RecordFile): number {
  let n = f.data.length;
  for (const x of f.extra ?? []) n += x.data.byteLength;
  return n;
}
