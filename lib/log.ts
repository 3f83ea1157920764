/** Logging to stderr, so stdout stays clean for what scripts read (--json). */

const encoder = new TextEncoder();
const start = performance.now();

function write(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

function stamp(): string {
  return `[${((performance.now() - start) / 1000).toFixed(1).padStart(6)}s]`;
}

/** Leveled logger; every line goes to stderr with the seconds since start. */
export const log = {
  info(message: string): void {
    write(`${stamp()} ${message}`);
  },
  warn(message: string): void {
    write(`${stamp()} warning: ${message}`);
  },
  error(message: string): void {
    write(`error: ${message}`);
  },
  /** A line without a timestamp, for tables and summaries. */
  plain(message: string): void {
    write(message);
  },
};

/** Writes what scripts consume to stdout. */
export function output(text: string): void {
  try {
    Deno.stdout.writeSync(encoder.encode(text.endsWith("\n") ? text : text + "\n"));
  } catch (e) {
    // The reader went away (`embbench doctor | head`): what it wanted, it has.
    if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
  }
}
