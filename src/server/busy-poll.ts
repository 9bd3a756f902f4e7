import { availableParallelism } from 'node:os';

/**
 * Adaptive busy polling around requests (docs/DECISIONS.md, "The event loop polls while a call
 * is in flight"). While a request is being answered, for at most `budgetUs` of it, and for
 * `afterUs` after each reply, the event loop keeps turning (a chain of setImmediate callbacks:
 * epoll with a zero timeout) instead of sleeping in epoll until the next event. The socket
 * answer of a fast call (Postgres, a local http origin, an upstream server) and the client's next
 * request are then picked up by a thread that is running, not one the kernel must wake on an
 * idle CPU, which costs tens of microseconds per hop on a virtual machine.
 *
 * The price is CPU: at most `budgetUs + afterUs` of one core per request, none while idle. A call
 * that runs longer than the budget sleeps as before. Off on a single CPU, where polling would
 * take the CPU from the very process it waits for.
 */
export class BusyPoll {
  private active = 0;
  /** performance.now() until which the loop polls while a request is active. */
  private activeUntil = 0;
  /** performance.now() until which the loop polls after the last reply. */
  private afterUntil = 0;
  private polling = false;
  /** Turns of the loop made by polling (for tests). */
  turns = 0;

  constructor(
    readonly budgetUs: number,
    readonly afterUs: number,
  ) {}

  /**
   * From INFRA_BUSY_POLL_US: the budget per request in microseconds (default 1000; 0 turns busy
   * polling off). Off on a machine with one CPU. A value that is not a number is reported in
   * `problem` and the default applies.
   */
  static fromEnv(env: NodeJS.ProcessEnv, cpus = availableParallelism()): { poll: BusyPoll | undefined; problem?: string } {
    const raw = env.INFRA_BUSY_POLL_US?.trim();
    let budget = DEFAULT_BUDGET_US;
    let problem: string | undefined;
    if (raw !== undefined && raw !== '') {
      const n = Number(raw);
      if (Number.isFinite(n) && n >= 0) budget = Math.min(n, MAX_BUDGET_US);
      else
        problem = `INFRA_BUSY_POLL_US=${JSON.stringify(raw)} is not a number of microseconds (0 turns busy polling off); using ${DEFAULT_BUDGET_US}`;
    }
    const poll = budget > 0 && cpus >= 2 ? new BusyPoll(budget, Math.min(DEFAULT_AFTER_US, budget)) : undefined;
    return problem ? { poll, problem } : { poll };
  }

  /** A request started; the returned function says it was answered (once; later calls are no-ops). */
  begin(): () => void {
    const now = performance.now();
    this.active++;
    this.activeUntil = Math.max(this.activeUntil, now + this.budgetUs / 1000);
    this.start();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.active--;
      this.afterUntil = performance.now() + this.afterUs / 1000;
      this.start();
    };
  }

  private start(): void {
    if (this.polling) return;
    this.polling = true;
    setImmediate(this.turn);
  }

  private readonly turn = (): void => {
    const now = performance.now();
    if ((this.active > 0 && now < this.activeUntil) || now < this.afterUntil) {
      this.turns++;
      setImmediate(this.turn);
      return;
    }
    this.polling = false;
  };
}

/** Per request: covers a Postgres round trip or a local http request, not a slow command. */
const DEFAULT_BUDGET_US = 1000;
const MAX_BUDGET_US = 100_000;
/** After a reply: a client sending its next request at once (a script, a runbook runner). */
const DEFAULT_AFTER_US = 250;
