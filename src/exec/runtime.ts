import { join } from 'node:path';
import { recoverJournals } from '../artifacts/record-journal.js';
import { ArtifactStore } from '../artifacts/store.js';
import { Redactor } from '../artifacts/redactor.js';
import { AuditStore } from '../audit/audit-store.js';
import { openDatabase, type Database } from '../audit/db.js';
import { currentOwner } from '../audit/owner.js';
import type { Logger, ToolDef } from '../core/define-action.js';
import type { Envelope } from '../core/envelope.js';
import type { Closeable, EnvFlags, Services } from '../core/services.js';
import { loadConfig, projectAt, resolveProject, type LoadedConfig, type ProjectInfo } from '../config/load.js';
import { Federation, keepLastGood, type ServerStatus } from '../federation/index.js';
import { SecretResolver, stringsIn } from '../config/secret-refs.js';
import { readFlags } from '../policy/policy.js';
import { SECRET_STORE_KEY, SecretStore } from '../secrets/store.js';
import { StateStore } from '../toolsets/state/state-store.js';
import { NATIVE_TOOLS, TOOL_ALIASES } from '../toolsets/registry.js';
import { JobManager } from './jobs.js';
import { createLogger, parseLogLevel, type LogListener } from './logger.js';
import { Pipeline, type CallOptions } from './pipeline.js';

export interface RuntimeOptions {
  /** The `.infra` directory to use (skips discovery). */
  projectDir?: string | undefined;
  /** `--project` flag value (a project root or its .infra). */
  projectFlag?: string | undefined;
  project?: ProjectInfo | undefined;
  env?: NodeJS.ProcessEnv | undefined;
  cwd?: string | undefined;
  tools?: readonly ToolDef[] | undefined;
  logListeners?: LogListener[] | undefined;
  /**
   * The stdio server: read calls are recorded on a worker thread (on the main thread where there
   * is no worker file), and their call.json is held in a record journal until idle. Otherwise
   * (the CLI) each call is recorded, call.json written, before it returns.
   */
  recordWorker?: boolean | undefined;
  /** Start servers.json servers marked `start: "startup"` (the stdio server; not one-shot CLI commands). */
  startUpstreams?: boolean | undefined;
}

class ServicesImpl implements Services {
  readonly tools: readonly ToolDef[];
  private readonly resources = new Map<string, Closeable>();
  currentConfig: LoadedConfig;

  constructor(
    readonly flags: EnvFlags,
    readonly project: ProjectInfo,
    config: LoadedConfig,
    readonly secrets: SecretResolver,
    readonly redactor: Redactor,
    readonly artifacts: ArtifactStore,
    readonly state: StateStore,
    readonly audit: AuditStore,
    readonly jobs: JobManager,
    readonly log: Logger,
    tools: readonly ToolDef[],
  ) {
    this.currentConfig = config;
    this.tools = tools;
  }

  get config(): LoadedConfig {
    return this.currentConfig;
  }

  shared<T extends Closeable>(key: string, create: () => T): T {
    let r = this.resources.get(key) as T | undefined;
    if (!r) {
      r = create();
      this.resources.set(key, r);
    }
    return r;
  }

  async closeResources(): Promise<void> {
    const all = [...this.resources.values()];
    this.resources.clear();
    await Promise.allSettled(all.map((r) => r.close()));
  }
}

export interface Runtime {
  readonly services: Services;
  readonly pipeline: Pipeline;
  readonly project: ProjectInfo;
  call(tool: string, args: unknown, opts?: CallOptions): Promise<Envelope>;
  /**
   * Re-reads the config files (policy.json included); an invalid policy refuses every call.
   * With `keepLastGood` (the config watcher), a file that turned invalid keeps its last good
   * contents. servers.json changes restart only the upstream servers that changed.
   */
  reload(opts?: { keepLastGood?: boolean }): LoadedConfig;
  /** Upstream MCP servers of servers.json (src/federation). */
  readonly federation: Federation;
  /** Status of every upstream server, for preflight and doctor. */
  serverStatuses(): ServerStatus[];
  close(): Promise<void>;
}

