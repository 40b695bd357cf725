/** Set by the build (esbuild `define`); 'dev' when running from source. */
declare const WALSHIP_BUILD_VERSION: string | undefined;

export const VERSION = typeof WALSHIP_BUILD_VERSION === 'string' ? WALSHIP_BUILD_VERSION : 'dev';
