#include <doctest/doctest.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "process_info.h"

namespace {

// A /proc/<pid>/stat line: fields 3..52 after the comm, with utime 14, stime 15 and starttime 22
// set to recognisable values.
std::string stat_line(const std::string& pid_and_comm, const char* utime = "150", const char* stime = "50",
                      const char* starttime = "123456") {
  return pid_and_comm + " S 1 7 7 0 -1 4194560 2210 0 0 0 " + utime + " " + stime + " 0 0 20 0 4 0 " + starttime +
         " 1274023936 13210 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
}

long gettid_() { return static_cast<long>(syscall(SYS_gettid)); }

}  // namespace

TEST_CASE("parse_proc_stat() reads pid, comm, state, utime, stime and starttime") {
  const auto st = embbench::parse_proc_stat(stat_line("4242 (embbench-onnx-c)"));
  REQUIRE(st);
  CHECK(st->pid == 4242);
  CHECK(st->comm == "embbench-onnx-c");
  CHECK(st->state == 'S');
  CHECK(st->utime == 150);
  CHECK(st->stime == 50);
  CHECK(st->starttime == 123456);
}

TEST_CASE("parse_proc_stat() keeps spaces and ')' inside comm") {
  auto st = embbench::parse_proc_stat(stat_line("7 (a b  c)"));
  REQUIRE(st);
  CHECK(st->comm == "a b  c");
  CHECK(st->starttime == 123456);
  st = embbench::parse_proc_stat(stat_line("8 (x) S 1 2 (y))", "3", "4", "99"));
  REQUIRE(st);
  CHECK(st->comm == "x) S 1 2 (y)");
  CHECK(st->state == 'S');
  CHECK(st->utime == 3);
  CHECK(st->stime == 4);
  CHECK(st->starttime == 99);
  st = embbench::parse_proc_stat(stat_line("9 ())"));
  REQUIRE(st);
  CHECK(st->comm == ")");
  st = embbench::parse_proc_stat(stat_line("10 ()"));
  REQUIRE(st);
  CHECK(st->comm.empty());
}

TEST_CASE("parse_proc_stat() refuses what is not a stat line") {
  CHECK_FALSE(embbench::parse_proc_stat(""));
  CHECK_FALSE(embbench::parse_proc_stat("12 (name"));
  CHECK_FALSE(embbench::parse_proc_stat("abc (name) S 1 2 3"));
  CHECK_FALSE(embbench::parse_proc_stat("12 (name) S 1 2 3"));                // too few fields
  CHECK_FALSE(embbench::parse_proc_stat(stat_line("12 (name)", "1x", "0")));  // utime not a number
  CHECK_FALSE(embbench::parse_proc_stat(stat_line("12 (name)", "-5", "0")));  // nor negative
}

TEST_CASE("os_threads() reads every thread of a task folder, skipping what is not a thread") {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "embbench_task_test";
  std::filesystem::remove_all(dir);
  auto write = [&](const std::string& tid, const std::string& text) {
    std::filesystem::create_directories(dir / tid);
    std::ofstream(dir / tid / "stat") << text;
  };
  const double tck = embbench::clock_ticks_per_second();
  write("31", stat_line("31 (http worker) 1)", "300", "100"));
  write("5", stat_line("5 (main)", "0", "0"));
  write("40", "garbage");                          // unparseable: left out
  std::filesystem::create_directories(dir / "41");  // no stat file (the thread ended): left out
  write("notatid", stat_line("77 (x)"));
  const auto threads = embbench::os_threads(dir.string());
  REQUIRE(threads.size() == 2);
  CHECK(threads[0].tid == 5);
  CHECK(threads[0].name == "main");
  CHECK(threads[0].cpu_seconds == 0.0);
  CHECK(threads[1].tid == 31);
  CHECK(threads[1].name == "http worker) 1");
  CHECK(threads[1].cpu_seconds == doctest::Approx(400.0 / tck));
  const auto j = embbench::os_threads_json(threads);
  CHECK(j.dump() == nlohmann::json::parse(R"([{"tid":5,"name":"main","cpu_seconds":0.0},
      {"tid":31,"name":"http worker) 1","cpu_seconds":)" + std::to_string(400.0 / tck) + "}]").dump());
  std::filesystem::remove_all(dir);
  CHECK(embbench::os_threads((dir / "missing").string()).empty());
}

