/**
 * The server cpuset's fp32 matrix-multiply peak: what the CPU can do, against which each cell's
 * achieved GFLOP/s is a percentage. Measured once per run in each Python framework image present,
 * on the server cpuset with NUM_THREADS threads, as the best over the libraries those images hold
 * (numpy's BLAS, ONNX Runtime's MLAS, torch, OpenVINO): one library's slow path (MKL's on AMD) must
 * not lower the bar for everyone. The measuring code is docker/python/embbench_server/gemm_peak.py.
 */
import type { ContainerEngine } from "./docker.ts";
import { log } from "../log.ts";

/** One library's figure. */
export interface GemmResult {
  image: string;
  library: string;
  version?: string;
  size: number;
  gflops: number;
  error?: string;
}

/** The run's calibration (run.json `gemmPeak`). */
export interface GemmPeak {
  /** The best figure, GFLOP/s, and who reached it. */
  gflops: number;
  library: string;
  cpus: string;
  threads: number;
  results: GemmResult[];
  /** Images that could not be measured, with the reason. */
  problems: string[];
}

/** The images that carry the calibration module. */
export const GEMM_FRAMEWORKS = ["onnxruntime", "torch", "openvino"] as const;

/** The calibration's JSON line within a container's output (its logs go to stderr, mixed in). */
export function parseGemmOutput(text: string, image: string): GemmResult[] {
  for (const line of text.split("\n").reverse()) {
    const t = line.trim();
    if (!t.startsWith("{")) continue;
    try {
      const doc = JSON.parse(t) as { results?: Omit<GemmResult, "image">[] };
      if (Array.isArray(doc.results)) return doc.results.map((r) => ({ image, ...r }));
    } catch {
      // not the result line
    }
  }
  throw new Error(`no calibration result in the output of ${image}: ${text.trim().slice(-300)}`);
}

/** The best figure over every library that gave one. */
export function bestGemm(results: GemmResult[]): GemmResult | undefined {
  return results.filter((r) => !r.error && r.gflops > 0).sort((a, b) => b.gflops - a.gflops)[0];
}

/** Runs the calibration in each image (one after the other, on the server cpuset). */
export async function calibrateGemm(
  engine: ContainerEngine,
  images: { framework: string; image: string }[],
  o: { cpus: string; threads: number; seconds: number; runId: string; labels: Record<string, string> },
): Promise<GemmPeak | undefined> {
  const results: GemmResult[] = [];
  const problems: string[] = [];
  for (const { framework, image } of images) {
    let id: string | undefined;
    try {
      id = await engine.start({
        image,
        name: `embbench-gemm-${framework}-${o.runId}`.replace(/[^a-zA-Z0-9_.-]/g, "-"),
        env: { NUM_THREADS: String(o.threads) },
        cpuset: o.cpus,
        memoryBytes: 4 * 2 ** 30,
        mounts: [],
        labels: o.labels,
        cmd: [
          "python",
          "-m",
          "embbench_server.gemm_peak",
          "--threads",
          String(o.threads),
          "--seconds",
          String(o.seconds),
        ],
      });
      const limit = performance.now() + (60 + 20 * o.seconds) * 1000;
      let st = await engine.state(id);
      while (st.running && performance.now() < limit) {
        await new Promise((r) => setTimeout(r, 250));
        st = await engine.state(id);
      }
      const out = await engine.logs(id, 400);
      if (st.running) throw new Error(`still running after ${Math.round(60 + 20 * o.seconds)} s`);
      if (st.exitCode !== 0) throw new Error(`exited with code ${st.exitCode}: ${out.trim().slice(-300)}`);
      results.push(...parseGemmOutput(out, image));
    } catch (e) {
      problems.push(`${framework} (${image}): ${(e as Error).message}`);
    } finally {
      if (id) await engine.remove(id);
    }
  }
  for (const p of problems) log.warn(`GEMM calibration: ${p}`);
  const best = bestGemm(results);
  if (!best) return undefined;
  return {
    gflops: best.gflops,
    library: `${best.library} (${best.image})`,
    cpus: o.cpus,
    threads: o.threads,
    results,
    problems,
  };
}
