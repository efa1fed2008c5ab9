"""What the benchmarks share: running one of the project's modules as its own process."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module(name: str, *args: str) -> str:
    """Runs `python -m name args...` from the repository; exits with its stderr on failure;
    returns its stdout."""
    env = dict(os.environ, PYTHONPATH=REPO)
    completed = subprocess.run([sys.executable, "-m", name, *args], cwd=REPO, env=env,
                               capture_output=True, text=True)
    if completed.returncode:
        sys.exit(f"{name} {' '.join(args)} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout
