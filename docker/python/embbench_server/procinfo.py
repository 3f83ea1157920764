"""What /info reports about the process itself: when it started (on CLOCK_MONOTONIC, the clock of
the startup stamps) and its OS threads with their CPU time, both read from /proc."""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Positions in the fields that follow the ")" closing comm, i.e. stat field number - 3 (man 5 proc):
# field 3 (state) is index 0, field 14 (utime) index 11, field 15 (stime) 12, field 22 (starttime) 19.
_UTIME, _STIME, _STARTTIME = 11, 12, 19


def parse_stat(text: str) -> tuple[int, str, list[str]]:
    """A /proc/<pid>/stat line as (pid, comm, fields after comm). comm is the kernel's thread name
    (up to 15 bytes, any characters: spaces and parentheses included), so it ends at the *last* ")"
    of the line, not the first: the fields after it are numbers and a state letter, never a ")"."""
    open_paren = text.index("(")
    close_paren = text.rindex(")")
    pid = int(text[:open_paren].strip())
    return pid, text[open_paren + 1 : close_paren], text[close_paren + 1 :].split()


def _read_stat(path: str) -> str:
    # comm may hold bytes that are not UTF-8 (any thread can name itself anything).
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def boottime_minus_monotonic() -> float:
    """CLOCK_BOOTTIME - CLOCK_MONOTONIC (the time spent suspended), read with the tightest pair of
    three tries so a preemption between the two reads does not skew it."""
    best: tuple[float, float] | None = None
    for _ in range(3):
        m0 = time.clock_gettime(time.CLOCK_MONOTONIC)
        b = time.clock_gettime(time.CLOCK_BOOTTIME)
        m1 = time.clock_gettime(time.CLOCK_MONOTONIC)
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, b - (m0 + m1) / 2)
    assert best is not None
    return best[1]


def starttime_to_monotonic(starttime_ticks: int, clk_tck: int, boot_minus_mono: float) -> float:
    """/proc's starttime (clock ticks since boot, CLOCK_BOOTTIME) on CLOCK_MONOTONIC."""
    return starttime_ticks / clk_tck - boot_minus_mono


def process_start_monotonic() -> float:
    """When this process started, in CLOCK_MONOTONIC seconds (the kernel keeps it to a clock tick,
    10 ms, rounded down)."""
    _, _, fields = parse_stat(_read_stat("/proc/self/stat"))
    return starttime_to_monotonic(int(fields[_STARTTIME]), CLK_TCK, boottime_minus_monotonic())


def os_threads(task_dir: str = "/proc/self/task") -> list[dict[str, Any]]:
    """Every thread of the process: {tid, name (comm), cpu_seconds (utime + stime)}, by tid. A thread
    that ends while the folder is read is left out."""
    threads = []
    for entry in os.listdir(task_dir):
        try:
            tid, comm, fields = parse_stat(_read_stat(f"{task_dir}/{entry}/stat"))
        except (FileNotFoundError, ProcessLookupError):
            continue
        cpu = (int(fields[_UTIME]) + int(fields[_STIME])) / CLK_TCK
        threads.append({"tid": tid, "name": comm, "cpu_seconds": cpu})
    threads.sort(key=lambda t: t["tid"])
    return threads


_PR_SET_NAME = 15
_libc: Any = None


def name_this_thread(name: str) -> None:
    """Sets the calling thread's OS name (comm, cut to 15 bytes), so /info's os_threads tells the
    server's pools apart; Python before 3.14 leaves every thread named after the executable.
    Threads started later from this one (a framework's workers) inherit the name.
    Best effort: a failure leaves the old name."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def thread_cpus(task_dir: str = "/proc/self/task") -> list[dict[str, Any]]:
    """Every thread's name and the CPUs it may run on (its affinity mask, as a cpuset string), by tid:
    shows which threads a runtime pinned."""
    from .cpus import format_cpuset

    threads = []
    for entry in os.listdir(task_dir):
        try:
            _, comm, _ = parse_stat(_read_stat(f"{task_dir}/{entry}/stat"))
            cpus = format_cpuset(os.sched_getaffinity(int(entry)))
        except (FileNotFoundError, ProcessLookupError, OSError):
            continue
        threads.append({"tid": int(entry), "name": comm, "cpus": cpus})
    threads.sort(key=lambda t: t["tid"])
    return threads
