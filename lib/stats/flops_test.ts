import { equal, ok } from "node:assert/strict";
import { flopsPerSequence, shapeFromConfig, type TransformerShape } from "./flops.ts";

Deno.test("flopsPerSequence(): BERT-base at 128 tokens, computed by hand", () => {
  // Per layer, 128 tokens, hidden 768, intermediate 3072, 12 heads of 64:
  //   Q, K, V and output projections: 4 × 2 × 128 × 768 × 768        = 603,979,776
  //   scores and weighted sum:        2 × 2 × 128 × 128 × 768         =  50,331,648
  //   feed-forward up and down:       2 × 2 × 128 × 768 × 3072        = 1,207,959,552
  //   layer total                                                      = 1,862,270,976
  // 12 layers: 22,347,251,712 ≈ 22.3 GFLOP.
  const bert: TransformerShape = {
    hidden_size: 768,
    intermediate_size: 3072,
    num_hidden_layers: 12,
    num_attention_heads: 12,
  };
  equal(flopsPerSequence(bert, 128), 22_347_251_712);
});

Deno.test("flopsPerSequence(): MiniLM-L6 at 128 tokens is the 2.87 GFLOP quoted in the issues", () => {
  const minilm = shapeFromConfig({
    model_type: "bert",
    hidden_size: 384,
    intermediate_size: 1536,
    num_hidden_layers: 6,
    num_attention_heads: 12,
  }) as TransformerShape;
  equal(minilm.gated_mlp, false);
  equal(flopsPerSequence(minilm, 128), 2_868_903_936);
});

Deno.test("shapeFromConfig(): grouped-query attention and gated MLP (Qwen3-Embedding-0.6B's shape)", () => {
  const s = shapeFromConfig({
    model_type: "qwen3",
    hidden_size: 1024,
    intermediate_size: 3072,
    num_hidden_layers: 28,
    num_attention_heads: 16,
    num_key_value_heads: 8,
    head_dim: 128,
  }) as TransformerShape;
  equal(s.gated_mlp, true);
  // One token, one layer: q = 2048, kv = 1024: 2 × (2 × 1024 × 2048 + 2 × 1024 × 1024) + 4 × 2048 + 2 × 1024 × 3072 × 3
  equal(
    flopsPerSequence({ ...s, num_hidden_layers: 1 }, 1),
    2 * (2 * 1024 * 2048 + 2 * 1024 * 1024) + 4 * 2048 + 2 * 1024 * 3072 * 3,
  );
  ok(String(shapeFromConfig({ hidden_size: 3 })).includes("intermediate_size"));
});
