import { deepStrictEqual, equal, match } from "node:assert/strict";
import { contentHash, copiedFolders, parseProgress } from "./build.ts";

Deno.test("parseProgress() reads BuildKit and legacy builder lines", () => {
  deepStrictEqual(parseProgress("#7 [builder 3/9] RUN cargo build --release"), {
    vertex: "7",
    step: "builder 3/9 RUN cargo build --release",
  });
  deepStrictEqual(parseProgress("#5 [2/7] COPY a b"), { vertex: "5", step: "2/7 COPY a b" });
  deepStrictEqual(parseProgress("#7 CACHED"), { cached: "7" });
  deepStrictEqual(parseProgress("Step 2/7 : RUN apt-get update"), {
    vertex: "step2/7",
    step: "2/7 RUN apt-get update",
  });
  deepStrictEqual(parseProgress(" ---> Using cache"), { cached: "legacy" });
  deepStrictEqual(parseProgress("#7 0.312 Compiling serde v1.0"), {});
});

Deno.test("copiedFolders() lists the docker/ folders a Dockerfile copies, not other stages", () => {
  const dockerfile = [
    "FROM x AS builder",
    "COPY rust/Cargo.toml rust/Cargo.lock ./",
    "COPY --chown=1:1 python/embbench_server /opt/x",
    "COPY --from=builder /src/target/release/bin /usr/local/bin/bin",
    "ADD ./convert/requirements.txt /tmp/",
  ].join("\n");
  deepStrictEqual(copiedFolders(dockerfile), ["convert", "python", "rust"]);
});

Deno.test("contentHash() depends on the build arguments and is stable", async () => {
  const a = await contentHash("testserver", { BASE_IMAGE: "embbench/base:trixie" });
  match(a, /^[0-9a-f]{12}$/);
  equal(await contentHash("testserver", { BASE_IMAGE: "embbench/base:trixie" }), a);
  const b = await contentHash("testserver", { BASE_IMAGE: "debian:trixie" });
  equal(a === b, false);
});
