import { defineTool } from '../../core/define-action.js';
import { branchesAction, diffAction, logAction, showAction, snapshotAction, statusAction } from './read-actions.js';
import { branchCreateAction, checkoutAction, commitAction, pushAction } from './write-actions.js';

export const repoTool = defineTool({
  name: 'repo',
  title: 'Git repositories',
  description:
    'Git repositories under the allowed roots (the project root by default; repo.roots in policy.json). repo_path is relative to the project root. ' +
    "Read: snapshot (branch, HEAD, status, recent commits, diffstat in one call), status, log, diff, show, branches; the repository's hooks, fsmonitor, filters and external diff programs never run on reads. " +
    'Write (needs repo.write): commit, branch_create, checkout. Irreversible: push (never forced unless repo.force_push). Refs, names and paths never start with "-".',
  actions: [
    snapshotAction,
    statusAction,
    logAction,
    diffAction,
    showAction,
    branchesAction,
    commitAction,
    branchCreateAction,
    checkoutAction,
    pushAction,
  ],
});
