import { defineTool } from '../../core/define-action.js';
import { checkAction } from './check.js';
import { execAction } from './exec.js';
import { infoAction } from './info.js';
import { targetsAction } from './targets.js';
import { downloadAction, uploadAction } from './transfer.js';

export const sshTool = defineTool({
  name: 'ssh',
  title: 'SSH',
  description:
    'Operate named SSH targets from targets.json over pooled, host-key-verified connections: run commands (exec), ' +
    'system facts (info), health (check), SFTP upload/download, and list targets. Output goes to the call artifact.',
  actions: [execAction, infoAction, checkAction, uploadAction, downloadAction, targetsAction],
});
