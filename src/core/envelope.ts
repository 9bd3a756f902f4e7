import type { ErrorCode } from './errors.js';

export interface TruncationInfo {
  bytes: number;
  inline: number;
}

export interface OkEnvelope {
  ok: true;
  tool: string;
  action: string;
  call_id: string;
  duration_ms: number;
  result: unknown;
  truncated?: Record<string, TruncationInfo>;
  artifact?: string;
  job_id?: string;
}

export interface ErrorEnvelope {
  ok: false;
  tool?: string;
  action?: string;
  call_id: string;
  duration_ms?: number;
  error: {
    code: ErrorCode;
    message: string;
    hint?: string;
    retryable: boolean;
    details?: Record<string, unknown>;
  };
  artifact?: string;
}

export type Envelope = OkEnvelope | ErrorEnvelope;
