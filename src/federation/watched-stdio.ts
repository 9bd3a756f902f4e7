import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ReadBuffer, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/**
 * The upstream runs under a small /bin/sh supervisor, the leader of its own process group:
 *
 * - fd 3 is a pipe from infra that nobody writes. When infra goes away — exit, crash or SIGKILL —
 *   the kernel closes it, the watcher's `read` returns, and the whole group gets SIGTERM, then
 *   SIGKILL two seconds later. No parent-death signal or polling is needed.
 * - the server itself runs in the background with the original stdin (a non-interactive shell
 *   would give a background job /dev/null) and without fd 3.
 * - when the server exits on its own, what it left in the group is ended too, and the
 *   supervisor exits with the server's status.
 */
const SUPERVISOR = [
  'exec 4<&0',
  '"$@" <&4 4<&- 3<&- &',
  'child=$!',
  'exec 0</dev/null 4<&-',
  "( trap '' TERM; read _ <&3; kill -TERM 0 2>/dev/null; sleep 2; kill -KILL 0 2>/dev/null ) </dev/null >/dev/null 2>&1 &",
  'watcher=$!',
  'exec 3<&-',
  'wait "$child"; status=$?',
  "trap '' TERM",
  'kill -TERM 0 2>/dev/null',
  'kill -KILL "$watcher" 2>/dev/null',
  'exit "$status"',
].join('\n');

export interface WatchedStdioParams {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string | undefined;
  /** Receives the server's stderr (for logs and failure reasons). */
  onStderr?: (chunk: string) => void;
  /** After stdin is closed, how long the server gets before its group is signalled. */
  graceMs?: number;
}

/** Every live supervisor group of this process, ended synchronously at exit as a last resort. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) killGroup(pgid, 'SIGTERM');
  });
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* already gone */
  }
}

/** An MCP stdio client transport whose child (and its process group) cannot outlive infra. */
export class WatchedStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private child: ChildProcess | undefined;
  private readonly buffer = new ReadBuffer();
  private exited: Promise<void> | undefined;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;

  constructor(private readonly params: WatchedStdioParams) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): Promise<void> {
    if (this.child) throw new Error('WatchedStdioTransport already started');
    installExitHook();
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', SUPERVISOR, 'infra-upstream', this.params.command, ...this.params.args], {
        env: this.params.env,
        cwd: this.params.cwd,
        stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
        detached: true,
        windowsHide: true,
      });
      this.child = child;
      this.exited = new Promise((r) => {
        child.on('close', (code, signal) => {
          this.exitCode = code;
          this.exitSignal = signal;
          if (child.pid) liveGroups.delete(child.pid);
          r();
          this.onclose?.();
        });
      });
      child.on('error', (e) => {
        reject(e);
        this.onerror?.(e);
      });
      child.on('spawn', () => {
        if (child.pid) liveGroups.add(child.pid);
        resolve();
      });
      const stdout = child.stdout as Readable;
      stdout.on('data', (chunk: Buffer) => {
        this.buffer.append(chunk);
        for (;;) {
          let msg: JSONRPCMessage | null;
          try {
            msg = this.buffer.readMessage();
          } catch (e) {
            this.onerror?.(e as Error);
            continue;
          }
          if (!msg) break;
          this.onmessage?.(msg);
        }
      });
      stdout.on('error', (e) => this.onerror?.(e));
      (child.stdin as Writable).on('error', (e) => this.onerror?.(e));
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (s: string) => this.params.onStderr?.(s));
      // fd 3: held open, never written; its closing is the watchdog's signal
      (child.stdio[3] as Writable | null)?.on('error', () => undefined);
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      const stdin = this.child?.stdin;
      if (!stdin || stdin.destroyed) return reject(new Error('the upstream server is not running'));
      if (stdin.write(serializeMessage(message))) resolve();
      else stdin.once('drain', resolve);
    });
  }

  /** Closes stdin; after a grace period signals the whole group (TERM, then KILL). */
  async close(): Promise<void> {
    const child = this.child;
    if (!child?.pid || this.exitCode !== null || this.exitSignal !== null) return;
    const pgid = child.pid;
    const grace = this.params.graceMs ?? 2000;
    child.stdin?.end();
    const done = this.exited!;
    const wait = (ms: number): Promise<boolean> =>
      Promise.race([done.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    if (await wait(grace)) return;
    killGroup(pgid, 'SIGTERM');
    if (await wait(grace)) return;
    killGroup(pgid, 'SIGKILL');
    await wait(grace);
  }

  /** Ends the group at once (used when infra is exiting). */
  killNow(): void {
    if (this.child?.pid) killGroup(this.child.pid, 'SIGKILL');
  }
}
