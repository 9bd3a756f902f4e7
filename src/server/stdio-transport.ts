import process from 'node:process';
import { Cancellation } from '../core/cancel.js';
import type { BusyPoll } from './busy-poll.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/** A line longer than this is refused (and skipped up to its newline), never buffered whole. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * A request the transport answers itself instead of passing it to the SDK's Protocol: given
 * the method and params of a plain request (see isPlainRequest), it returns undefined at once
 * to leave the request to the SDK, or a promise of the JSON text of the response's `result`.
 * `cancel` aborts when the client cancels the request (notifications/cancelled); a cancelled
 * request gets no response, as the SDK does.
 */
export type DirectHandler = (method: string, params: Record<string, unknown>, cancel: ClientCancel) => Promise<string> | undefined;

/**
 * The client's cancellation of one request: aborted without a reason (the call reports its own,
 * CANCELLED), where an AbortController per request would cost more than a fast call's handling.
 */
export type ClientCancel = Cancellation;

/**
 * Newline-delimited JSON-RPC over stdin/stdout, like the SDK's StdioServerTransport, but hostile
 * input never ends the server or leaves a client waiting:
 * - the SDK closes the transport (and so the server exits) when one line passes 10 MB; here an
 *   oversized line is skipped and answered with an error when its id can be read;
 * - the SDK drops a line that is not a valid JSON-RPC message (params a string, an id of the wrong
 *   type) without a reply, so the client waits for its timeout; here a request whose id can be
 *   read gets -32600 Invalid Request or -32700 Parse error at once.
 * Lines are split on bytes (a multi-byte character across chunks stays whole) and buffered as a
 * list of chunks (no quadratic concatenation for big messages).
 */
export class GuardedStdioServerTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private chunks: Buffer[] = [];
  private size = 0;
  private skipping = false;
  private started = false;
  /** Requests being answered by `direct`, by id, for the client's cancellation. */
  private readonly inflight = new Map<string | number, ClientCancel>();
  /** Set by the server wiring (src/server/serve.ts): tools/call without the SDK's dispatch. */
  direct?: DirectHandler;
  /** Set by the server wiring: keeps the event loop polling while a direct request is answered. */
  busyPoll?: BusyPoll | undefined;

  constructor(
    private readonly stdin: NodeJS.ReadableStream = process.stdin,
    private readonly stdout: NodeJS.WritableStream = process.stdout,
    private readonly maxBytes = MAX_MESSAGE_BYTES,
  ) {}

  private readonly onData = (chunk: Buffer | string): void => {
    let buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    for (;;) {
      const nl = buf.indexOf(0x0a);
      if (nl === -1) {
        this.hold(buf);
        return;
      }
      this.hold(buf.subarray(0, nl));
      const line = this.skipping ? undefined : Buffer.concat(this.chunks, this.size);
      const skipped = this.skipping;
      this.chunks = [];
      this.size = 0;
      this.skipping = false;
      buf = buf.subarray(nl + 1);
      if (skipped) this.refuse(undefined, -32600, `message larger than ${this.maxBytes} bytes; skipped`);
      else if (line) this.handleLine(line);
    }
  };

  private readonly onStdinError = (e: Error): void => {
    this.onerror?.(e);
  };

  private hold(part: Buffer): void {
    if (this.skipping || part.length === 0) return;
    if (this.size + part.length > this.maxBytes) {
      // keep the head: the id of an oversized request is usually near the start
      this.head = Buffer.concat([...this.chunks, part])
        .subarray(0, 256)
        .toString('utf8');
      this.chunks = [];
      this.size = 0;
      this.skipping = true;
      return;
    }
    this.chunks.push(Buffer.from(part));
    this.size += part.length;
  }

  private head = '';

  private handleLine(line: Buffer): void {
    let text = line.toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (!text.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      this.onerror?.(new Error(`stdin: a line that is not JSON (${(e as Error).message.slice(0, 200)})`));
      this.refuse(idFromText(text), -32700, 'Parse error: the line is not valid JSON');
      return;
    }
    // the common case, a plain request or notification, is checked by hand (the SDK validates
    // each method's params again); anything else goes through the SDK's schema
    if (isPlainRequest(value)) {
      if (this.direct && this.answerDirectly(value as PlainMessage)) return;
      this.onmessage?.(value);
      return;
    }
    const parsed = JSONRPCMessageSchema.safeParse(value);
    if (!parsed.success) {
      const m = value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
      const id = m?.id;
      const validId = typeof id === 'string' || Number.isSafeInteger(id);
      this.onerror?.(new Error('stdin: a message that is not valid JSON-RPC'));
      // answer requests only (a method and an id): a malformed response or notification has no
      // one waiting for it. An id that is not a string or an integer is answered as null, as
      // JSON-RPC 2.0 says for an id that cannot be read; so is a batch.
      if ((typeof m?.method === 'string' && 'id' in m) || Array.isArray(value)) {
        this.refuse(
          validId ? (id as string | number) : null,
          -32600,
          `Invalid Request: ${Array.isArray(value) ? 'batches are not supported; send one request per line' : whatIsWrong(m!)}`,
        );
      }
      return;
    }
    this.onmessage?.(parsed.data);
  }

  /** Answers a request through `direct`, or follows a cancellation of one; false: the SDK's. */
  private answerDirectly(m: PlainMessage): boolean {
    if (m.id === undefined) {
      // a cancellation of a request answered here; the SDK hears of it too (and finds nothing)
      if (m.method === 'notifications/cancelled') {
        const id = m.params?.requestId;
        if (typeof id === 'string' || typeof id === 'number') this.inflight.get(id)?.abort();
      }
      return false;
    }
    const id = m.id;
    const ac = new Cancellation();
    const pending = this.direct!(m.method, m.params ?? {}, ac);
    if (!pending) return false;
    const answered = this.busyPoll?.begin();
    this.inflight.set(id, ac);
    const idJson = JSON.stringify(id);
    pending.then(
      (result) => {
        if (this.inflight.get(id) === ac) this.inflight.delete(id);
        if (!ac.aborted) this.writeLine(`{"result":${result},"jsonrpc":"2.0","id":${idJson}}`);
        answered?.();
      },
      (e: unknown) => {
        if (this.inflight.get(id) === ac) this.inflight.delete(id);
        if (!ac.aborted) {
          const message = e instanceof Error ? e.message : String(e);
          this.writeLine(JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32603, message: message || 'Internal error' } }));
        }
        answered?.();
      },
    );
    return true;
  }

  private writeLine(line: string): void {
    try {
      this.stdout.write(line + '\n');
    } catch (e) {
      this.onerror?.(e as Error);
    }
  }

  private refuse(id: string | number | null | undefined, code: number, message: string): void {
    if (id === undefined && code === -32600 && this.head) id = idFromText(this.head);
    this.head = '';
    if (id === undefined) return;
    void this.send({ jsonrpc: '2.0', id, error: { code, message } } as JSONRPCMessage).catch(() => undefined);
  }

  async start(): Promise<void> {
    if (this.started) throw new Error('GuardedStdioServerTransport already started');
    this.started = true;
    this.stdin.on('data', this.onData);
    this.stdin.on('error', this.onStdinError);
  }

  async close(): Promise<void> {
    this.stdin.off('data', this.onData);
    this.stdin.off('error', this.onStdinError);
    if (this.stdin.listenerCount('data') === 0) this.stdin.pause();
    this.chunks = [];
    this.size = 0;
    // like the SDK: requests still running are aborted and answer nothing
    for (const ac of this.inflight.values()) ac.abort();
    this.inflight.clear();
    this.onclose?.();
  }

  send(message: JSONRPCMessage): Promise<void> {
    const out = readableSchemaError(message);
    return new Promise((resolve) => {
      if (this.stdout.write(JSON.stringify(out) + '\n')) resolve();
      else this.stdout.once('drain', () => resolve());
    });
  }
}

