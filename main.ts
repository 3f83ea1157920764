/**
 * embbench: benchmarks embedding models across CPU inference frameworks.
 *
 * This entry point only wires: it hands the arguments to the CLI and exits with its code.
 *
 * @example
 * ```sh
 * ./embbench all --quick
 * ```
 */
import { main } from "./lib/cli.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
