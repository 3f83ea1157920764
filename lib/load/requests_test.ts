import { deepStrictEqual, equal } from "node:assert/strict";
import { payloadFile, promptPayloadProblems } from "./requests.ts";

Deno.test("payloadFile() names convert's bodies of a cell, with its prompt when it measures one", () => {
  const cell = { model: "tiny-qwen3", sequenceLength: 128, batchSize: 8 };
  equal(payloadFile("/m", cell), "/m/tiny-qwen3/payloads/seq128_b8.jsonl");
  equal(payloadFile("/m", { ...cell, promptName: "query" }), "/m/tiny-qwen3/payloads/seq128_b8_query.jsonl");
});

/** A converted model folder with just embbench_model.json's prompts and payloads/index.json. */
function writeModel(dir: string, model: string, prompts: Record<string, string>, payloadPrompts: string[]) {
  Deno.mkdirSync(`${dir}/${model}/payloads`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/${model}/embbench_model.json`, JSON.stringify({ name: model, prompts }));
  const entry = (prompt: string | null) => ({
    file: `seq32_b1${prompt ? `_${prompt}` : ""}.json`,
    lines: `seq32_b1${prompt ? `_${prompt}` : ""}.jsonl`,
    seq_len: 32,
    batch_size: 1,
    prompt_name: prompt,
  });
  Deno.writeTextFileSync(
    `${dir}/${model}/payloads/index.json`,
    JSON.stringify({ bodies: 4, payloads: [entry(null), ...payloadPrompts.map(entry)] }),
  );
}

Deno.test("promptPayloadProblems() names each model that lacks the prompt's payloads, and why", async () => {
  const dir = await Deno.makeTempDir();
  try {
    writeModel(dir, "with", { query: "q: ", document: "" }, ["query", "document"]);
    writeModel(dir, "stale", { query: "q: " }, []);
    writeModel(dir, "none", {}, []);
    Deno.mkdirSync(`${dir}/unconverted`);
    deepStrictEqual(await promptPayloadProblems(dir, ["with", "unconverted"], "query"), []);
    deepStrictEqual(await promptPayloadProblems(dir, ["with", "stale", "none"], "query"), [
      `input.prompt_name is "query", but ${dir}/stale/payloads/index.json lists no payloads with that prompt: ` +
      `run 'embbench convert stale' again to write them`,
      `input.prompt_name is "query", which model "none" does not have (${dir}/none/embbench_model.json prompts: none)`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
