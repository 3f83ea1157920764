/** The frameworks embbench benchmarks: adding one means one entry here plus its docker/ folder. */

/** One framework image: its id is also its folder under docker/ and its image name. */
export interface Framework {
  id: string;
  /** What the report calls it. */
  label: string;
  /** The language the request path runs in. */
  language: "python" | "rust" | "c++";
}

/** Every framework, in the order runs and reports use. */
export const FRAMEWORKS: readonly Framework[] = [
  { id: "torch", label: "PyTorch", language: "python" },
  { id: "onnxruntime", label: "ONNX Runtime (Python)", language: "python" },
  { id: "onnx-cpp", label: "ONNX Runtime (C++)", language: "c++" },
  { id: "ort-rust", label: "ONNX Runtime (Rust, ort)", language: "rust" },
  { id: "candle", label: "Candle (Rust)", language: "rust" },
  { id: "openvino", label: "OpenVINO", language: "python" },
];

/** Images built besides the frameworks: the conversion image. */
export const TOOL_IMAGES = ["convert"] as const;

export const FRAMEWORK_IDS = FRAMEWORKS.map((f) => f.id) as [string, ...string[]];

/** Looks a framework up by id; undefined when unknown. */
export function findFramework(id: string): Framework | undefined {
  return FRAMEWORKS.find((f) => f.id === id);
}
