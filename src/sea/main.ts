// Entry of the single-file binary (tools/release bundles this as CommonJS for Node's SEA).
// The order of these imports is the order their top levels run: the addon first, then the CLI.
import './init.js';
import '../cli.js';
