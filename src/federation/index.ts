export { Federation, type ServerStatus, type ServerStatusKind, type UpstreamToolStatus } from './federation.js';
export { keepLastGood, watchConfig } from './config-watch.js';
export { findHiddenChars } from './hidden-chars.js';
export { definitionHash, pinnedDefinition } from './definition.js';
