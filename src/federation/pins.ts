import type { Database } from '../audit/db.js';
import type { PinnedDefinition } from './definition.js';

/** The row of tool_pins that records that a human approved the server itself. */
export const SERVER_MARKER = '';

export interface Pin {
  hash: string;
  definition: PinnedDefinition;
  approved_at: string;
}

export interface ServerPins {
  /** `infra servers approve NAME` was run at least once. */
  approved: boolean;
  approvedAt: string | undefined;
  tools: Map<string, Pin>;
}

/**
 * Trust-on-first-use pins in infra.db (`tool_pins`): one row per approved upstream tool with
 * the hash and the definition that was approved, plus a marker row (tool = '') per approved
 * server. Several infra processes share the file: the CLI approves, the server notices.
 */
export class PinStore {
  private readonly selectServer;
  private readonly upsert;
  private readonly version;

  constructor(private readonly db: Database) {
    this.selectServer = db.prepare('SELECT tool, hash, definition, approved_at FROM tool_pins WHERE server = ?');
    this.upsert = db.prepare(
      'INSERT INTO tool_pins (server, tool, hash, definition, approved_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(server, tool) DO UPDATE SET hash = excluded.hash, definition = excluded.definition, approved_at = excluded.approved_at',
    );
    this.version = db.prepare("SELECT count(*) AS n, coalesce(max(approved_at), '') AS at FROM tool_pins");
  }

  forServer(server: string): ServerPins {
    const rows = this.selectServer.all(server) as { tool: string; hash: string; definition: string; approved_at: string }[];
    const tools = new Map<string, Pin>();
    let approvedAt: string | undefined;
    for (const r of rows) {
      if (r.tool === SERVER_MARKER) {
        approvedAt = r.approved_at;
        continue;
      }
      try {
        tools.set(r.tool, { hash: r.hash, definition: JSON.parse(r.definition) as PinnedDefinition, approved_at: r.approved_at });
      } catch {
        /* an unreadable pin is no pin: the tool waits for approval again */
      }
    }
    return { approved: approvedAt !== undefined, approvedAt, tools };
  }

  /** Pins these definitions (replacing older pins of the same tools) and marks the server approved. */
  approve(server: string, tools: { name: string; hash: string; definition: PinnedDefinition }[], now = new Date()): void {
    const at = now.toISOString();
    this.db.transaction(() => {
      this.upsert.run(server, SERVER_MARKER, 'approved', '{}', at);
      for (const t of tools) this.upsert.run(server, t.name, t.hash, JSON.stringify(t.definition), at);
    })();
  }

  /** Changes whenever any process approves something (polled by the serving process). */
  changeToken(): string {
    const r = this.version.get() as { n: number; at: string };
    return `${r.n}:${r.at}`;
  }
}
