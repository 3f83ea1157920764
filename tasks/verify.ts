import type { GlobalOptions } from "../lib/context.ts";
import { NotImplementedError } from "../lib/errors.ts";
export function run(_o: GlobalOptions, _a: string[], _f: Record<string, unknown>): Promise<number> {
  throw new NotImplementedError("embbench verify is not implemented yet");
}
export function verifyGate(_o: unknown): Promise<void> {
  return Promise.reject(
    new NotImplementedError("embbench verify is not implemented yet: pass --skip-verify"),
  );
}
