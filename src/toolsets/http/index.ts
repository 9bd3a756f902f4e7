import { defineTool } from '../../core/define-action.js';
import { checkAction } from './check.js';
import { profilesAction } from './profiles.js';
import { requestAction } from './request.js';

export const httpTool = defineTool({
  name: 'http',
  title: 'HTTP requests and health checks',
  description:
    'HTTP(S) requests through named profiles (base_url, headers with secret references, TLS) or plain URLs. Bodies stream into the call artifact; GET/HEAD/OPTIONS are read-only. Link-local and cloud-metadata addresses are refused (checked after DNS and on every redirect); http.allow_hosts in policy.json can restrict hosts.',
  actions: [requestAction, checkAction, profilesAction],
});