/**
 * Builds everything one infra process needs: database (audit, state, jobs), artifacts,
 * redactor, config, and the pipeline with the native tools. The stdio server and the CLI both
 * call tools through this.
 */
export async function createRuntime(opts: RuntimeOptions = {}): Promise<Runtime> {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const project =
    opts.project ??
    (opts.projectDir ? projectAt(opts.projectDir, 'MCP_PROFILES_DIR', env) : resolveProject({ env, cwd, projectFlag: opts.projectFlag }));
  const redactor = new Redactor();
  const log = createLogger(redactor, parseLogLevel(env.INFRA_LOG_LEVEL), opts.logListeners ?? []);
  const flags = readFlags(env);
  const secrets = new SecretResolver(redactor, env, project.dir);
  // ${secret:NAME} comes from the encrypted store (docs/SECURITY.md)
  const secretStore = new SecretStore({ dir: project.dir, env, warn: (m) => log.warn(m) });
  secrets.setSource(secretStore);
  const config = loadConfig(project, env);
  for (const issue of config.issues) log.warn('config problem', { file: issue.file, message: issue.message });
  registerConfigSecrets(secrets, config);

  const db: Database = openDatabase(project.dbPath);
  const owner = currentOwner();
  const audit = new AuditStore(db, owner, log);
  const jobs = new JobManager(db, owner);
  const interrupted = audit.recoverInterrupted();
  // call.json of reads waits in a record journal until idle; ended processes' journals are laid out now
  const callsDir = join(project.artifactsDir, 'calls');
  const recovered = recoverJournals(callsDir, log);
  if (recovered) log.warn('call.json files an ended infra process had journaled were laid out', { count: recovered });
  // (only a server that answers before recording holds records back; the CLI waits for each)
  if (opts.recordWorker) {
    audit.recordIn(callsDir);
    audit.startWorker(project.dbPath);
  }
  jobs.recoverInterrupted();
  if (interrupted) log.warn('calls left running by an ended infra process were marked interrupted', { count: interrupted });

  // the store reads limits at call time from the current (reloadable) config
  const configRef: { current: () => LoadedConfig } = { current: () => config };
  const artifacts = new ArtifactStore(project.artifactsDir, redactor, () => configRef.current().policy.limits);
  artifacts.waitRecorded = (callId) => audit.recorded(callId);
  artifacts.waitAllRecorded = () => audit.settle({ files: true });
  const state = new StateStore(db);
  const tools = opts.tools ?? NATIVE_TOOLS;
  const services = new ServicesImpl(flags, project, config, secrets, redactor, artifacts, state, audit, jobs, log, tools);
  configRef.current = () => services.config;
  services.shared(SECRET_STORE_KEY, () => secretStore);
  const pipeline = new Pipeline(services, tools, TOOL_ALIASES);
  const federation = new Federation({ services, pipeline, db, env, startUpstreams: opts.startUpstreams ?? false });
  federation.configure(config.servers);
  let closed = false;

  return {
    services,
    pipeline,
    project,
    call: async (tool, args, callOpts) => {
      const env = await pipeline.call(tool, args, callOpts);
      // a read's record is written behind its reply; only the stdio server answers before it
      if (!callOpts?.replyBeforeRecorded) await audit.recorded(env.call_id);
      return env;
    },
    federation,
    serverStatuses: () => federation.statuses(),
    reload: (reloadOpts) => {
      let next = loadConfig(project, env);
      if (reloadOpts?.keepLastGood) next = keepLastGood(services.currentConfig, next, log);
      registerConfigSecrets(secrets, next);
      services.currentConfig = next;
      federation.configure(next.servers);
      return next;
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await jobs.shutdown();
      await federation.close();
      await services.closeResources();
      await audit.shutdown();
      await artifacts.close();
      db.close();
    },
  };
}

function registerConfigSecrets(secrets: SecretResolver, config: LoadedConfig): void {
  secrets.registerAll(stringsIn(config.targets));
  secrets.registerAll(stringsIn(config.profiles));
  secrets.registerAll(stringsIn(config.servers));
}
