/** Error codes of the reply envelope (DESIGN §2). */
export const ERROR_CODES = [
  'INVALID_ARGUMENT',
  'DENIED',
  'NOT_FOUND',
  'TIMEOUT',
  'CANCELLED',
  'CONNECTION_FAILED',
  'AUTH_FAILED',
  'HOST_KEY_MISMATCH',
  'LIMIT_EXCEEDED',
  'UPSTREAM_ERROR',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ToolErrorOptions {
  hint?: string;
  retryable?: boolean;
  /** Extra machine-readable facts (e.g. `{ reason: 'changed', fingerprint }`). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

/**
 * The only error a handler should throw on purpose. The pipeline turns it into an
 * `isError` envelope; anything else becomes INTERNAL.
 */
export class ToolError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, opts: ToolErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ToolError';
    this.code = code;
    this.hint = opts.hint;
    this.retryable = opts.retryable ?? (code === 'TIMEOUT' || code === 'CONNECTION_FAILED' || code === 'UPSTREAM_ERROR');
    this.details = opts.details;
  }
}

export function isToolError(e: unknown): e is ToolError {
  return e instanceof ToolError;
}

export const invalid = (message: string, hint?: string, details?: Record<string, unknown>): ToolError =>
  new ToolError('INVALID_ARGUMENT', message, { hint, details });
export const denied = (message: string, hint?: string, details?: Record<string, unknown>): ToolError =>
  new ToolError('DENIED', message, { hint, details });
export const notFound = (message: string, hint?: string, details?: Record<string, unknown>): ToolError =>
  new ToolError('NOT_FOUND', message, { hint, details });
