import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { configJsonSchemas } from '../config/json-schemas.js';

const GITIGNORE = `# infra's own stores: the audit index and call artifacts stay out of git
infra.db
infra.db-*
artifacts/
secrets.key
secrets.enc.json
`;

const FILES: Record<string, string> = {
  'targets.json': `{
  "$schema": "SCHEMA/targets.schema.json"
  // SSH targets, by name. Secrets only by reference: \${env:NAME}, \${secret:NAME}, \${file:path}.
  // "prod": {
  //   "host": "prod.example.com",
  //   "port": 22,
  //   "username": "deploy",
  //   "key_file": "~/.ssh/id_ed25519",
  //   "host_key_sha256": "SHA256:…",   // or "known_hosts": "~/.ssh/known_hosts"; \`infra ssh trust prod\` pins it
  //   "tags": ["web"]
  // }
}
`,
  'profiles.json': `{
  "$schema": "SCHEMA/profiles.schema.json"
  // Postgres and HTTP profiles, by name.
  // "app-db": { "type": "postgres", "url": "\${env:DATABASE_URL}", "mode": "read_only" },
  // "api": { "type": "http", "base_url": "https://api.example.com", "headers": { "Authorization": "Bearer \${env:API_TOKEN}" } }
}
`,
  'policy.json': `{
  "$schema": "SCHEMA/policy.schema.json"
  // Human-owned: no tool can change this file. Every key is optional.
  // "tools":  { "repo": { "actions": { "push": false } } },
  // "ssh":    { "allow_targets": ["prod", "staging"] },
  // "http":   { "allow_hosts": ["api.internal", "*.example.com"], "allow_private": true, "allow_link_local": false },
  // "repo":   { "roots": ["."], "write": false, "force_push": false },
  // "confirm": { "psql.execute": true, "repo.push": true },
  // "limits": { "inline_max_bytes": 16384, "default_timeout_ms": 50000, "retention_days": 30 }
}
`,
  'runbooks.json': `{
  "$schema": "SCHEMA/runbooks.schema.json",
  "hello.world": {
    "description": "A simple test runbook.",
    "tags": ["test"],
    "inputs": ["message"],
    "steps": [
      { "id": "echo", "tool": "state", "args": { "action": "set", "key": "hello", "value": "{{ input.message }}" } }
    ]
  }
}
`,
  'servers.json': `{
  "$schema": "SCHEMA/servers.schema.json",
  // Other MCP servers behind infra: every call audited and under policy. Their tools appear as
  // <server>__<tool>, only those matched by tools.allow. See: infra servers list|test|approve.
  "mcpServers": {
    // "memory": {
    //   "command": "npx",
    //   "args": ["-y", "@modelcontextprotocol/server-memory"],
    //   "env": { "MEMORY_FILE_PATH": "\${env:HOME}/.infra-memory.json" },
    //   "tools": { "allow": ["read_graph", "search_nodes"], "deny": [] }
    // },
    // "remote": { "url": "https://mcp.example.com/mcp", "headers": { "Authorization": "Bearer \${secret:REMOTE_TOKEN}" } }
  }
}
`,
  'capabilities.json': `{
  "$schema": "SCHEMA/capabilities.schema.json",
  "version": 1,
  "capabilities": {}
}
`,
};

/** Scaffolds `.infra/` in `dir` (never overwrites an existing file). Returns what it wrote. */
export function initProject(dir: string): { infraDir: string; written: string[]; kept: string[] } {
  const infraDir = resolve(dir).endsWith('.infra') ? resolve(dir) : join(resolve(dir), '.infra');
  mkdirSync(infraDir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  const kept: string[] = [];
  const put = (name: string, text: string): void => {
    const p = join(infraDir, name);
    if (existsSync(p)) {
      kept.push(name);
      return;
    }
    writeFileSync(p, text, { mode: 0o600 });
    written.push(name);
  };
  put('.gitignore', GITIGNORE);
  for (const [name, text] of Object.entries(FILES)) put(name, text.replace(/SCHEMA\//g, './schemas/'));
  // the schemas travel with the project so editors complete keys offline; always refreshed
  mkdirSync(join(infraDir, 'schemas'), { recursive: true });
  for (const [name, schema] of Object.entries(configJsonSchemas())) {
    writeFileSync(join(infraDir, 'schemas', name), `${JSON.stringify(schema, null, 2)}\n`);
  }
  return { infraDir, written, kept };
}
