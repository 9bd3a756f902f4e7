import type { Logger } from '../core/define-action.js';
import type { Redactor } from '../artifacts/redactor.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogListener = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/**
 * Structured JSON lines on stderr (stdout is the protocol), redacted. Listeners (the MCP
 * logging notifications) receive the same redacted lines.
 */
export function createLogger(
  redactor: Redactor,
  level: LogLevel = 'info',
  listeners: LogListener[] = [],
): Logger & { listeners: LogListener[] } {
  const min = RANK[level];
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (RANK[lvl] < min) return;
    const safeMsg = redactor.redact(msg);
    const safeFields = fields ? redactor.redactValue(fields) : undefined;
    try {
      process.stderr.write(`${JSON.stringify({ t: new Date().toISOString(), level: lvl, msg: safeMsg, ...safeFields })}\n`);
    } catch {
      /* stderr closed: nothing else to do */
    }
    for (const l of listeners) {
      try {
        l(lvl, safeMsg, safeFields);
      } catch {
        /* a listener must not break logging */
      }
    }
  };
  return {
    listeners,
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

export function parseLogLevel(v: string | undefined): LogLevel {
  return v === 'debug' || v === 'warn' || v === 'error' ? v : 'info';
}
