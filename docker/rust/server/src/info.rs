//! Facts for `/info`: the process's CPU affinity and how this binary was compiled.

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

    #[test]
    fn this_process_has_an_affinity() {
        let cpus = allowed_cpus();
        assert!(cpus.chars().next().is_some_and(|c| c.is_ascii_digit()), "{cpus}");
    }
}
