/**
 * The command line: defines every command and its flags, imports each task lazily, and maps
 * failures to exit codes (0 success, 1 a run failed, 2 usage or configuration error).
 */
import { Command, CommanderError, Option } from "commander";
import { resolve } from "node:path";
import { ConfigError, RunError, UsageError } from "./errors.ts";
import { defaultOptions, type GlobalOptions } from "./context.ts";
import { log } from "./log.ts";

/** Exit codes. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

type Action = (
  global: GlobalOptions,
  args: string[],
  flags: Record<string, unknown>,
) => Promise<number | void>;

function globals(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals() as Partial<GlobalOptions>;
  const d = defaultOptions();
  return {
    models: o.models ? resolve(o.models) : d.models,
    config: o.config ? resolve(o.config) : d.config,
    results: o.results ? resolve(o.results) : d.results,
    quick: Boolean(o.quick),
  };
}

/** Builds the program; `run` is called with the chosen task so tests can drive the parser alone. */
export function buildProgram(onAction: (action: () => Promise<number | void>) => void): Command {
  const program = new Command("embbench")
    .description(
      "Benchmarks text embedding models across six CPU inference frameworks (PyTorch, ONNX Runtime from " +
        "Python, C++ and Rust, Candle, OpenVINO), each serving one HTTP contract from its own Docker image.",
    )
    .option("--models <file>", "models file (default: models.yaml next to main.ts)")
    .option("--config <file>", "benchmark config file (default: benchmark_config.yaml next to main.ts)")
    .option("--results <dir>", "results folder (default: results/ next to main.ts)")
    .option("--quick", "the small embedded model and short scenarios (first try, CI)")
    .showSuggestionAfterError(true)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => Deno.stdout.writeSync(new TextEncoder().encode(s)),
      writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)),
    });

  const add = (
    name: string,
    description: string,
    load: () => Promise<{ run: Action }>,
    configure?: (c: Command) => Command,
  ) => {
    let cmd = program.command(name).description(description).exitOverride();
    if (configure) cmd = configure(cmd);
    cmd.action((...params: unknown[]) => {
      const self = params[params.length - 1] as Command;
      const flags = self.opts();
      const args = self.processedArgs.flatMap((a) => (Array.isArray(a) ? a : a === undefined ? [] : [a]));
      onAction(async () => (await load()).run(globals(self), args as string[], flags));
    });
    return cmd;
  };

  add(
    "all",
    "convert, build, verify, run and report the active models and frameworks, skipping what is done",
    () => import("../tasks/all.ts"),
    (c) =>
      c.option("--framework <id...>", "only these frameworks (default: configured)")
        .option("--skip-verify", "benchmark frameworks even if verify fails")
        .option("--strict", "refuse server and loadgen cpusets that share a physical core"),
  );
  add(
    "convert",
    "turn a model into PyTorch, ONNX and OpenVINO formats and prove they agree (parity gate)",
    () => import("../tasks/convert.ts"),
    (c) =>
      c.argument("[model...]", "model ids from models.yaml (default: the active models)")
        .option("--fp16", "also write an fp16-compressed OpenVINO variant")
        .option("--force", "convert again even when the output is up to date")
        .option("--bodies <k>", "distinct request bodies per payloads/*.jsonl file (default 64)")
        .addOption(
          new Option("--mode <mode>", "where conversion runs").choices(["auto", "docker", "native"]).default(
            "auto",
          ),
        ),
  );
  add(
    "build",
    "build the framework images (default: the configured frameworks)",
    () => import("../tasks/build.ts"),
    (c) =>
      c.argument("[framework...]", "framework ids, or convert")
        .option(
          "--base-image <image>",
          "base image (default: embbench/base:trixie, made offline when missing)",
        )
        .option("--no-cache", "build without the layer cache"),
  );
  add(
    "verify",
    "check that each framework serves the contract and computes the reference embeddings",
    () => import("../tasks/verify.ts"),
    (c) =>
      c.option("--framework <id...>", "frameworks to verify (default: configured)")
        .option("--model <id...>", "models to verify with (default: active)")
        .option("--json", "print the results as JSON on stdout"),
  );
  add(
    "run",
    "benchmark every active model x framework x scenario x sequence length with oha",
    () => import("../tasks/run.ts"),
    (c) =>
      c.option("--resume <run-dir>", "complete an interrupted run, skipping its finished cells")
        .option("--framework <id...>", "only these frameworks")
        .option("--skip-verify", "benchmark frameworks even if verify fails")
        .option("--strict", "refuse server and loadgen cpusets that share a physical core")
        .option(
          "--image <framework=image...>",
          "use this image for a framework (default embbench/<framework>:latest)",
        )
        .option("--models-dir <dir>", "converted models folder (default: models/ next to main.ts)"),
  );
  add(
    "report",
    "write report.html (self-contained) and report.md for a run (default: the latest)",
    () => import("../tasks/report.ts"),
    (c) => c.argument("[run-dir]", "a folder under results/"),
  );
  add(
    "compare",
    "compare two runs cell by cell, flagging changes larger than their measured noise",
    () => import("../tasks/compare.ts"),
    (c) =>
      c.argument("<run-a>", "the baseline: a run folder or run id")
        .argument("<run-b>", "the run compared against it")
        .option(
          "--out <dir>",
          "where compare.html and compare.md go (default: results/compare/<a>__vs__<b>)",
        ),
  );
  add(
    "fetch-results",
    "copy results/<run-id>/ from a benchmark host to the local results folder (rsync or scp over ssh)",
    () => import("../tasks/fetch_results.ts"),
    (c) =>
      c.argument("[user@host]", "the host, as for ssh (terraform output ssh names it)")
        .argument("[run-id]", "a run folder on the host (default: its newest run)")
        .option("--remote-dir <dir>", "the embbench checkout on the host, relative to its home", "embbench")
        .option("--identity-file <file>", "the ssh private key (default: ssh's own choice)"),
  );
  add(
    "validate",
    "check models.yaml and benchmark_config.yaml against the schema and this host",
    () => import("../tasks/validate.ts"),
    (c) => c.option("--json", "print the effective configuration as JSON on stdout"),
  );
  add(
    "doctor",
    "show which tools are present, with versions, and how to install what is missing",
    () => import("../tasks/doctor.ts"),
    (c) => c.option("--json", "print the findings as JSON on stdout"),
  );
  return program;
}

/** Runs the CLI and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let action: (() => Promise<number | void>) | undefined;
  const program = buildProgram((a) => (action = a));
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help"
      ) {
        return EXIT.ok;
      }
      return EXIT.usage;
    }
    throw e;
  }
  if (!action) {
    program.outputHelp({ error: true });
    return EXIT.usage;
  }
  try {
    const code = await action();
    return code ?? EXIT.ok;
  } catch (e) {
    return reportError(e);
  }
}

/** The one top-level error handler: prints the message and chooses the exit code. */
export function reportError(e: unknown): number {
  if (e instanceof ConfigError) {
    for (const p of e.problems) log.error(p);
    return EXIT.usage;
  }
  if (e instanceof UsageError) {
    log.error(e.message);
    return EXIT.usage;
  }
  if (e instanceof RunError) {
    log.error(e.message);
    return EXIT.failed;
  }
  log.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  return EXIT.failed;
}
