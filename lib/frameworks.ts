/** The frameworks embbench benchmarks: adding one means one entry here plus its docker/ folder. */

/** One framework image: its id is also its folder under docker/ and its image name. */
export interface Framework {
  id: string;
  /** What the report calls it. */
  label: string;
  /** The language the request path runs in. */
  language: "python" | "rust" | "c++";
  /** Its colour in every chart of every report (Okabe–Ito, safe for colour-blind readers). */
  colour: string;
  /** The inference runtime: the three ONNX Runtime frontends share one graph and library (docker/CONTRACT.md). */
  runtime: "torch" | "onnxruntime" | "candle" | "openvino";
}

/** Every framework, in the order runs and reports use. */
export const FRAMEWORKS: readonly Framework[] = [
  { id: "torch", label: "PyTorch", language: "python", colour: "#D55E00", runtime: "torch" },
  {
    id: "onnxruntime",
    label: "ONNX Runtime (Python)",
    language: "python",
    colour: "#0072B2",
    runtime: "onnxruntime",
  },
  { id: "onnx-cpp", label: "ONNX Runtime (C++)", language: "c++", colour: "#56B4E9", runtime: "onnxruntime" },
  {
    id: "ort-rust",
    label: "ONNX Runtime (Rust, ort)",
    language: "rust",
    colour: "#009E73",
    runtime: "onnxruntime",
  },
  { id: "candle", label: "Candle (Rust)", language: "rust", colour: "#E69F00", runtime: "candle" },
  { id: "openvino", label: "OpenVINO", language: "python", colour: "#CC79A7", runtime: "openvino" },
];

/** Images built besides the frameworks: the conversion image. */
export const TOOL_IMAGES = ["convert"] as const;

export const FRAMEWORK_IDS = FRAMEWORKS.map((f) => f.id) as [string, ...string[]];

/** The image `embbench build` tags last for a framework (or tool image): what runs use by default. */
export function latestImage(id: string): string {
  return `embbench/${id}:latest`;
}

/** Looks a framework up by id; undefined when unknown. */
export function findFramework(id: string): Framework | undefined {
  return FRAMEWORKS.find((f) => f.id === id);
}

/** How a server admits requests to inference (docker/CONTRACT.md, "Serving modes and the batcher"). */
export const SERVING_MODES = ["sequential", "batched"] as const;
export type ServingMode = (typeof SERVING_MODES)[number];

/**
 * A framework served in a mode: what a run measures and a report ranks. Sequential keeps the bare
 * framework id (so a run that measures one mode reads as before); other modes add "+<mode>".
 */
export function serverId(framework: string, serving: ServingMode = "sequential"): string {
  return serving === "sequential" ? framework : `${framework}+${serving}`;
}

/** The framework and mode of a server id. */
export function parseServerId(id: string): { framework: string; serving: ServingMode } {
  const [framework, mode] = id.split("+");
  const serving = (SERVING_MODES as readonly string[]).includes(mode ?? "")
    ? mode as ServingMode
    : "sequential";
  return { framework: framework!, serving };
}
