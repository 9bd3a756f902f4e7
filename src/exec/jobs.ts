import type { Database } from '../audit/db.js';
import { ownerAlive, type Owner } from '../audit/owner.js';
import type { ProgressUpdate } from '../core/define-action.js';
import type { Envelope } from '../core/envelope.js';
import { notFound, ToolError } from '../core/errors.js';
import type { BoundedSink } from '../artifacts/bounded-sink.js';
import type { CallAbort } from './call-abort.js';

export type JobStatus = 'running' | 'ok' | 'error' | 'cancelled' | 'timeout' | 'interrupted';

export interface JobInfo {
  job_id: string;
  call_id: string;
  tool: string;
  action: string;
  status: JobStatus;
  owner_pid: number;
  started_at: string;
  ended_at: string | null;
  progress: ProgressUpdate | null;
  /** The final envelope once the job has ended. */
  envelope?: Envelope;
}

interface LiveJob {
  info: JobInfo;
  controller: CallAbort;
  done: Promise<Envelope>;
  sinks: Map<string, BoundedSink>;
  steps?: unknown;
}

interface Row {
  id: string;
  call_id: string;
  tool: string;
  action: string;
  status: JobStatus;
  owner_pid: number;
  owner_start: string;
  started_at: string;
  ended_at: string | null;
  progress: string | null;
  envelope: string | null;
}

const rowToInfo = (r: Row): JobInfo => ({
  job_id: r.id,
  call_id: r.call_id,
  tool: r.tool,
  action: r.action,
  status: r.status,
  owner_pid: r.owner_pid,
  started_at: r.started_at,
  ended_at: r.ended_at,
  progress: r.progress ? (JSON.parse(r.progress) as ProgressUpdate) : null,
  ...(r.envelope ? { envelope: JSON.parse(r.envelope) as Envelope } : {}),
});

/**
 * Async jobs (`async: true` on long actions). Jobs are recorded in infra.db so any infra process
 * can see them; only the process that started a job can cancel it.
 */
export class JobManager {
  private readonly live = new Map<string, LiveJob>();
  private readonly insert;
  private readonly finish;
  private readonly progressStmt;
  private readonly getStmt;
  private lastProgressWrite = new Map<string, number>();

  constructor(
    private readonly db: Database,
    private readonly owner: Owner,
  ) {
    this.insert = db.prepare(
      `INSERT INTO jobs (id, call_id, tool, action, status, owner_pid, owner_start, started_at) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)`,
    );
    this.finish = db.prepare('UPDATE jobs SET status = ?, ended_at = ?, envelope = ? WHERE id = ?');
    this.progressStmt = db.prepare('UPDATE jobs SET progress = ? WHERE id = ?');
    this.getStmt = db.prepare('SELECT * FROM jobs WHERE id = ?');
  }

  start(jobId: string, callId: string, tool: string, action: string, controller: CallAbort, run: () => Promise<Envelope>): JobInfo {
    const started = new Date().toISOString();
    this.insert.run(jobId, callId, tool, action, this.owner.pid, this.owner.start, started);
    const info: JobInfo = {
      job_id: jobId,
      call_id: callId,
      tool,
      action,
      status: 'running',
      owner_pid: this.owner.pid,
      started_at: started,
      ended_at: null,
      progress: null,
    };
    const job: LiveJob = { info, controller, sinks: new Map(), done: Promise.resolve(undefined as unknown as Envelope) };
    this.live.set(jobId, job);
    job.done = run().then(
      (env) => {
        this.complete(job, env);
        return env;
      },
      (e: unknown) => {
        const env: Envelope = {
          ok: false,
          call_id: callId,
          error: { code: 'INTERNAL', message: `job failed: ${(e as Error).message}`, retryable: false },
        };
        this.complete(job, env);
        return env;
      },
    );
    return { ...info };
  }

  private complete(job: LiveJob, env: Envelope): void {
    const status: JobStatus = env.ok
      ? 'ok'
      : env.error.code === 'CANCELLED'
        ? 'cancelled'
        : env.error.code === 'TIMEOUT'
          ? 'timeout'
          : 'error';
    job.info.status = status;
    job.info.ended_at = new Date().toISOString();
    job.info.envelope = env;
    this.finish.run(status, job.info.ended_at, JSON.stringify(env), job.info.job_id);
    this.lastProgressWrite.delete(job.info.job_id);
    // keep finished jobs in memory for a while for cheap status/wait; the DB has them anyway
    setTimeout(() => this.live.delete(job.info.job_id), 10 * 60_000).unref();
  }

