"""Shared test set-up: quiet TensorFlow, Keras 2, and helpers to read logs in full."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(module, *args, cwd=None, timeout=300):
    """Runs `python -m module args...` as a user would; returns the CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or REPO, env=env, timeout=timeout)


@pytest.fixture
def run():
    return run_module
