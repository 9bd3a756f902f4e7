import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fallbackProject, projectAt, resolveProject, type ProjectInfo } from '../config/load.js';
import { createRuntime, type Runtime } from '../exec/runtime.js';
import { watchConfig } from '../federation/index.js';
import { BusyPoll } from './busy-poll.js';
import { createServer } from './create-server.js';
import { GuardedStdioServerTransport } from './stdio-transport.js';

export interface ServeOptions {
  projectFlag?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

const ROOTS_WAIT_MS = 2000;

/**
 * Serves MCP on stdio. The project is found in DESIGN §3 order; when nothing but the state-dir
 * fallback is left, the client's MCP roots are asked first.
 */
export async function serve(opts: ServeOptions = {}): Promise<void> {
  const env = opts.env ?? process.env;
  const found = resolveProject({ env, cwd: process.cwd(), projectFlag: opts.projectFlag });
  let runtimePromise: Promise<Runtime> | undefined;
  let configWatch: { close(): void } | undefined;
  let resolveDeferred: ((p: ProjectInfo) => void) | undefined;
  const projectPromise: Promise<ProjectInfo> =
    found.source === 'XDG_STATE_HOME'
      ? new Promise<ProjectInfo>((r) => {
          resolveDeferred = r;
        })
      : Promise.resolve(found);

  const getRuntime = (): Promise<Runtime> => {
    runtimePromise ??= projectPromise.then(async (project) => {
      const rt = await createRuntime({ project, env, logListeners: [logToClient], startUpstreams: true, recordWorker: true });
      rt.services.log.info('infra serving', { project: project.dir, found_by: project.source, artifacts: project.artifactsDir });
      // upstream tool lists and config edits change what tools/list shows (src/federation)
      const toolsChanged = (): void => server.toolsChanged();
      rt.federation.onToolsChanged(toolsChanged);
      configWatch = watchConfig(
        project.dir,
        () => {
          rt.reload({ keepLastGood: true });
          rt.services.log.info('config reloaded', { project: project.dir });
          toolsChanged();
        },
        rt.services.log,
      );
      return rt;
    });
    return runtimePromise;
  };

  const server = createServer(getRuntime);
  const logToClient = (level: string, msg: string, fields?: Record<string, unknown>): void => {
    if (level === 'debug') return;
    void server
      .sendLoggingMessage({
        level: level === 'warn' ? 'warning' : (level as 'info' | 'error'),
        logger: 'infra',
        data: fields ? { msg, ...fields } : msg,
      })
      .catch(() => undefined);
  };

  if (resolveDeferred) {
    const settle = resolveDeferred;
    server.oninitialized = () => {
      void (async () => {
        let project = fallbackProject(env);
        try {
          if (server.getClientCapabilities()?.roots) {
            const res = await server.listRoots(undefined, { timeout: ROOTS_WAIT_MS });
            for (const root of res.roots) {
              if (!root.uri.startsWith('file://')) continue;
              const dir = fileURLToPath(root.uri);
              if (existsSync(join(dir, '.infra')) || existsSync(dir)) {
                project = projectAt(join(dir, '.infra'), 'roots', env);
                break;
              }
            }
          }
        } catch {
          /* no roots: the state-dir fallback stays */
        }
        settle(project);
      })();
    };
  }

  const transport = new GuardedStdioServerTransport();
  transport.direct = server.direct;
  const busy = BusyPoll.fromEnv(env);
  if (busy.problem) process.stderr.write(`infra: ${busy.problem}\n`);
  transport.busyPoll = busy.poll;
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    configWatch?.close();
    try {
      if (runtimePromise) await (await runtimePromise).close();
    } catch {
      /* closing anyway */
    }
    process.exit(code);
  };
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));
  process.stdin.on('end', () => void stop(0));
  transport.onclose = () => void stop(0);
  await server.connect(transport);
  if (!resolveDeferred)
    void getRuntime().catch((e: unknown) => {
      process.stderr.write(`infra: could not start: ${(e as Error).message}\n`);
      void stop(1);
    });
}
