/**
 * Floating-point operations of one forward pass, from the model's config.json: the matrix
 * multiplies of a transformer encoder or decoder (2 operations per multiply-add), which are nearly
 * all of its work. Layer norms, softmax, activations, embeddings and pooling are left out (well
 * under 1 % at these sizes), so achieved GFLOP/s is a slight underestimate, never an overestimate.
 */

/** The shape facts the count needs (HF config.json field names). */
export interface TransformerShape {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  /** Grouped-query attention (Qwen3, Gemma3): fewer key/value heads; default num_attention_heads. */
  num_key_value_heads?: number;
  /** Default hidden_size / num_attention_heads. */
  head_dim?: number;
  /** Gated MLP (gate, up and down projections: Qwen3, Gemma3, Llama) instead of up and down (BERT). */
  gated_mlp?: boolean;
}

const GATED_TYPES = new Set([
  "qwen2",
  "qwen3",
  "gemma",
  "gemma2",
  "gemma3",
  "gemma3_text",
  "llama",
  "mistral",
]);

/** The shape from a config.json object; undefined (with the missing field) when it is not a transformer config. */
export function shapeFromConfig(config: Record<string, unknown>): TransformerShape | string {
  const c = (config.text_config ?? config) as Record<string, unknown>;
  const need = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"] as const;
  for (const k of need) if (typeof c[k] !== "number") return `config.json has no numeric ${k}`;
  return {
    hidden_size: c.hidden_size as number,
    intermediate_size: c.intermediate_size as number,
    num_hidden_layers: c.num_hidden_layers as number,
    num_attention_heads: c.num_attention_heads as number,
    num_key_value_heads: typeof c.num_key_value_heads === "number" ? c.num_key_value_heads : undefined,
    head_dim: typeof c.head_dim === "number" ? c.head_dim : undefined,
    gated_mlp: GATED_TYPES.has(String(c.model_type ?? "")),
  };
}

/** Floating-point operations of one sequence of `tokens` tokens through the model. */
export function flopsPerSequence(s: TransformerShape, tokens: number): number {
  const h = s.hidden_size;
  const d = s.head_dim ?? h / s.num_attention_heads;
  const q = s.num_attention_heads * d;
  const kv = (s.num_key_value_heads ?? s.num_attention_heads) * d;
  const L = tokens;
  // Projections: Q and the output (h × q each), K and V (h × kv each), per token.
  const projections = 2 * L * (2 * h * q + 2 * h * kv);
  // Scores Q·Kᵀ and their weighted sum of V: L × L × q multiply-adds each.
  const attention = 2 * 2 * L * L * q;
  const mlp = 2 * L * h * s.intermediate_size * (s.gated_mlp ? 3 : 2);
  return s.num_hidden_layers * (projections + attention + mlp);
}
