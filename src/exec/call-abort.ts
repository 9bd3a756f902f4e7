import { Cancellation } from '../core/cancel.js';
import type { CallCancel } from '../core/define-action.js';
import { isToolError, ToolError } from '../core/errors.js';

/** What a call can follow: an AbortSignal, or a CallCancel (a parent call, the stdio transport). */
export type CancelSource = AbortSignal | CallCancel;

function isCallCancel(s: CancelSource): s is CallCancel {
  return typeof (s as Partial<CallCancel>).onAbort === 'function';
}

/**
 * A call's cancellation: its timeout, the client's cancel, a job's cancel or a parent's abort.
 * The AbortSignal a handler passes to pg, ssh2, undici or a child process is made the first time
 * the handler asks for it: most reads never do, and an AbortController with its listeners is a
 * measurable part of a fast call. Once aborted, the reason is a ToolError and stays the first one.
 */
export class CallAbort extends Cancellation {
  private controller: AbortController | undefined;
  declare reason: ToolError | undefined;

  /** The call's AbortSignal (made on first use, already aborted when the call is). */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  override abort(reason: ToolError): void {
    super.abort(reason);
  }

  protected override aborting(): void {
    this.controller?.abort(this.reason);
  }

  private following: NodeJS.Immediate | undefined;

  /** Client cancellation (or a parent's abort) aborts this call too. */
  follow(signal: CancelSource | undefined): void {
    if (!signal) return;
    if (signal.aborted) this.abort(reasonOf(signal));
    else if (isCallCancel(signal)) signal.onAbort(() => this.abort(reasonOf(signal)));
    else signal.addEventListener('abort', () => this.abort(reasonOf(signal)), { once: true });
  }

  /**
   * `follow`, from the end of this turn of the event loop. A cancellation reaches the server as
   * input, which is read only after this turn: a call that ends within it (a state get, a cached
   * read) cannot be cancelled and needs no listener, and one that goes on follows the signal
   * before any later input is handled (a signal aborted meanwhile is seen then).
   */
  followSoon(signal: CancelSource | undefined): void {
    if (!signal) return;
    // a CallCancel costs a push to follow, now
    if (signal.aborted || isCallCancel(signal)) this.follow(signal);
    else
      this.following = setImmediate(() => {
        this.following = undefined;
        this.follow(signal);
      });
  }

  /** The call has ended: nothing more to follow. */
  ended(): void {
    if (this.following) clearImmediate(this.following);
    this.following = undefined;
  }
}

export function cancelled(): ToolError {
  return new ToolError('CANCELLED', 'the client cancelled the call', { retryable: false });
}

export function reasonOf(signal: CancelSource): ToolError {
  return isToolError(signal.reason) ? signal.reason : cancelled();
}

interface Deadline {
  at: number;
  fire: () => void;
}

/**
 * One timer for every running call's deadline. Almost every call ends long before its deadline,
 * and a Node timer set and cleared per call is a measurable part of a fast one; here a call
 * costs a Set insert and delete. The timer is armed for the earliest deadline it knows of and,
 * when it fires, fires what is due and re-arms for the next. It never keeps the process alive
 * (a running call has its own I/O doing that).
 */
export class Deadlines {
  private readonly live = new Set<Deadline>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  /** Calls `fire` at `at` (epoch ms) unless the returned function is called first. */
  add(at: number, fire: () => void): () => void {
    const d: Deadline = { at, fire };
    this.live.add(d);
    if (at < this.timerAt) this.arm(at);
    return () => {
      this.live.delete(d);
    };
  }

  private arm(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.tick, Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  private readonly tick = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const d of [...this.live]) {
      if (d.at <= now) {
        this.live.delete(d);
        d.fire();
      } else if (d.at < next) next = d.at;
    }
    if (next < Infinity && next < this.timerAt) this.arm(next);
  };
}
