/**
 * Builds the images: the offline base image, then docker/<name>/Dockerfile with the docker/ folder
 * as context, tagged embbench/<name>:<content-hash> and :latest, with a progress line per image and
 * the full log kept on disk.
 */
import { join, relative } from "node:path";
import { REPO_ROOT } from "../context.ts";
import { commandOutput } from "../env.ts";
import { RunError } from "../errors.ts";
import { latestImage } from "../frameworks.ts";
import { sha256Hex } from "../fs.ts";
import { log } from "../log.ts";

export const DOCKER_DIR = join(REPO_ROOT, "docker");
export const DEFAULT_BASE_IMAGE = "embbench/base:trixie";

/** The outcome of building one image. */
export interface BuildResult {
  name: string;
  tag: string;
  contentHash: string;
  imageId: string;
  seconds: number;
  steps: number;
  cachedSteps: number;
  logFile: string;
}

/** An image's id, or null when it does not exist. */
function imageIdOf(tag: string): Promise<string | null> {
  return commandOutput("docker", ["image", "inspect", "--format", "{{.Id}}", tag]);
}

/** Makes the offline base image with debootstrap when it is missing (about a minute). */
export async function ensureBaseImage(tag = DEFAULT_BASE_IMAGE): Promise<void> {
  if ((await imageIdOf(tag)) !== null) return;
  if (tag !== DEFAULT_BASE_IMAGE) {
    log.info(`pulling base image ${tag}`);
    if ((await commandOutput("docker", ["pull", tag])) !== null) return;
    throw new RunError(
      `Base image ${tag} is missing and 'docker pull ${tag}' failed (no registry?): omit --base-image to make ` +
        `${DEFAULT_BASE_IMAGE} offline with debootstrap`,
    );
  }
  log.info(
    `base image ${tag} is missing: making it with debootstrap from the host's Debian mirror (about a minute)`,
  );
  const out = await new Deno.Command("bash", {
    args: [join(DOCKER_DIR, "base", "make_base.sh"), tag],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const tail = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-30).join("\n");
    throw new RunError(`Cannot make the base image ${tag}:\n${tail}`);
  }
}

/**
 * The base image the framework builds start from. Our own offline image already carries the host's
 * CA certificates; any other (a registry's debian:trixie) gets them added in a thin layer on top,
 * tagged embbench/base:<content-hash>.
 */
