/** `embbench all`: not implemented yet. */
import type { GlobalOptions } from "../lib/context.ts";
import { NotImplementedError } from "../lib/errors.ts";

export function run(_opts: GlobalOptions, _args: string[], _flags: Record<string, unknown>): Promise<number> {
  throw new NotImplementedError("embbench all is not implemented yet");
}
