/**
 * Characters a human reviewing a tool description cannot see but a model reads: the carriers of
 * tool-poisoning and "ASCII smuggling" attacks. A definition containing any of them is refused.
 *
 * - C0/C1 control characters other than tab, newline and carriage return (ANSI escapes start with ESC)
 * - zero-width and invisible formatting characters (U+200B–U+200D, U+2060–U+2064, U+FEFF, U+180E, U+00AD, U+034F, U+115F/U+1160, U+3164, U+FFA0)
 * - bidirectional controls (U+061C, U+200E/U+200F, U+202A–U+202E, U+2066–U+2069)
 * - Unicode tag characters (U+E0000–U+E007F) and the supplementary variation selectors (U+E0100–U+E01EF)
 * - interlinear annotation characters (U+FFF9–U+FFFB)
 */
const HIDDEN =
  // eslint-disable-next-line no-control-regex, no-misleading-character-class -- these are the characters being searched for
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u00AD\u034F\u061C\u115F\u1160\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\u3164\uFEFF\uFFA0\uFFF9-\uFFFB]|\u{E0000}|[\u{E0001}-\u{E007F}]|[\u{E0100}-\u{E01EF}]/u;

export interface HiddenCharFinding {
  /** Where in the definition, e.g. `description` or `inputSchema.properties.q.description`. */
  path: string;
  /** The code point, e.g. `U+200B`. */
  char: string;
  /** Index (in code units) within that string. */
  index: number;
}

/** The first hidden character in any string of a JSON-like value (keys included), or undefined. */
export function findHiddenChars(value: unknown, path = ''): HiddenCharFinding | undefined {
  if (typeof value === 'string') {
    const m = HIDDEN.exec(value);
    if (!m) return undefined;
    const cp = m[0].codePointAt(0)!;
    return { path: path || '(value)', char: `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`, index: m.index };
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const f = findHiddenChars(value[i], `${path}[${i}]`);
      if (f) return f;
    }
    return undefined;
  }
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const sub = path ? `${path}.${k}` : k;
      const fk = findHiddenChars(k, `${sub} (key)`);
      if (fk) return fk;
      const f = findHiddenChars(v, sub);
      if (f) return f;
    }
  }
  return undefined;
}