export async function baseWithCertificates(baseImage: string, logDir: string): Promise<string> {
  if (baseImage === DEFAULT_BASE_IMAGE) return baseImage;
  await stageCertificates();
  const dockerfile = join(DOCKER_DIR, "base", "certs.Dockerfile");
  const hash = await contentHash("base", { BASE_IMAGE: baseImage }, dockerfile);
  const tag = `embbench/base:certs-${hash}`;
  if ((await imageIdOf(tag)) !== null) return tag;
  log.info(`adding the host's CA certificates to ${baseImage} as ${tag}`);
  await Deno.mkdir(logDir, { recursive: true });
  const out = await new Deno.Command("docker", {
    args: [
      "build",
      "--network",
      "host",
      "--build-arg",
      `BASE_IMAGE=${baseImage}`,
      "-f",
      dockerfile,
      "-t",
      tag,
      DOCKER_DIR,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  await Deno.writeTextFile(join(logDir, "build-base-certs.log"), text);
  if (!out.success) {
    throw new RunError(
      `Cannot add CA certificates to ${baseImage}:\n${text.trim().split("\n").slice(-30).join("\n")}`,
    );
  }
  return tag;
}

/** Copies the host's CA certificates into docker/.certs so Dockerfiles can trust a TLS-intercepting proxy. */
async function stageCertificates(): Promise<void> {
  const target = join(DOCKER_DIR, ".certs");
  await Deno.mkdir(target, { recursive: true });
  try {
    for await (const e of Deno.readDir("/usr/local/share/ca-certificates")) {
      if (e.isFile && e.name.endsWith(".crt")) {
        await Deno.copyFile(join("/usr/local/share/ca-certificates", e.name), join(target, e.name));
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** Source folders a Dockerfile copies from the docker/ context (first path segment of each COPY source). */
export function copiedFolders(dockerfile: string): string[] {
  const folders = new Set<string>();
  for (const raw of dockerfile.split("\n")) {
    const line = raw.trim();
    if (!/^(COPY|ADD)\s/i.test(line) || /--from=/i.test(line)) continue;
    const parts = line.split(/\s+/).slice(1).filter((p) => !p.startsWith("--"));
    for (const src of parts.slice(0, -1)) folders.add(src.replace(/^\.\//, "").split("/")[0]!);
  }
  return [...folders].filter((f) => f && f !== ".").sort();
}

/** Names the content hash skips; docker/.dockerignore keeps the same ones out of the build context. */
const IGNORED = /(^|\/)(target|build|node_modules|__pycache__|\.pytest_cache|\.venv[^/]*)(\/|$)/;

/** sha256 over the Dockerfile, the build arguments and every file it copies: names and contents. */
export async function contentHash(
  name: string,
  buildArgs: Record<string, string>,
  dockerfilePath = join(DOCKER_DIR, name, "Dockerfile"),
): Promise<string> {
  const dockerfile = await Deno.readTextFile(dockerfilePath);
  const files: string[] = [dockerfilePath];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (IGNORED.test(relative(DOCKER_DIR, p))) continue;
      if (e.isDirectory) await walk(p);
      else if (e.isFile) files.push(p);
    }
  };
  for (const folder of copiedFolders(dockerfile)) {
    const p = join(DOCKER_DIR, folder);
    try {
      if ((await Deno.stat(p)).isDirectory) await walk(p);
      else files.push(p);
    } catch { /* a missing source makes the build fail with Docker's own message */ }
  }
  return await hashFiles(files.sort(), buildArgs);
}

/** sha256 (12 hex digits) over build arguments and files: names relative to docker/ and contents. */
async function hashFiles(files: string[], buildArgs: Record<string, string>): Promise<string> {
  const parts: Uint8Array[] = [new TextEncoder().encode(JSON.stringify(Object.entries(buildArgs).sort()))];
  for (const f of files) {
    parts.push(new TextEncoder().encode(relative(DOCKER_DIR, f) + "\0"), await Deno.readFile(f));
  }
  const total = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    total.set(p, off);
    off += p.length;
  }
  return (await sha256Hex(total)).slice(0, 12);
}

/**
 * The docker CLI to build with and whether it speaks BuildKit: `docker buildx`, else an engine-era
 * CLI (≤ 22) with BuildKit built in, else the legacy builder.
 */
export function dockerBuildCli(): Promise<{ cli: string; buildkit: boolean }> {
  // The answer does not change during a process: ask the CLIs once, not once per image.
  buildCli ??= (async () => {
    if (await commandOutput("docker", ["buildx", "version"])) return { cli: "docker", buildkit: true };
    for (const cli of ["docker", "/usr/bin/docker"]) {
      const v = await commandOutput(cli, ["version", "--format", "{{.Client.Version}}"]);
      if (v && Number(v.split(".")[0]) <= 22) return { cli, buildkit: true };
    }
    return { cli: "docker", buildkit: false };
  })();
  return buildCli;
}
let buildCli: Promise<{ cli: string; buildkit: boolean }> | undefined;

/**
 * Reads a build's progress from one output line: BuildKit's "#5 [stage 2/7] RUN ..." and "#5 CACHED"
 * (keyed by vertex number, as parallel stages interleave) or the legacy "Step 2/7 : RUN ..." and
 * " ---> Using cache".
 */
export function parseProgress(line: string): { vertex?: string; step?: string; cached?: string } {
  const bk = /^#(\d+) \[((?:[\w.-]+ )?\d+\/\d+)\] (.*)$/.exec(line);
  if (bk) return { vertex: bk[1], step: `${bk[2]} ${bk[3]}` };
  const bkCached = /^#(\d+) CACHED$/.exec(line);
  if (bkCached) return { cached: bkCached[1] };
  const legacy = /^Step (\d+\/\d+) : (.*)$/.exec(line);
  if (legacy) return { vertex: `step${legacy[1]}`, step: `${legacy[1]} ${legacy[2]}` };
  if (/^ ---> Using cache$/.test(line)) return { cached: "legacy" };
  return {};
}

/** Builds one image, streaming its log to `logFile` and a one-line progress to stderr. */
export async function buildImage(
  name: string,
  opts: { baseImage: string; noCache?: boolean; logDir: string },
): Promise<BuildResult> {
  const buildArgs = { BASE_IMAGE: opts.baseImage };
  const hash = await contentHash(name, buildArgs);
  const tag = `embbench/${name}:${hash}`;
  const { cli, buildkit } = await dockerBuildCli();
  await Deno.mkdir(opts.logDir, { recursive: true });
  const logFile = join(opts.logDir, `build-${name}.log`);
  const file = await Deno.open(logFile, { write: true, create: true, truncate: true });
  const args = [
    "build",
    "--network",
    "host",
    ...(buildkit ? ["--progress=plain"] : []),
    ...(opts.noCache ? ["--no-cache"] : []),
    "--build-arg",
    `BASE_IMAGE=${opts.baseImage}`,
    "-f",
    join(DOCKER_DIR, name, "Dockerfile"),
    "-t",
    tag,
    "-t",
    latestImage(name),
    DOCKER_DIR,
  ];
  const started = performance.now();
  const child = new Deno.Command(cli, {
    args,
    env: { DOCKER_BUILDKIT: buildkit ? "1" : "0" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const steps = new Set<string>();
  const cached = new Set<string>();
  let lastStep = "";
  const tail: string[] = [];
  const isTty = Deno.stderr.isTerminal();
  const show = (text: string) => {
    const line = `[${name}] ${text}`.slice(0, 150);
    if (isTty) Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[2K${line}`));
    else log.info(line);
  };
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of stream) {
      await file.write(chunk);
      pending += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl).trimEnd();
        pending = pending.slice(nl + 1);
        tail.push(line);
        if (tail.length > 30) tail.shift();
        const p = parseProgress(line);
        if (p.vertex && !steps.has(p.vertex)) {
          steps.add(p.vertex);
          lastStep = p.vertex;
          show(`step ${p.step}`);
        }
        if (p.cached === "legacy") {
          if (lastStep) cached.add(lastStep);
        } else if (p.cached) cached.add(p.cached);
      }
    }
  };
  await Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = await child.status;
  file.close();
  if (isTty) Deno.stderr.writeSync(new TextEncoder().encode("\r\x1b[2K"));
  const seconds = (performance.now() - started) / 1000;
  if (!status.success) {
    throw new RunError(
      `Building ${name} failed after ${seconds.toFixed(0)} s (exit ${status.code}); last lines:\n${
        tail.join("\n")
      }\nfull log: ${logFile}`,
    );
  }
  const imageId = (await imageIdOf(tag)) ?? "";
  return {
    name,
    tag,
    contentHash: hash,
    imageId,
    seconds,
    steps: steps.size,
    cachedSteps: [...cached].filter((v) => steps.has(v)).length,
    logFile,
  };
}
