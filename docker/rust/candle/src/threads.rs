//! Pins rayon's compute threads to the process's CPU set, one physical core per thread.
//!
//! The shared server crate builds rayon's global pool with NUM_THREADS threads before the backend
//! loads; this module pins each of those threads once, with `rayon::broadcast`, to the logical CPUs
//! of one physical core of the CPU set the process may run on (the container's cpuset, never the
//! host's CPUs): thread `i` gets core `i mod cores`. A core's hyperthreads stay together, so with
//! NUM_THREADS = physical cores every compute thread has a core of its own.

use std::collections::BTreeMap;
use std::path::Path;

/// The logical CPUs this process may run on (`sched_getaffinity`), ascending.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: `set` is a plain bit set, zeroed, and sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize).filter(|&cpu| libc::CPU_ISSET(cpu, &set)).collect())
    }
}

/// Restricts the calling thread to `cpus` (`sched_setaffinity` on thread id 0, the caller).
pub fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: as above; CPU_SET only touches bits below CPU_SETSIZE, which the filter guarantees.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus.iter().filter(|&&cpu| cpu < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Which physical core a logical CPU belongs to: (package id, core id) from sysfs, `None` when
/// the topology cannot be read (then the CPU counts as a core of its own).
pub fn sysfs_core_of(cpu: usize) -> Option<(u32, u32)> {
    let dir = Path::new("/sys/devices/system/cpu").join(format!("cpu{cpu}/topology"));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok()?.trim().parse::<u32>().ok();
    Some((read("physical_package_id")?, read("core_id")?))
}

/// Groups `cpus` by physical core, cores in the order of their first CPU, CPUs ascending within.
pub fn group_by_core(cpus: &[usize], core_of: impl Fn(usize) -> Option<(u32, u32)>) -> Vec<Vec<usize>> {
    let mut order: Vec<Option<(u32, u32)>> = Vec::new();
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &cpu in cpus {
        let core = core_of(cpu);
        let index = match core.and_then(|c| order.iter().position(|o| *o == Some(c))) {
            Some(i) => i,
            None => {
                order.push(core);
                order.len() - 1
            }
        };
        groups.entry(index).or_default().push(cpu);
    }
    groups.into_values().collect()
}

/// The CPUs rayon thread `index` is pinned to: core `index mod cores`.
pub fn cpus_for_thread(cores: &[Vec<usize>], index: usize) -> &[usize] {
    if cores.is_empty() {
        &[]
    } else {
        &cores[index % cores.len()]
    }
}

/// Pins every thread of rayon's global pool as the module doc says; returns each thread's CPUs,
/// by thread index, or why pinning did not happen.
pub fn pin_global_pool() -> Result<Vec<Vec<usize>>, String> {
    let cpus = allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
    let cores = group_by_core(&cpus, sysfs_core_of);
    if cores.is_empty() {
        return Err("the CPU set is empty".into());
    }
    let results = rayon::broadcast(|ctx| {
        let mine = cpus_for_thread(&cores, ctx.index()).to_vec();
        pin_current_thread(&mine).map(|()| mine).map_err(|e| format!("sched_setaffinity: {e}"))
    });
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperthreads_of_a_core_stay_together() {
        // Four logical CPUs on two cores, siblings numbered apart (0 & 2, 1 & 3), as on most hosts.
        let topology = |cpu: usize| Some((0, (cpu % 2) as u32));
        assert_eq!(group_by_core(&[0, 1, 2, 3], topology), vec![vec![0, 2], vec![1, 3]]);
    }

    #[test]
    fn a_cpuset_with_one_hyperthread_per_core() {
        let topology = |cpu: usize| Some((0, (cpu % 4) as u32));
        assert_eq!(group_by_core(&[1, 2], topology), vec![vec![1], vec![2]]);
    }

    #[test]
    fn cores_on_two_packages_are_distinct() {
        let topology = |cpu: usize| Some(((cpu / 2) as u32, 0));
        assert_eq!(group_by_core(&[0, 1, 2, 3], topology), vec![vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn unknown_topology_makes_each_cpu_a_core() {
        assert_eq!(group_by_core(&[4, 5, 6], |_| None), vec![vec![4], vec![5], vec![6]]);
    }

    #[test]
    fn threads_take_cores_round_robin() {
        let cores = vec![vec![0, 2], vec![1, 3]];
        assert_eq!(cpus_for_thread(&cores, 0), &[0, 2]);
        assert_eq!(cpus_for_thread(&cores, 1), &[1, 3]);
        assert_eq!(cpus_for_thread(&cores, 2), &[0, 2]);
        assert!(cpus_for_thread(&[], 3).is_empty());
    }

    #[test]
    fn the_calling_thread_can_be_pinned_within_its_own_set() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        std::thread::spawn(move || {
            pin_current_thread(&cpus[..1]).unwrap();
            assert_eq!(allowed_cpus().unwrap(), cpus[..1].to_vec());
        })
        .join()
        .unwrap();
    }
}
