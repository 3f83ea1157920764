/** Pinned versions of the external tools embbench drives; scripts/install.sh installs these. */

/** oha, the load generator (cargo install --locked oha@OHA_VERSION). */
export const OHA_VERSION = "1.16.0";

/** Deno, from the npm package `deno` (tools/deno/package.json pins the same). */
export const DENO_VERSION = "2.9.6";
