"""The process's CPU affinity as a cpuset string, for /info."""

from __future__ import annotations

import os
from typing import Iterable


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


def affinity_cpuset() -> str:
    return format_cpuset(os.sched_getaffinity(0))
