//! How the server started, for `/info`'s `startup` (docker/CONTRACT.md): seconds on CLOCK_MONOTONIC,
//! the clock the harness maps onto its own timeline through `now`.

use crate::info::{clock_ticks_per_second, parse_task_stat};
use serde_json::{json, Value};
use std::sync::OnceLock;

/// Seconds on a clock of `clock_gettime`.
fn clock_seconds(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC and CLOCK_BOOTTIME exist on every
    // Linux this runs on (2.6.39+).
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime({clock}) failed: {}", std::io::Error::last_os_error());
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Now, in seconds on CLOCK_MONOTONIC.
pub fn monotonic_seconds() -> f64 {
    clock_seconds(libc::CLOCK_MONOTONIC)
}

/// When this process started, on CLOCK_MONOTONIC: `/proc/self/stat`'s `starttime` (clock ticks since
/// boot, on CLOCK_BOOTTIME) minus the time the machine spent suspended. `None` without /proc.
pub fn process_start_seconds() -> Option<f64> {
    let stat = std::fs::read("/proc/self/stat").ok()?;
    let starttime = parse_task_stat(&stat)?.starttime;
    // Monotonic first: a late boottime reading can only move the start earlier, never after now.
    let monotonic = clock_seconds(libc::CLOCK_MONOTONIC);
    let boottime = clock_seconds(libc::CLOCK_BOOTTIME);
    Some(boot_ticks_to_monotonic(starttime, clock_ticks_per_second()?, boottime - monotonic))
}

/// `ticks / clk_tck − (CLOCK_BOOTTIME − CLOCK_MONOTONIC)`.
pub fn boot_ticks_to_monotonic(ticks: u64, clk_tck: u64, boottime_minus_monotonic: f64) -> f64 {
    ticks as f64 / clk_tck as f64 - boottime_minus_monotonic
}

/// A start-up stage after the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The inference runtime is initialised and the port bound, just before the model is read.
    RuntimeReady,
    /// The model is ready to run.
    ModelLoaded,
    /// The warm-up inference answered.
    Warmed,
}

/// The stamps of one start. Each stage is stamped once, by the loading thread; `/info` reads them.
#[derive(Debug)]
pub struct Startup {
    process_start: Option<f64>,
    stages: [OnceLock<f64>; 3],
}

impl Default for Startup {
    fn default() -> Self {
        Self::new()
    }
}

impl Startup {
    /// Reads the process's start time now.
    pub fn new() -> Self {
        Self { process_start: process_start_seconds(), stages: Default::default() }
    }

    fn slot(&self, stage: Stage) -> &OnceLock<f64> {
        &self.stages[stage as usize]
    }

    /// Stamps `stage` now; true the first time, false (and no new stamp) after.
    pub fn mark(&self, stage: Stage) -> bool {
        self.slot(stage).set(monotonic_seconds()).is_ok()
    }

    /// The stage's stamp, if it was reached.
    pub fn get(&self, stage: Stage) -> Option<f64> {
        self.slot(stage).get().copied()
    }

    pub fn process_start(&self) -> Option<f64> {
        self.process_start
    }

    /// `/info`'s `startup` object, `now` stamped as it is made; stages not reached are null.
    pub fn to_json(&self) -> Value {
        json!({
            "clock": "monotonic",
            "process_start": self.process_start,
            "runtime_ready": self.get(Stage::RuntimeReady),
            "model_loaded": self.get(Stage::ModelLoaded),
            "warmed": self.get(Stage::Warmed),
            "now": monotonic_seconds(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_ticks_convert_to_monotonic_seconds() {
        assert_eq!(boot_ticks_to_monotonic(812_341, 100, 0.0), 8123.41);
        // 2.5 s spent suspended: the boot clock is ahead of the monotonic one.
        assert_eq!(boot_ticks_to_monotonic(1000, 100, 2.5), 7.5);
        assert_eq!(boot_ticks_to_monotonic(250, 250, 0.25), 0.75);
    }

    #[test]
    fn the_process_started_before_now_and_not_long_ago() {
        let start = process_start_seconds().expect("/proc/self/stat is readable");
        let now = monotonic_seconds();
        assert!(start <= now, "process_start {start} is after now {now}");
        // The test binary started moments ago (10 ms tick resolution, generous bound for slow CI).
        assert!(now - start < 600.0, "process_start {start} is {}s before now", now - start);
    }

    #[test]
    fn the_monotonic_clock_does_not_go_back() {
        let a = monotonic_seconds();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = monotonic_seconds();
        assert!(b - a >= 0.02, "{a} then {b}");
    }

    #[test]
    fn stages_are_null_until_stamped_once_in_order() {
        let s = Startup::new();
        let j = s.to_json();
        assert_eq!(j["clock"], "monotonic");
        for stage in ["runtime_ready", "model_loaded", "warmed"] {
            assert!(j[stage].is_null(), "{stage}: {j}");
        }
        assert!(j["process_start"].as_f64().is_some(), "{j}");

        assert!(s.mark(Stage::RuntimeReady));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(s.mark(Stage::ModelLoaded));
        let first = s.get(Stage::RuntimeReady).unwrap();
        assert!(!s.mark(Stage::RuntimeReady), "a second mark is refused");
        assert_eq!(s.get(Stage::RuntimeReady), Some(first), "and keeps the first stamp");

        let j = s.to_json();
        assert!(j["warmed"].is_null(), "{j}");
        let t = |k: &str| j[k].as_f64().unwrap_or_else(|| panic!("{k}: {j}"));
        assert!(t("process_start") <= t("runtime_ready"), "{j}");
        assert!(t("runtime_ready") + 0.005 <= t("model_loaded"), "{j}");
        assert!(t("model_loaded") <= t("now"), "{j}");
    }
}