TEST_CASE("os_threads() lists this process's threads, names and CPU time") {
  std::atomic<bool> stop{false};
  std::atomic<long> busy_tid{0};
  std::thread busy([&] {
    pthread_setname_np(pthread_self(), "busy (x) y");
    busy_tid = gettid_();
    volatile unsigned long spin = 0;
    while (!stop.load()) spin = spin + 1;
  });
  while (busy_tid.load() == 0) std::this_thread::yield();
  const auto started = std::chrono::steady_clock::now();
  double busy_cpu = 0;
  // Wait (at most 10 s) until the spinning thread has used at least 3 clock ticks of CPU time.
  while (std::chrono::steady_clock::now() - started < std::chrono::seconds(10)) {
    for (const auto& t : embbench::os_threads()) {
      if (t.tid == busy_tid.load()) busy_cpu = t.cpu_seconds;
    }
    if (busy_cpu >= 3 / embbench::clock_ticks_per_second()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto threads = embbench::os_threads();
  stop = true;
  busy.join();
  const auto main_it = std::find_if(threads.begin(), threads.end(), [](const auto& t) { return t.tid == getpid(); });
  CHECK(main_it != threads.end());
  const auto busy_it =
      std::find_if(threads.begin(), threads.end(), [&](const auto& t) { return t.tid == busy_tid.load(); });
  REQUIRE(busy_it != threads.end());
  CHECK(busy_it->name == "busy (x) y");
  CHECK(busy_it->cpu_seconds >= 3 / embbench::clock_ticks_per_second());
  CHECK(std::is_sorted(threads.begin(), threads.end(), [](const auto& a, const auto& b) { return a.tid < b.tid; }));
}

TEST_CASE("process_start_monotonic() is this process's start on the steady clock") {
  const auto start = embbench::process_start_monotonic();
  REQUIRE(start);
  const double now = embbench::monotonic_now();
  // /proc's start time has clock-tick resolution (10 ms at CLK_TCK 100).
  CHECK(*start <= now + 2 / embbench::clock_ticks_per_second());
  CHECK(now - *start < 600);  // the test binary started moments ago
  // The same conversion of a start time of "now" in ticks lands on now.
  timespec boot{};
  clock_gettime(CLOCK_BOOTTIME, &boot);
  const double boot_s = static_cast<double>(boot.tv_sec) + static_cast<double>(boot.tv_nsec) * 1e-9;
  const auto ticks = static_cast<std::uint64_t>(boot_s * embbench::clock_ticks_per_second());
  CHECK(std::abs(embbench::boot_ticks_to_monotonic(ticks) - embbench::monotonic_now()) <
        2 / embbench::clock_ticks_per_second());
}

TEST_CASE("monotonic_seconds() is CLOCK_MONOTONIC") {
  timespec a{}, b{};
  clock_gettime(CLOCK_MONOTONIC, &a);
  const double steady = embbench::monotonic_now();
  clock_gettime(CLOCK_MONOTONIC, &b);
  CHECK(static_cast<double>(a.tv_sec) + a.tv_nsec * 1e-9 <= steady);
  CHECK(steady <= static_cast<double>(b.tv_sec) + b.tv_nsec * 1e-9);
}

TEST_CASE("Startup: null until a stage is reached, then ordered stamps up to now") {
  using Stage = embbench::Startup::Stage;
  embbench::Startup s(embbench::process_start_monotonic());
  auto j = s.to_json();
  CHECK(j["clock"] == "monotonic");
  CHECK(j["process_start"].is_number());
  CHECK(j["runtime_ready"].is_null());
  CHECK(j["model_loaded"].is_null());
  CHECK(j["warmed"].is_null());
  CHECK(j["now"].get<double>() >= j["process_start"].get<double>());
  CHECK(j.size() == 6);

  s.mark(Stage::runtime_ready);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  s.mark(Stage::model_loaded);
  j = s.to_json();
  CHECK(j["warmed"].is_null());
  CHECK(j["model_loaded"].get<double>() - j["runtime_ready"].get<double>() >= 0.019);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  s.mark(Stage::warmed);
  const double first_runtime_ready = j["runtime_ready"].get<double>();
  s.mark(Stage::runtime_ready);  // a second mark keeps the first stamp
  j = s.to_json();
  CHECK(j["runtime_ready"].get<double>() == first_runtime_ready);
  const double order[] = {j["process_start"].get<double>() - 2 / embbench::clock_ticks_per_second(),
                          j["runtime_ready"].get<double>(), j["model_loaded"].get<double>(),
                          j["warmed"].get<double>(), j["now"].get<double>()};
  CHECK(std::is_sorted(std::begin(order), std::end(order)));
  CHECK(j["now"].get<double>() - embbench::monotonic_now() <= 0);

  embbench::Startup unknown(std::nullopt);
  CHECK(unknown.to_json()["process_start"].is_null());
}
