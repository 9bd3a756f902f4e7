/** Filled in by tools/build.mjs (esbuild define); in development read from package.json / git. */
declare const __INFRA_VERSION__: string | undefined;
declare const __INFRA_COMMIT__: string | undefined;

export const VERSION: string = typeof __INFRA_VERSION__ === 'string' ? __INFRA_VERSION__ : '0.1.0-dev';
export const COMMIT: string = typeof __INFRA_COMMIT__ === 'string' ? __INFRA_COMMIT__ : 'dev';
