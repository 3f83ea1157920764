import { deepStrictEqual, equal, throws } from "node:assert/strict";
import {
  autoSplit,
  type CpuTopology,
  formatCpuset,
  parseCpuset,
  resolveCpus,
  sharedCores,
  threadsFor,
} from "./cpuset.ts";

/** A c7i.4xlarge: 8 physical cores, CPU n and n+8 are hyperthread siblings. */
const C7I: CpuTopology = {
  online: Array.from({ length: 16 }, (_, i) => i),
  coreOf: new Map(Array.from({ length: 16 }, (_, i) => [i, `${i % 8},${(i % 8) + 8}`])),
};

Deno.test("parseCpuset() and formatCpuset() round-trip ranges and lists", () => {
  deepStrictEqual(parseCpuset("0-3,8,10-11"), [0, 1, 2, 3, 8, 10, 11]);
  deepStrictEqual(parseCpuset(" 3 , 1,1 "), [1, 3]);
  equal(formatCpuset([0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
  equal(formatCpuset([5]), "5");
  throws(() => parseCpuset("3-1"), /descending range/);
  throws(() => parseCpuset("a"), /not a CPU number or range/);
  throws(() => parseCpuset(""), /is empty/);
});

Deno.test("autoSplit() gives the server three quarters of the physical cores, siblings together", () => {
  const { server, loadgen } = autoSplit(C7I);
  equal(formatCpuset(server), "0-5,8-13");
  equal(formatCpuset(loadgen), "6-7,14-15");
  deepStrictEqual(sharedCores(server, loadgen, C7I), []);
});

Deno.test("autoSplit() on two single-thread cores puts one on each side", () => {
  const topo: CpuTopology = { online: [0, 1], coreOf: new Map([[0, "0"], [1, "1"]]) };
  deepStrictEqual(autoSplit(topo), { server: [0], loadgen: [1] });
});

Deno.test("sharedCores() names the physical cores two sets share", () => {
  deepStrictEqual(sharedCores([0, 1], [8], C7I), ["0,8"]);
  deepStrictEqual(sharedCores([0, 1], [2], C7I), []);
});

Deno.test("resolveCpus() splits auto, keeps explicit sets and refuses shared cores with strict", () => {
  deepStrictEqual(resolveCpus({ server: "auto", loadgen: "auto" }, C7I, true), {
    server: "0-5,8-13",
    loadgen: "6-7,14-15",
  });
  deepStrictEqual(resolveCpus({ server: "0-3", loadgen: "4" }, C7I, true), { server: "0-3", loadgen: "4" });
  throws(
    () => resolveCpus({ server: "0-3", loadgen: "8" }, C7I, true),
    /server CPUs 0-3 and loadgen CPUs 8 share physical core\(s\) \{0,8\}: refused by --strict/,
  );
  deepStrictEqual(resolveCpus({ server: "0-3", loadgen: "8" }, C7I, false), { server: "0-3", loadgen: "8" });
});

Deno.test("threadsFor() counts physical cores or logical CPUs of a cpuset", () => {
  // 4 logical CPUs on 2 cores: 0 and 2 share a core, 1 and 3 the other.
  const topo = { online: [0, 1, 2, 3], coreOf: new Map([[0, "a"], [2, "a"], [1, "b"], [3, "b"]]) };
  equal(threadsFor([0, 1, 2, 3], "physical", topo), 2);
  equal(threadsFor([0, 1, 2, 3], "logical", topo), 4);
  equal(threadsFor([0, 2], "physical", topo), 1);
});
