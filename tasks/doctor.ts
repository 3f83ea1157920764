/** `embbench doctor`: what is present, with versions, and the command that installs what is missing. */
import { commandOutput, parseCpuinfo, simdFlags } from "../lib/env.ts";
import type { GlobalOptions } from "../lib/context.ts";
import { output } from "../lib/log.ts";
import { DENO_VERSION, OHA_VERSION } from "../lib/versions.ts";

/** One finding. */
export interface Finding {
  name: string;
  ok: boolean;
  /** Version or value found, or what is wrong. */
  detail: string;
  /** Needed for `embbench all`; optional pieces only widen what can run. */
  required: boolean;
  /** The command that installs or fixes it. */
  fix?: string;
}

async function tool(
  name: string,
  cmd: string,
  args: string[],
  fix: string,
  required = true,
  expect?: string,
): Promise<Finding> {
  const out = await commandOutput(cmd, args);
  if (out === null) return { name, ok: false, detail: "not found", required, fix };
  const version = out.split("\n")[0]!;
  if (expect && !version.includes(expect)) {
    return { name, ok: false, detail: `${version} (embbench pins ${expect})`, required, fix };
  }
  return { name, ok: true, detail: version, required };
}

/** Collects every finding. */
export async function diagnose(resultsDir: string): Promise<Finding[]> {
  const findings = await Promise.all([
    Promise.resolve<Finding>({
      name: "deno",
      ok: Deno.version.deno === DENO_VERSION,
      detail: Deno.version.deno === DENO_VERSION
        ? Deno.version.deno
        : `${Deno.version.deno} (embbench pins ${DENO_VERSION})`,
      required: true,
      fix: "bash scripts/install.sh",
    }),
    tool("docker client", "docker", ["--version"], "apt-get install -y docker.io"),
    tool(
      "docker engine",
      "docker",
      ["version", "--format", "{{.Server.Version}}"],
      "dockerd --iptables=false --bridge=none &   (or: systemctl start docker)",
    ),
    tool("oha", "oha", ["--version"], `cargo install --locked oha@${OHA_VERSION}`, true, OHA_VERSION),
    tool("taskset", "taskset", ["--version"], "apt-get install -y util-linux"),
    tool("debootstrap", "debootstrap", ["--version"], "apt-get install -y debootstrap", false),
    tool(
      "cargo",
      "cargo",
      ["--version"],
      "curl https://sh.rustup.rs | sh   (or: apt-get install -y cargo)",
      false,
    ),
    tool("python3", "python3", ["--version"], "apt-get install -y python3 python3-venv", false),
  ]);
  const df = await commandOutput("df", ["-Pk", resultsDir.replace(/\/results\/?$/, "") || "."]);
  const freeKb = Number(df?.split("\n")[1]?.split(/\s+/)[3] ?? NaN);
  const freeGb = freeKb / 1024 / 1024;
  findings.push({
    name: "disk space",
    ok: freeGb >= 20,
    detail: Number.isFinite(freeGb) ? `${freeGb.toFixed(1)} GiB free` : "unknown",
    required: false,
    fix: "free at least 20 GiB: images and converted models take about 15 GiB for BGE-M3",
  });
  let cpuinfo = "";
  try {
    cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  } catch { /* not Linux */ }
  const { model, flags } = parseCpuinfo(cpuinfo);
  const simd = simdFlags(flags);
  findings.push({
    name: "cpu",
    ok: simd.includes("avx2"),
    detail: `${model}; ${simd.join(" ") || "no AVX2"}`,
    required: false,
    fix: "the images are built for x86-64-v3 (AVX2, FMA): use such a CPU",
  });
  return findings;
}

export async function run(opts: GlobalOptions, _args: string[], flags: { json?: boolean }): Promise<number> {
  const findings = await diagnose(opts.results);
  if (flags.json) {
    output(JSON.stringify(findings, null, 2));
  } else {
    const width = Math.max(...findings.map((f) => f.name.length));
    for (const f of findings) {
      const mark = f.ok ? "ok     " : f.required ? "MISSING" : "missing";
      output(
        `${mark}  ${f.name.padEnd(width)}  ${f.detail}${
          !f.ok && f.fix ? `\n         ${" ".repeat(width)}  fix: ${f.fix}` : ""
        }`,
      );
    }
  }
  return findings.some((f) => f.required && !f.ok) ? 1 : 0;
}