/**
 * The SDK answers a request whose params fail its schema (prompts/get, logging/setLevel,
 * resources/read …) with -32603 and the zod issues as a JSON dump for a message. That becomes
 * -32602 Invalid params with one line per issue, as a client (and a person) can read it.
 */
export function readableSchemaError(message: JSONRPCMessage): JSONRPCMessage {
  const err = (message as { error?: { code?: unknown; message?: unknown } }).error;
  if (!err || err.code !== -32603 || typeof err.message !== 'string' || !err.message.startsWith('[')) return message;
  let issues: unknown;
  try {
    issues = JSON.parse(err.message);
  } catch {
    return message;
  }
  if (!Array.isArray(issues) || issues.length === 0) return message;
  const lines: string[] = [];
  for (const i of issues.slice(0, 8) as { path?: unknown; message?: unknown }[]) {
    if (!i || typeof i !== 'object' || !Array.isArray(i.path) || typeof i.message !== 'string') return message;
    const path = i.path.map((p) => String(p).slice(0, 64)).join('.') || '(params)';
    lines.push(`${path}: ${i.message.slice(0, 200)}`);
  }
  const more = issues.length > 8 ? `; and ${issues.length - 8} more` : '';
  return { ...message, error: { code: -32602, message: `Invalid params: ${lines.join('; ')}${more}` } } as JSONRPCMessage;
}

/** Why a message with a method is not a request JSONRPCMessageSchema takes, in a few words. */
function whatIsWrong(m: Record<string, unknown>): string {
  if (m.jsonrpc !== '2.0') return 'jsonrpc must be "2.0"';
  if ('id' in m && !(typeof m.id === 'string' || Number.isSafeInteger(m.id))) return 'id must be a string or an integer';
  if ('params' in m && (!m.params || typeof m.params !== 'object' || Array.isArray(m.params))) return 'params must be an object';
  return 'not a valid JSON-RPC 2.0 request (check params._meta)';
}

/** The id of a request that could not be parsed whole, when it is plainly there. */
function idFromText(text: string): string | number | undefined {
  const m = /"id"\s*:\s*(-?\d{1,15}|"(?:[^"\\]|\\.){0,200}")\s*[,}]/.exec(text.slice(0, 4096));
  if (!m) return undefined;
  try {
    const v = JSON.parse(m[1]!) as unknown;
    return typeof v === 'string' || typeof v === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

const REQUEST_KEYS = new Set(['jsonrpc', 'id', 'method', 'params']);

interface PlainMessage {
  id?: string | number;
  method: string;
  params?: Record<string, unknown>;
}

/**
 * A JSON-RPC request or notification that JSONRPCMessageSchema certainly accepts as is: only
 * its four keys, version "2.0", a string method, a string or integer id, params an object
 * without `_meta` (a message with `_meta`, or anything else, takes the schema's path).
 */
export function isPlainRequest(v: unknown): v is JSONRPCMessage {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const m = v as Record<string, unknown>;
  if (m.jsonrpc !== '2.0' || typeof m.method !== 'string') return false;
  for (const k in m) if (!REQUEST_KEYS.has(k)) return false;
  if ('id' in m && !(typeof m.id === 'string' || Number.isInteger(m.id))) return false;
  if (m.params === undefined) return !('params' in m);
  const p = m.params;
  if (!p || typeof p !== 'object' || Array.isArray(p)) return false;
  return !('_meta' in p);
}
