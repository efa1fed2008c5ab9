"""What the benchmarks share: running one of the project's modules as its own process, or
profiling its code inside this one."""

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


def in_process(main) -> None:
    """Runs `main()` of a benchmark that imports the project's code into its own process: the
    repository on sys.path, TensorFlow quiet and Keras 2 selected before TensorFlow loads (the
    CLIs' set-up), and bad logs, stats or models ending in one `error:` line and status 1."""
    sys.path.insert(0, REPO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import core  # noqa: F401  (Keras 2 before TensorFlow)
    from core.errors import InputError

    try:
        main()
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
