import { defineTool } from '../../core/define-action.js';
import { executeAction } from './execute.js';
import { explainAction } from './explain.js';
import { exportAction } from './export.js';
import { profilesAction } from './profiles.js';
import { queryAction } from './query.js';
import { schemaAction } from './schema.js';

export const psqlTool = defineTool({
  name: 'psql',
  title: 'PostgreSQL',
  description:
    'PostgreSQL through named profiles (profiles.json). query, explain, schema and export run inside READ ONLY transactions that Postgres enforces, one statement per call (extended protocol), with a statement_timeout; execute writes only on profiles with "mode": "read_write". Timeouts and cancellation stop the statement on the server.',
  actions: [queryAction, executeAction, explainAction, schemaAction, exportAction, profilesAction],
});
