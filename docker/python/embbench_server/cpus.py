"""The process's CPUs: its affinity mask (the container's cpuset) as a cpuset string for /info, one CPU
per physical core for inference threads, and pinning the calling thread."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

SYS_CPU = Path("/sys/devices/system/cpu")


def format_cpuset(cpus: Iterable[int]) -> str:
    """Formats CPU numbers the way cgroups write a cpuset: ranges and singles, e.g. "0-3,6"."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def affinity_cpus() -> list[int]:
    """The CPUs this process may run on, ascending."""
    return sorted(os.sched_getaffinity(0))


def affinity_cpuset() -> str:
    return format_cpuset(affinity_cpus())


def _core_of(cpu: int, sys_cpu: Path) -> tuple[int, int]:
    """(package, core) of a CPU from sysfs; a CPU whose topology cannot be read is its own core."""
    try:
        topology = sys_cpu / f"cpu{cpu}" / "topology"
        return int((topology / "physical_package_id").read_text()), int((topology / "core_id").read_text())
    except (OSError, ValueError):
        return -1, -1 - cpu


def cpus_by_core(cpus: Iterable[int], sys_cpu: Path = SYS_CPU) -> list[int]:
    """The CPUs ordered so that each physical core comes once before any core's second hyperthread:
    the lowest CPU of every core (in CPU order), then the remaining siblings (in CPU order). Thread i
    of a pool pinned to entry i % len gets a core of its own while there are cores left."""
    first: list[int] = []
    rest: list[int] = []
    seen: set[tuple[int, int]] = set()
    for cpu in sorted(set(cpus)):
        core = _core_of(cpu, sys_cpu)
        (rest if core in seen else first).append(cpu)
        seen.add(core)
    return first + rest


def thread_cpus(num_threads: int, cpus: Iterable[int] | None = None, sys_cpu: Path = SYS_CPU) -> list[int]:
    """The CPU for each of `num_threads` inference threads: one per physical core of the cpuset first,
    wrapping around when there are more threads than CPUs."""
    ordered = cpus_by_core(affinity_cpus() if cpus is None else cpus, sys_cpu)
    return [ordered[i % len(ordered)] for i in range(num_threads)]


def pin_this_thread(cpu: int) -> bool:
    """Pins the calling OS thread (Linux: sched_setaffinity on tid 0 is this thread alone) to one CPU.
    Threads it starts afterwards inherit the mask. False when the kernel refuses."""
    try:
        os.sched_setaffinity(0, {cpu})
        return True
    except OSError:
        return False


def this_thread_cpus() -> str:
    return format_cpuset(os.sched_getaffinity(0))
