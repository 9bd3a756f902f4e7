import type { CallCancel } from './define-action.js';

/**
 * A cancellation as a flag and listeners: what a call's abort (src/exec/call-abort.ts) and a
 * client's cancel of one request (src/server/stdio-transport.ts) share. Cheaper than an
 * AbortController, which a fast call need not make. The first reason stays.
 */
export class Cancellation implements CallCancel {
  aborted = false;
  reason: unknown = undefined;
  private listeners: (() => void)[] | undefined;

  /** Runs `fn` once when aborted; returns a function that removes it. */
  onAbort(fn: () => void): () => void {
    (this.listeners ??= []).push(fn);
    return () => {
      const i = this.listeners?.indexOf(fn) ?? -1;
      if (i >= 0) this.listeners!.splice(i, 1);
    };
  }

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.aborting();
    const ls = this.listeners;
    this.listeners = undefined;
    if (ls) for (const l of ls) l();
  }

  /** Runs when the abort happens, before the listeners (a subclass's own signal). */
  protected aborting(): void {}
}
