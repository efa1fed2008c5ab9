"""Where a job's wall time goes: start-up (the interpreter, imports, flag parsing) and named
phases, for the time line each command prints and records (always on: two clock reads a
phase).

    phases = Phases()               # at the start of the job's work: start-up ends here
    with phases("read"):
        ...
    phases.summary()  # {"startup": s, "read": s, ..., "other": s, "total": s}, seconds
"""

from __future__ import annotations

import contextlib
import os
import time


def process_seconds() -> float:
    """Seconds since this process started (Linux: from /proc; elsewhere since this module was
    first imported)."""
    try:
        with open("/proc/self/stat") as handle:
            # Field 22 is the start time in clock ticks after boot; the name (field 2) may hold
            # spaces, so count from its closing parenthesis.
            fields = handle.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return max(0.0, uptime - started)
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


class Phases:
    """Wall seconds of a job's phases (module docstring); a phase entered twice adds up."""

    def __init__(self):
        self.startup = process_seconds()
        self._started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def summary(self) -> dict[str, float]:
        """{startup, each phase, other (the rest of the job), total (the process so far)}."""
        job = time.perf_counter() - self._started
        phases = dict(self.seconds)
        return {"startup": self.startup, **phases,
                "other": max(0.0, job - sum(phases.values())), "total": self.startup + job}

    def line(self) -> str:
        return describe(self.summary())


def describe(summary: dict) -> str:
    """'time: startup 4.4 s, read 2.0 s, ... (whole process 9.1 s)' of a `Phases.summary()`."""
    summary = dict(summary)
    total = summary.pop("total")
    return ("time: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in summary.items())
            + f" (whole process {total:.1f} s)")
