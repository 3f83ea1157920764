#include <doctest/doctest.h>

#include "bench.h"

TEST_CASE("quantile() interpolates between closest ranks like numpy") {
  CHECK(embbench::quantile({5, 1, 3, 2, 4}, 0.5) == doctest::Approx(3));
  CHECK(embbench::quantile({1, 2, 3, 4}, 0.5) == doctest::Approx(2.5));
  CHECK(embbench::quantile({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 0.1) == doctest::Approx(2));
  CHECK(embbench::quantile({10, 20}, 0.9) == doctest::Approx(19));
  CHECK(embbench::quantile({7}, 0.9) == doctest::Approx(7));
}

TEST_CASE("bench_options_from_args() reads --payload, --runs, --warmup and names bad arguments") {
  const auto o = embbench::bench_options_from_args({"--bench-run", "--payload", "/p.json", "--runs", "50"});
  CHECK(o.payload == "/p.json");
  CHECK(o.runs == 50);
  CHECK(o.warmup_runs == 3);
  CHECK_THROWS_WITH_AS(embbench::bench_options_from_args({"--bench-run", "--runs", "5"}),
                       doctest::Contains("--payload"), embbench::ConfigError);
  CHECK_THROWS_WITH_AS(embbench::bench_options_from_args({"--bench-run", "--payload", "/p", "--runs", "0"}),
                       doctest::Contains("--runs \"0\""), embbench::ConfigError);
  CHECK_THROWS_WITH_AS(embbench::bench_options_from_args({"--bench-run", "--payload", "/p", "--runs", "5x"}),
                       doctest::Contains("--runs \"5x\""), embbench::ConfigError);
  CHECK_THROWS_WITH_AS(embbench::bench_options_from_args({"--bench-run", "--payload", "/p", "--nope", "1"}),
                       doctest::Contains("unknown argument --nope"), embbench::ConfigError);
  CHECK_THROWS_WITH_AS(embbench::bench_options_from_args({"--bench-run", "--payload"}),
                       doctest::Contains("--payload needs a value"), embbench::ConfigError);
}
