import type { ToolDef } from '../core/define-action.js';
import { artifactsTool } from './artifacts/index.js';
import { auditTool } from './audit/index.js';
import { helpTool } from './help/index.js';
import { httpTool } from './http/index.js';
import { jobsTool } from './jobs/index.js';
import { localTool } from './local/index.js';
import { preflightTool } from './preflight/index.js';
import { psqlTool } from './psql/index.js';
import { repoTool } from './repo/index.js';
import { runbookTool } from './runbook/index.js';
import { secretsTool } from './secrets/index.js';
import { sshTool } from './ssh/index.js';
import { stateTool } from './state/index.js';

/**
 * Every native tool, in the order tools/list shows them. A tool module adds itself here with
 * one import and one entry.
 */
export const NATIVE_TOOLS: ToolDef[] = [
  helpTool,
  stateTool,
  artifactsTool,
  auditTool,
  jobsTool,
  localTool,
  repoTool,
  httpTool,
  sshTool,
  psqlTool,
  preflightTool,
  secretsTool,
  runbookTool,
];

/** Hidden aliases from the seed documents (DESIGN §2): callable, never listed. */
export const TOOL_ALIASES: Record<string, string> = {
  mcp_state: 'state',
  mcp_artifacts: 'artifacts',
  mcp_local: 'local',
  mcp_ssh_manager: 'ssh',
  mcp_psql_manager: 'psql',
  mcp_api_client: 'http',
  mcp_repo: 'repo',
  mcp_runbook: 'runbook',
  mcp_jobs: 'jobs',
  mcp_audit: 'audit',
};
