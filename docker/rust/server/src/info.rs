//! Facts for `/info`: the process's CPU affinity and threads, and how this binary was compiled.

use serde::Serialize;
use serde_json::{json, Map, Value};

/// The CPUs this process may run on as a cpuset string ("0-1"), from /proc/self/status.
pub fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| parse_cpus_allowed_list(&status))
        .unwrap_or_else(|| "unknown".into())
}

fn parse_cpus_allowed_list(status: &str) -> Option<String> {
    status.lines().find_map(|line| line.strip_prefix("Cpus_allowed_list:")).map(|v| v.trim().to_string())
}

/// The fields of a `/proc/<pid>/task/<tid>/stat` line that `/info` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStat {
    /// The thread's name (`comm`, at most 15 bytes; may hold spaces and parentheses).
    pub comm: String,
    /// Clock ticks in user mode (field 14).
    pub utime: u64,
    /// Clock ticks in kernel mode (field 15).
    pub stime: u64,
    /// Clock ticks after boot when the process or thread started (field 22).
    pub starttime: u64,
}

/// Parses a stat line: `pid (comm) state ppid …`. `comm` is whatever lies between the first `(` and
/// the *last* `)`, since a name may itself hold `)` and spaces; the numbered fields follow the last `)`.
pub fn parse_task_stat(stat: &[u8]) -> Option<TaskStat> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = String::from_utf8_lossy(&stat[open + 1..close]).into_owned();
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // rest[0] is field 3 (state), so field n is rest[n - 3].
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(TaskStat { comm, utime: field(14)?, stime: field(15)?, starttime: field(22)? })
}

/// `sysconf(_SC_CLK_TCK)`: the unit of the stat files' times (100 on Linux).
pub fn clock_ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf reads a constant of the C library; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0)
}

/// One thread of the server process, as `/info`'s `os_threads` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OsThread {
    pub tid: u64,
    pub name: String,
    /// `utime + stime` in seconds.
    pub cpu_seconds: f64,
}

/// Every thread of this process now, by thread id, from `/proc/self/task/<tid>/stat`. A thread that
/// ends while the list is read is left out.
pub fn os_threads() -> Vec<OsThread> {
    let Some(clk_tck) = clock_ticks_per_second() else { return Vec::new() };
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    let mut threads: Vec<OsThread> = tasks
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let tid = entry.file_name().to_str()?.parse::<u64>().ok()?;
            let stat = parse_task_stat(&std::fs::read(entry.path().join("stat")).ok()?)?;
            let cpu_seconds = (stat.utime + stat.stime) as f64 / clk_tck as f64;
            Some(OsThread { tid, name: stat.comm, cpu_seconds })
        })
        .collect();
    threads.sort_by_key(|t| t.tid);
    threads
}

/// The x86-64 features the compiler was allowed to use everywhere (the `-C target-cpu` level).
fn compiled_target_features() -> Vec<&'static str> {
    let mut features = Vec::new();
    macro_rules! probe {
        ($($f:literal),*) => { $( if cfg!(target_feature = $f) { features.push($f); } )* };
    }
    probe!("sse4.2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512vnni");
    features
}

/// Build facts every Rust image reports, whatever the backend.
pub fn rust_build_facts() -> Map<String, Value> {
    let facts = json!({
        "language": "rust",
        "rustc": env!("EMBBENCH_RUSTC_VERSION"),
        "target_cpu": env!("EMBBENCH_TARGET_CPU"),
        "target_features": compiled_target_features(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "http": "axum on tokio",
    });
    match facts {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object literal is an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_affinity_list() {
        let status = "Name:\tx\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t1\n";
        assert_eq!(parse_cpus_allowed_list(status).as_deref(), Some("0-1"));
        assert_eq!(parse_cpus_allowed_list("Name:\tx\n"), None);
    }

    /// A real stat line (Linux 6.x, 52 fields) with `comm` replaced.
    fn stat_line(comm: &str) -> String {
        format!(
            "4242 ({comm}) S 1 4242 4242 0 -1 4194560 3051 0 0 0 231 17 0 0 20 0 9 0 812341 1204224000 \
             30212 18446744073709551615 1 1 0 0 0 0 0 4096 17642 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        )
    }

    #[test]
    fn parses_the_fields_of_a_stat_line() {
        let s = parse_task_stat(stat_line("python3").as_bytes()).unwrap();
        assert_eq!(s, TaskStat { comm: "python3".into(), utime: 231, stime: 17, starttime: 812341 });
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        for comm in ["tokio runtime", "a) b (c", "x) S 1 2 3", ")", "(", "", "))((  )"] {
            let s = parse_task_stat(stat_line(comm).as_bytes()).unwrap_or_else(|| panic!("{comm:?}"));
            assert_eq!(s.comm, comm);
            assert_eq!((s.utime, s.stime, s.starttime), (231, 17, 812341), "{comm:?}");
        }
    }

    #[test]
    fn a_name_that_is_not_utf8_is_kept_lossily() {
        let mut line = b"7 (ab\xff) R".to_vec();
        line.extend_from_slice(b" 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 99 0 0\n");
        let s = parse_task_stat(&line).unwrap();
        assert_eq!(s.comm, "ab\u{fffd}");
        assert_eq!((s.utime, s.stime, s.starttime), (5, 6, 99));
    }

    #[test]
    fn malformed_stat_lines_are_none() {
        for bad in [
            "",
            "4242 python3 S 1",
            "4242 (python3) S 1 2 3",
            "4242 )x( S",
            "4242 (p) S 1 x 4242 0 -1 0 0 0 0 0 a b c d e f g h i j",
        ] {
            assert_eq!(parse_task_stat(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn clock_ticks_are_known() {
        assert!(clock_ticks_per_second().is_some_and(|t| t >= 100), "{:?}", clock_ticks_per_second());
    }

    fn thread_cpu_seconds() -> f64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec.
        assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    }

    #[test]
    fn lists_this_process_threads_with_their_names_and_cpu_time() {
        // A thread whose name holds spaces and ')', alive (and busy for a moment) while the list is read.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<u64>();
        let worker = std::thread::Builder::new()
            .name("x) (y z".into())
            .spawn(move || {
                // Spin until this thread has used 50 ms of CPU (5 ticks at 100 Hz), however busy the machine.
                let mut n = 0u64;
                while thread_cpu_seconds() < 0.05 {
                    for _ in 0..10_000 {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                }
                // SAFETY: gettid has no preconditions.
                ready_tx.send(unsafe { libc::gettid() } as u64).unwrap();
                rx.recv().unwrap();
            })
            .unwrap();
        let tid = ready_rx.recv().unwrap();
        let threads = os_threads();
        tx.send(()).unwrap();
        worker.join().unwrap();

        let main = threads.iter().find(|t| t.tid == u64::from(std::process::id()));
        assert!(main.is_some(), "the main thread (tid = pid) is listed: {threads:?}");
        let named = threads.iter().find(|t| t.tid == tid).unwrap_or_else(|| panic!("tid {tid} in {threads:?}"));
        assert_eq!(named.name, "x) (y z");
        assert!(named.cpu_seconds >= 0.03, "a thread that spun 50 ms of CPU shows it: {named:?}");
        assert!(threads.windows(2).all(|w| w[0].tid < w[1].tid), "sorted by tid: {threads:?}");
        assert!(threads.iter().all(|t| t.cpu_seconds >= 0.0));
    }

    #[test]
    fn this_process_has_an_affinity() {
        let cpus = allowed_cpus();
        assert!(cpus.chars().next().is_some_and(|c| c.is_ascii_digit()), "{cpus}");
    }
}
