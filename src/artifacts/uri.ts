import { invalid } from '../core/errors.js';

/** artifact://calls/<call_id>/<file> and artifact://runs/<runbook>/<run_id>/run.json (DESIGN §4). */
export const ARTIFACT_SCHEME = 'artifact://';

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * Parses an artifact URI into its relative path segments under the artifacts root. Refuses
 * anything that could leave the root: `..`, encoded dots or slashes, absolute paths,
 * backslashes, NUL, empty segments.
 */
export function parseArtifactUri(uri: string): string[] {
  const fix = 'use a URI like artifact://calls/<call_id>/stdout as returned in a reply';
  if (typeof uri !== 'string' || !uri.startsWith(ARTIFACT_SCHEME)) {
    throw invalid(`not an artifact URI: ${JSON.stringify(String(uri).slice(0, 200))}`, fix);
  }
  let rest = uri.slice(ARTIFACT_SCHEME.length);
  if (rest.includes('\0') || rest.includes('\\') || /%/.test(rest)) {
    throw invalid('artifact URI contains NUL, a backslash or a percent-encoding, which are refused', fix);
  }
  rest = rest.replace(/\/+$/, '');
  if (rest === '') return [];
  if (rest.startsWith('/')) throw invalid('artifact URI must be relative to the artifacts root', fix);
  const segs = rest.split('/');
  for (const s of segs) {
    if (s === '' || s === '.' || s === '..' || !SEGMENT.test(s) || /^\.+$/.test(s)) {
      throw invalid(`artifact URI segment ${JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}…` : s)} is not allowed`, fix);
    }
  }
  if (segs[0] !== 'calls' && segs[0] !== 'runs') {
    throw invalid(`artifact URIs start with artifact://calls/ or artifact://runs/, not ${segs[0]}`, fix);
  }
  return segs;
}

export const callUri = (callId: string, file?: string): string => `${ARTIFACT_SCHEME}calls/${callId}/${file ?? ''}`;
export const runUri = (runbook: string, runId: string, file?: string): string => `${ARTIFACT_SCHEME}runs/${runbook}/${runId}/${file ?? ''}`;