  attachSink(jobId: string, sink: BoundedSink): void {
    this.live.get(jobId)?.sinks.set(sink.sinkName, sink);
  }

  setSteps(jobId: string, steps: unknown): void {
    const j = this.live.get(jobId);
    if (j) j.steps = steps;
  }

  progress(jobId: string, update: ProgressUpdate): void {
    const j = this.live.get(jobId);
    if (!j) return;
    j.info.progress = update;
    const now = Date.now();
    if (now - (this.lastProgressWrite.get(jobId) ?? 0) > 1000) {
      this.lastProgressWrite.set(jobId, now);
      this.progressStmt.run(JSON.stringify(update), jobId);
    }
  }

  get(jobId: string): JobInfo & { steps?: unknown } {
    const j = this.live.get(jobId);
    if (j) return { ...j.info, ...(j.steps !== undefined ? { steps: j.steps } : {}) };
    const r = this.getStmt.get(jobId) as Row | undefined;
    if (!r) throw notFound(`no job ${jobId}`, 'list jobs with jobs {action:"list"}');
    return rowToInfo(r);
  }

  list(opts: { status?: string | undefined; limit?: number | undefined }): JobInfo[] {
    const limit = Math.min(Math.max(opts.limit ?? 50, 1), 500);
    const rows = (
      opts.status
        ? this.db.prepare(`SELECT * FROM jobs WHERE status = ? ORDER BY id DESC LIMIT ${limit}`).all(opts.status)
        : this.db.prepare(`SELECT * FROM jobs ORDER BY id DESC LIMIT ${limit}`).all()
    ) as Row[];
    return rows.map((r) => {
      const live = this.live.get(r.id);
      const info = live ? { ...live.info } : rowToInfo(r);
      delete info.envelope;
      return info;
    });
  }

  /** Waits for a job to end, up to `timeoutMs` (or until `signal` aborts). */
  async wait(jobId: string, timeoutMs: number, signal: AbortSignal): Promise<JobInfo> {
    const j = this.live.get(jobId);
    if (!j) {
      const info = this.get(jobId);
      if (info.status !== 'running') return info;
      // a job of another process: poll the database
      const until = Date.now() + timeoutMs;
      while (Date.now() < until && !signal.aborted) {
        await new Promise((r) => setTimeout(r, 200));
        const now = this.get(jobId);
        if (now.status !== 'running') return now;
      }
      return this.get(jobId);
    }
    if (j.info.status !== 'running') return this.get(jobId);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      j.done,
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
        signal.addEventListener('abort', () => r(), { once: true });
      }),
    ]);
    if (timer) clearTimeout(timer);
    return this.get(jobId);
  }

  /** Live head+tail of the job's output streams while it runs. */
  liveOutput(jobId: string): Record<string, { bytes: number; inline: string }> | undefined {
    const j = this.live.get(jobId);
    if (!j || j.info.status !== 'running') return undefined;
    const out: Record<string, { bytes: number; inline: string }> = {};
    for (const [name, s] of j.sinks) out[name] = s.snapshot();
    return out;
  }

  cancel(jobId: string): JobInfo {
    const j = this.live.get(jobId);
    if (!j) {
      const info = this.get(jobId);
      if (info.status === 'running') {
        throw new ToolError('DENIED', `job ${jobId} belongs to another infra process (pid ${info.owner_pid})`, {
          hint: 'only the process that started a job can cancel it; use the client connected to that process',
        });
      }
      return info;
    }
    if (j.info.status === 'running') {
      j.controller.abort(new ToolError('CANCELLED', `job ${jobId} was cancelled`, { retryable: false }));
    }
    return { ...j.info };
  }

  /** Marks jobs of dead owners interrupted (at start). */
  recoverInterrupted(): number {
    const rows = this.db.prepare(`SELECT * FROM jobs WHERE status = 'running'`).all() as Row[];
    let n = 0;
    for (const r of rows) {
      if (ownerAlive({ pid: r.owner_pid, start: r.owner_start })) continue;
      this.finish.run('interrupted', new Date().toISOString(), null, r.id);
      n++;
    }
    return n;
  }

  /** Cancels every running job of this process (shutdown) and waits briefly for them. */
  async shutdown(graceMs = 2000): Promise<void> {
    const running = [...this.live.values()].filter((j) => j.info.status === 'running');
    for (const j of running) j.controller.abort(new ToolError('CANCELLED', 'infra is shutting down'));
    await Promise.race([Promise.allSettled(running.map((j) => j.done)), new Promise((r) => setTimeout(r, graceMs))]);
  }
}
