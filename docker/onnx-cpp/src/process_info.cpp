#include "process_info.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace embbench {

namespace {

template <class T>
bool parse_number(std::string_view s, T& out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return text;
}

double clock_seconds(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  const auto open = text.find('(');
  const auto close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;
  ProcStat st;
  std::string_view pid = text.substr(0, open);
  while (!pid.empty() && pid.back() == ' ') pid.remove_suffix(1);
  if (!parse_number(pid, st.pid)) return std::nullopt;
  st.comm = std::string(text.substr(open + 1, close - open - 1));

  // Fields 3 onwards, separated by single spaces; field N is rest[N - 3].
  std::string_view rest = text.substr(close + 1);
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == ' ')) rest.remove_suffix(1);
  std::vector<std::string_view> fields;
  while (!rest.empty()) {
    if (rest.front() != ' ') return std::nullopt;
    rest.remove_prefix(1);
    const auto end = rest.find(' ');
    fields.push_back(rest.substr(0, end));
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  }
  if (fields.size() < 20 || fields[0].size() != 1) return std::nullopt;
  st.state = fields[0][0];
  if (!parse_number(fields[14 - 3], st.utime) || !parse_number(fields[15 - 3], st.stime) ||
      !parse_number(fields[22 - 3], st.starttime)) {
    return std::nullopt;
  }
  return st;
}

double clock_ticks_per_second() {
  const long t = sysconf(_SC_CLK_TCK);
  return t > 0 ? static_cast<double>(t) : 100.0;
}

double monotonic_seconds(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

double boot_ticks_to_monotonic(std::uint64_t starttime_ticks) {
  // The offset between the clocks (the time spent suspended) read with the monotonic clock on both
  // sides of the boot clock.
  const double m0 = clock_seconds(CLOCK_MONOTONIC);
  const double boot = clock_seconds(CLOCK_BOOTTIME);
  const double m1 = clock_seconds(CLOCK_MONOTONIC);
  const double offset = boot - (m0 + m1) / 2;
  return static_cast<double>(starttime_ticks) / clock_ticks_per_second() - offset;
}

std::optional<double> process_start_monotonic() {
  const auto text = read_file("/proc/self/stat");
  if (!text) return std::nullopt;
  const auto st = parse_proc_stat(*text);
  if (!st) return std::nullopt;
  return boot_ticks_to_monotonic(st->starttime);
}

std::vector<OsThread> os_threads(const std::string& task_dir) {
  std::vector<OsThread> out;
  const double tck = clock_ticks_per_second();
  std::error_code ec;
  for (std::filesystem::directory_iterator it(task_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    long tid = 0;
    if (!parse_number(std::string_view(name), tid)) continue;
    const auto text = read_file(it->path().string() + "/stat");
    if (!text) continue;  // the thread ended meanwhile
    const auto st = parse_proc_stat(*text);
    if (!st) continue;
    out.push_back({st->pid, st->comm, static_cast<double>(st->utime + st->stime) / tck});
  }
  std::sort(out.begin(), out.end(), [](const OsThread& a, const OsThread& b) { return a.tid < b.tid; });
  return out;
}

nlohmann::json os_threads_json(const std::vector<OsThread>& threads) {
  auto out = nlohmann::json::array();
  for (const auto& t : threads) out.push_back({{"tid", t.tid}, {"name", t.name}, {"cpu_seconds", t.cpu_seconds}});
  return out;
}

void Startup::mark(Stage stage, std::chrono::steady_clock::time_point t) {
  const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  std::int64_t unset = kUnset;
  stamps_ns_[static_cast<int>(stage)].compare_exchange_strong(unset, ns, std::memory_order_release,
                                                              std::memory_order_relaxed);
}

nlohmann::json Startup::to_json() const {
  auto stamp = [this](Stage s) -> nlohmann::json {
    const std::int64_t ns = stamps_ns_[static_cast<int>(s)].load(std::memory_order_acquire);
    if (ns == kUnset) return nullptr;
    return static_cast<double>(ns) * 1e-9;
  };
  nlohmann::json j = {
      {"clock", "monotonic"},
      {"process_start", process_start_ ? nlohmann::json(*process_start_) : nlohmann::json(nullptr)},
      {"runtime_ready", stamp(Stage::runtime_ready)},
      {"model_loaded", stamp(Stage::model_loaded)},
      {"warmed", stamp(Stage::warmed)},
  };
  j["now"] = monotonic_now();  // last, so it is never before a stamp read above
  return j;
}

}  // namespace embbench
