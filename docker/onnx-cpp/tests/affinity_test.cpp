// The intra-op thread pinning: which CPUs, in ONNX Runtime's 1-based affinity syntax.
#include <doctest/doctest.h>

#include <map>

#include "engine.h"

namespace {

// CPU -> (package, core) for a made-up topology.
auto topology(std::map<int, std::pair<int, int>> m) {
  return [m](int cpu) { return m.at(cpu); };
}

}  // namespace

TEST_CASE("cpus_for_threads() puts one CPU per core first, then the hyperthread siblings") {
  // 4 cores x 2 threads, siblings n and n+4 (a common Linux numbering).
  std::map<int, std::pair<int, int>> ht;
  for (int c = 0; c < 8; ++c) ht[c] = {0, c % 4};
  CHECK(embbench::cpus_for_threads({0, 1, 2, 3, 4, 5, 6, 7}, topology(ht)) == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  // Siblings adjacent (0/1 share a core): the physical cores come first.
  std::map<int, std::pair<int, int>> adj;
  for (int c = 0; c < 8; ++c) adj[c] = {0, c / 2};
  CHECK(embbench::cpus_for_threads({0, 1, 2, 3, 4, 5, 6, 7}, topology(adj)) == std::vector<int>{0, 2, 4, 6, 1, 3, 5, 7});
  // A cpuset of part of the machine, one sibling missing.
  CHECK(embbench::cpus_for_threads({2, 3, 5}, topology(adj)) == std::vector<int>{2, 5, 3});
  // Two packages with the same core ids are different cores.
  std::map<int, std::pair<int, int>> two{{0, {0, 0}}, {1, {1, 0}}};
  CHECK(embbench::cpus_for_threads({0, 1}, topology(two)) == std::vector<int>{0, 1});
  // This process: every CPU of its affinity mask, each once.
  const auto mine = embbench::cpus_for_threads();
  CHECK_FALSE(mine.empty());
}

TEST_CASE("intra_op_affinities(): one CPU per extra thread, 1-based, the calling thread being the first") {
  CHECK(embbench::intra_op_affinities({4, 5, 6, 7}, 1) == "");
  CHECK(embbench::intra_op_affinities({4, 5, 6, 7}, 2) == "6");
  CHECK(embbench::intra_op_affinities({4, 5, 6, 7}, 4) == "6;7;8");
  // More threads than CPUs (should not happen: NUM_THREADS follows the cpuset): wrap around.
  CHECK(embbench::intra_op_affinities({0, 1}, 4) == "2;1;2");
  CHECK(embbench::intra_op_affinities({}, 4) == "");
}

TEST_CASE("inference_thread_cpu(): the first CPU with MAX_INFLIGHT = 1, none with several inference threads") {
  CHECK(embbench::inference_thread_cpu({4, 5}, 1) == 4);
  CHECK_FALSE(embbench::inference_thread_cpu({4, 5}, 2).has_value());
  CHECK_FALSE(embbench::inference_thread_cpu({}, 1).has_value());
}

TEST_CASE("PinThisThread pins this thread alone, then gives back its CPUs") {
  cpu_set_t before;
  REQUIRE(sched_getaffinity(0, sizeof(before), &before) == 0);
  const auto cpus = embbench::cpus_for_threads();
  const int target = cpus.back();
  {
    embbench::PinThisThread pin(target);
    CHECK(pin.pinned());
    cpu_set_t now;
    REQUIRE(sched_getaffinity(0, sizeof(now), &now) == 0);
    CHECK(CPU_COUNT(&now) == 1);
    CHECK(CPU_ISSET(target, &now));
    CHECK(sched_getcpu() == target);
  }
  cpu_set_t after;
  REQUIRE(sched_getaffinity(0, sizeof(after), &after) == 0);
  CHECK(CPU_EQUAL(&before, &after));
  embbench::PinThisThread none(std::nullopt);
  CHECK_FALSE(none.pinned());
}
