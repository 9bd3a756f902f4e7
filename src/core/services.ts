import type { Logger, ToolDef } from './define-action.js';
import type { LoadedConfig, ProjectInfo } from '../config/load.js';
import type { Redactor } from '../artifacts/redactor.js';
import type { ArtifactStore } from '../artifacts/store.js';
import type { StateStore } from '../toolsets/state/state-store.js';
import type { AuditStore } from '../audit/audit-store.js';
import type { JobManager } from '../exec/jobs.js';
import type { SecretResolver } from '../config/secret-refs.js';

/** The three opt-in environment flags of DESIGN §5, read once at start. */
export interface EnvFlags {
  /** INFRA_UNSAFE_LOCAL=1 */
  unsafeLocal: boolean;
  /** INFRA_ALLOW_SECRET_EXPORT=1 */
  allowSecretExport: boolean;
  /** INFRA_READ_ONLY=1 */
  readOnly: boolean;
}

export interface Closeable {
  close(): void | Promise<void>;
}

/**
 * Everything long-lived that handlers may use. Created once per process; handlers reach it as
 * `ctx.services`. Adapters keep their pools through `shared()` so they are closed at exit.
 */
export interface Services {
  readonly flags: EnvFlags;
  readonly project: ProjectInfo;
  /** The current configuration (replaced on reload; read it at call time, never cache it). */
  readonly config: LoadedConfig;
  readonly secrets: SecretResolver;
  readonly redactor: Redactor;
  readonly artifacts: ArtifactStore;
  readonly state: StateStore;
  readonly audit: AuditStore;
  readonly jobs: JobManager;
  readonly log: Logger;
  /** The native tool definitions (for help and catalogs). */
  readonly tools: readonly ToolDef[];
  /** One long-lived resource per key (connection pools), closed when the server stops. */
  shared<T extends Closeable>(key: string, create: () => T): T;
}
