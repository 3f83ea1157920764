/**
 * A small interface around the Docker Engine API (dockerode over /var/run/docker.sock), so the
 * orchestration can be tested with a fake engine and run for real against any Docker host.
 */
import Docker from "dockerode";
import { cgroupSnapshot, cpusIn } from "./cgroup.ts";
import { RunError } from "../errors.ts";

/** What one framework container needs. */
export interface ContainerSpec {
  image: string;
  name: string;
  env: Record<string, string>;
  /** CpusetCpus: the CPUs the container may use. */
  cpuset: string;
  memoryBytes: number;
  mounts: { host: string; container: string; readOnly: boolean }[];
  labels: Record<string, string>;
  cmd?: string[];
}

/** A container's state, as far as the orchestration cares. */
export interface ContainerState {
  running: boolean;
  exitCode: number;
  oomKilled: boolean;
  status: string;
}

/** Raw docker stats frame (the fields read; the Engine API's /containers/{id}/stats). */
export interface RawStats {
  read: string;
  cpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage?: number; online_cpus?: number };
  memory_stats: { usage?: number; stats?: Record<string, number> };
}

/** The operations embbench performs on a Docker engine. */
export interface ContainerEngine {
  serverVersion(): Promise<string>;
  /** The image's id, or undefined when it does not exist. */
  imageId(tag: string): Promise<string | undefined>;
  /** Creates and starts a container; returns its id. */
  start(spec: ContainerSpec): Promise<string>;
  state(id: string): Promise<ContainerState>;
  /** The last `tail` lines of the container's output. */
  logs(id: string, tail: number): Promise<string>;
  /** One stats frame now (its precpu_stats may be empty): callers difference successive frames. */
  statsOnce(id: string): Promise<RawStats>;
  /** Runs a command inside the running container and returns its output (stdout and stderr). */
  exec(id: string, cmd: string[]): Promise<string>;
  /** Stops and removes the container; a missing container is not an error. */
  remove(id: string): Promise<void>;
  /** Ids of containers (running or not) carrying this label=value. */
  findByLabel(label: string, value: string): Promise<string[]>;
}

/** The real engine, over the Docker socket. */
export class DockerEngine implements ContainerEngine {
  readonly docker: Docker;
  constructor(socketPath = Deno.env.get("DOCKER_HOST")?.replace(/^unix:\/\//, "") ?? "/var/run/docker.sock") {
    this.docker = new Docker({ socketPath });
  }

  async serverVersion(): Promise<string> {
    try {
      return (await this.docker.version()).Version;
    } catch (e) {
      throw new RunError(
        `Cannot reach the Docker engine: ${
          (e as Error).message
        }; start it (dockerd --iptables=false --bridge=none) ` +
          `or run 'bash scripts/install.sh'`,
      );
    }
  }

  async imageId(tag: string): Promise<string | undefined> {
    try {
      return (await this.docker.getImage(tag).inspect()).Id;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw e;
    }
  }

  async start(spec: ContainerSpec): Promise<string> {
    const container = await this.docker.createContainer({
      Image: spec.image,
      name: spec.name,
      Cmd: spec.cmd,
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      Labels: spec.labels,
      HostConfig: {
        NetworkMode: "host",
        CpusetCpus: spec.cpuset,
        Memory: spec.memoryBytes,
        MemorySwap: spec.memoryBytes,
        Binds: spec.mounts.map((m) => `${m.host}:${m.container}${m.readOnly ? ":ro" : ""}`),
      },
    });
    await container.start();
    return container.id;
  }

  async state(id: string): Promise<ContainerState> {
    const s = (await this.docker.getContainer(id).inspect()).State;
    return { running: s.Running, exitCode: s.ExitCode, oomKilled: s.OOMKilled, status: s.Status };
  }

  async logs(id: string, tail: number): Promise<string> {
    try {
      const buf = await this.docker.getContainer(id).logs({
        stdout: true,
        stderr: true,
        tail,
        follow: false,
      });
      return demux(buf as unknown as Uint8Array);
    } catch (e) {
      return `(no logs: ${(e as Error).message})`;
    }
  }

  async statsOnce(id: string): Promise<RawStats> {
    // Local cgroup files first: the API only refreshes once a second.
    const local = cgroupSnapshot(id);
    if (local) return local;
    const frame = await this.docker.getContainer(id).stats(
      { stream: false, "one-shot": true } as { stream: false },
    ) as unknown as RawStats;
    return withHostCpus(frame);
  }

  async exec(id: string, cmd: string[]): Promise<string> {
    const exec = await this.docker.getContainer(id).exec({
      Cmd: cmd,
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({ hijack: true, stdin: false });
    const chunks: Uint8Array[] = [];
    await new Promise<void>((resolve, reject) => {
      stream.on("data", (c: Uint8Array) => chunks.push(c));
      stream.on("end", () => resolve());
      stream.on("error", reject);
    });
    const all = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    return demux(all);
  }

  async remove(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true });
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 404) throw e;
    }
  }

  async findByLabel(label: string, value: string): Promise<string[]> {
    const list = await this.docker.listContainers({ all: true, filters: { label: [`${label}=${value}`] } });
    return list.map((c) => c.Id);
  }
}

/**
 * The frame with online_cpus set to the host's CPU count. dockerd takes it from its own affinity,
 * which a run narrows (lib/engine/placement.ts), while system_cpu_usage always counts every CPU.
 */
export function withHostCpus(frame: RawStats): RawStats {
  let online: number | undefined;
  try {
    online = cpusIn(Deno.readTextFileSync("/proc/stat"));
  } catch {
    return frame;
  }
  return {
    ...frame,
    cpu_stats: { ...frame.cpu_stats, online_cpus: online },
    precpu_stats: { ...frame.precpu_stats, online_cpus: online },
  };
}

/** Docker's multiplexed log stream (8-byte frame headers) to text; plain text passes through. */
export function demux(buf: Uint8Array): string {
  const decoder = new TextDecoder();
  if (buf.length < 8 || buf[0]! > 2 || buf[1] !== 0 || buf[2] !== 0 || buf[3] !== 0) {
    return decoder.decode(buf);
  }
  let out = "";
  let i = 0;
  while (i + 8 <= buf.length) {
    const size = new DataView(buf.buffer, buf.byteOffset + i + 4, 4).getUint32(0);
    out += decoder.decode(buf.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  return out;
}
