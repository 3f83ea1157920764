"""Progress lines on stderr: one per stage, with the seconds since the command started."""

import sys
import time

_START = time.monotonic()


def elapsed() -> float:
    """Seconds since the process imported this module."""
    return time.monotonic() - _START


def log(stage: str, detail: str = "") -> None:
    """Write `[  12.3s] stage: detail` to stderr."""
    line = f"[{elapsed():7.1f}s] {stage}"
    if detail:
        line += f": {detail}"
    print(line, file=sys.stderr, flush=True)
