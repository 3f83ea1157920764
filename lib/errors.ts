/** Named errors the CLI maps to exit codes: usage/config errors exit 2, failed runs exit 1. */

/** Bad input from the user: a flag, a file, a field. The CLI exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A configuration file failed to load or validate; carries every problem found, one per line. */
export class ConfigError extends UsageError {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
  }
}

/** Something that should have worked did not (a build, a container, a run). The CLI exits 1. */
export class RunError extends Error {
  override name = "RunError";
}
