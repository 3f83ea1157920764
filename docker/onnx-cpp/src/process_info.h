// What /info reports about the process itself: its startup stamps on CLOCK_MONOTONIC and its OS
// threads, both read from /proc (docker/CONTRACT.md, GET /info).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace embbench {

/// The fields of a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat line this server uses.
struct ProcStat {
  long pid = 0;                  // field 1 (the thread id for a task's stat)
  std::string comm;              // field 2, without its parentheses
  char state = '?';              // field 3
  std::uint64_t utime = 0;       // field 14, clock ticks
  std::uint64_t stime = 0;       // field 15, clock ticks
  std::uint64_t starttime = 0;   // field 22, clock ticks since boot
};

/// Parses a stat line. `comm` may hold spaces and ')' (a thread names itself), so it runs from the
/// first '(' to the last ')'. nullopt when the text is not a stat line.
std::optional<ProcStat> parse_proc_stat(std::string_view text);

/// sysconf(_SC_CLK_TCK).
double clock_ticks_per_second();

/// Seconds on CLOCK_MONOTONIC: std::chrono::steady_clock is CLOCK_MONOTONIC on Linux.
double monotonic_seconds(std::chrono::steady_clock::time_point t);
inline double monotonic_now() { return monotonic_seconds(std::chrono::steady_clock::now()); }

/// A boot-relative start time (`starttime` ticks) on CLOCK_MONOTONIC:
/// starttime / CLK_TCK - (CLOCK_BOOTTIME - CLOCK_MONOTONIC).
double boot_ticks_to_monotonic(std::uint64_t starttime_ticks);

/// When this process started, on CLOCK_MONOTONIC (10 ms resolution); nullopt if /proc is unreadable.
std::optional<double> process_start_monotonic();

struct OsThread {
  long tid = 0;
  std::string name;
  double cpu_seconds = 0;  // utime + stime
};

/// Every thread of this process now, by tid, from `task_dir`/<tid>/stat. A thread that ends while
/// the folder is read is left out.
std::vector<OsThread> os_threads(const std::string& task_dir = "/proc/self/task");

/// [{"tid", "name", "cpu_seconds"}, ...]
nlohmann::json os_threads_json(const std::vector<OsThread>& threads);

/// The startup stamps of /info: set once each by the loading code, read by any request thread.
class Startup {
 public:
  enum class Stage { runtime_ready, model_loaded, warmed };

  explicit Startup(std::optional<double> process_start) : process_start_(process_start) {}

  /// Stamps `stage` with the clock now; a stage already stamped keeps its first stamp.
  void mark(Stage stage) { mark(stage, std::chrono::steady_clock::now()); }
  void mark(Stage stage, std::chrono::steady_clock::time_point t);

  /// {"clock": "monotonic", "process_start", "runtime_ready", "model_loaded", "warmed", "now"},
  /// seconds, null for a stage not reached.
  nlohmann::json to_json() const;

 private:
  static constexpr std::int64_t kUnset = -1;
  std::optional<double> process_start_;
  std::atomic<std::int64_t> stamps_ns_[3] = {kUnset, kUnset, kUnset};
};

}  // namespace embbench
