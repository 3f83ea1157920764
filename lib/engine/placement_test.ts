import { equal } from "node:assert/strict";
import { restoreTarget } from "./placement.ts";

Deno.test("restoreTarget() gives back the affinity found, or every CPU when a killed run left its own pin", () => {
  equal(restoreTarget("0-3", [0, 1, 2, 3], [0, 1]), "0-3", "the engine's default comes back as it was");
  equal(restoreTarget("3", [0, 1, 2, 3], [0, 1]), "3", "somebody's own pin is kept");
  equal(
    restoreTarget("2-3", [0, 1, 2, 3], [0, 1]),
    "0-3",
    "a killed run's pin (the non-server CPUs) is undone",
  );
});
