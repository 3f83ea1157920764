"""/proc parsing for /info: stat lines (comm with spaces and parentheses), threads, process start."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embbench_server.procinfo import (
    CLK_TCK,
    os_threads,
    parse_stat,
    process_start_monotonic,
    starttime_to_monotonic,
)

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def stat_line(pid: int, comm: str, utime: int, stime: int, starttime: int) -> str:
    # Fields 3..52 of man 5 proc: state, then numbers; utime is field 14, stime 15, starttime 22.
    fields = ["S"] + [str(i) for i in range(4, 53)]
    fields[14 - 3], fields[15 - 3], fields[22 - 3] = str(utime), str(stime), str(starttime)
    return f"{pid} ({comm}) {' '.join(fields)}\n"


@pytest.mark.parametrize("comm", ["python3", "a b", "x) (y", "))", "(", "weird) S 1 2 (", ""])
def test_parse_stat_takes_comm_up_to_the_last_paren(comm):
    pid, name, fields = parse_stat(stat_line(42, comm, 250, 50, 123456))
    assert (pid, name) == (42, comm)
    assert fields[0] == "S"
    assert (fields[11], fields[12], fields[19]) == ("250", "50", "123456")


def test_parse_stat_reads_this_process():
    pid, name, fields = parse_stat(Path("/proc/self/stat").read_text())
    assert pid > 0 and name and fields[0] in "RSDZTtWXxKPI"


def test_os_threads_reads_every_task(tmp_path):
    for tid, comm, utime, stime in [(7, "infer", 150, 50), (3, "py (x) y", 10, 0), (12, "a b c", 0, 0)]:
        (tmp_path / str(tid)).mkdir()
        (tmp_path / str(tid) / "stat").write_text(stat_line(tid, comm, utime, stime, 1))
    (tmp_path / "99").mkdir()  # a thread that ended between the listing and the read: no stat
    assert os_threads(str(tmp_path)) == [
        {"tid": 3, "name": "py (x) y", "cpu_seconds": 10 / CLK_TCK},
        {"tid": 7, "name": "infer", "cpu_seconds": 200 / CLK_TCK},
        {"tid": 12, "name": "a b c", "cpu_seconds": 0.0},
    ]


def test_os_threads_of_this_process_include_the_main_thread():
    import os

    before = {int(t) for t in os.listdir("/proc/self/task")}
    tids = {t["tid"] for t in os_threads()}
    after = {int(t) for t in os.listdir("/proc/self/task")}
    assert os.getpid() in tids
    # Threads of earlier tests may still be ending meanwhile.
    assert before & after <= tids <= before | after


def test_starttime_conversion():
    # 12345 ticks of 100 Hz after boot, with 3.5 s spent suspended (BOOTTIME ahead of MONOTONIC).
    assert starttime_to_monotonic(12345, 100, 3.5) == pytest.approx(123.45 - 3.5)


def test_process_start_of_a_child_falls_between_spawn_and_its_answer():
    before = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", "import json; from embbench_server.procinfo import process_start_monotonic as p;"
         "import time; print(json.dumps([p(), time.monotonic()]))"],
        cwd=PACKAGE_ROOT, capture_output=True, text=True, check=True,
    ).stdout
    started, child_now = json.loads(out)
    # The kernel keeps starttime in clock ticks, rounded down: up to one tick early.
    assert before - 1 / CLK_TCK - 0.005 <= started <= child_now
    assert started <= before + 1.0  # python starts well within a second here


def test_process_start_of_this_process_is_in_the_past():
    assert process_start_monotonic() < time.monotonic()
