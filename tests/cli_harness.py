"""Runs one command-line module's `main` for many argument lists in one process.

    python tests/cli_harness.py pipelines.stats < cases.json > results.json

cases.json is a list of argument lists; each run starts from the flags' defaults. Results are
{"code", "stdout", "stderr"} per case ("code" is the exit status, or "exception" with the
traceback in stderr when something escaped the CLI's error handling). Output is captured at
the file-descriptor level too (what logging handlers, Beam and native code write to the
process's stdout and stderr), so a traceback printed anywhere shows in the case's result. One
process per entry point keeps the bad-input catalogue fast: TensorFlow is imported once.
"""

import contextlib
import importlib
import io
import json
import os
import sys
import tempfile
import traceback

from absl import flags

from core import cli

# Modules whose CLI passes unknown flags to Beam (cli.run(..., pass_unknown_flags=True)).
PASS_UNKNOWN = {"pipelines.stats", "pipelines.validate", "pipelines.label"}


def main():
    name = sys.argv[1]
    cases = json.load(sys.stdin)
    # A stage's CLI is its package's __main__ (python -m pipelines.stats).
    module = importlib.import_module(name)
    if not hasattr(module, "main"):
        module = importlib.import_module(f"{name}.__main__")
    results = []
    results_stream = os.fdopen(os.dup(1), "w")
    for argv in cases:
        flags.FLAGS.unparse_flags()
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with fd_captured() as captured, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            try:
                cli.run(module.main, pass_unknown_flags=name in PASS_UNKNOWN,
                        argv=[name] + list(argv))
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            except BaseException:  # noqa: BLE001 - reported to the test
                code = "exception"
                err.write(traceback.format_exc())
        results.append({"code": code, "stdout": out.getvalue() + captured["stdout"],
                        "stderr": err.getvalue() + captured["stderr"]})
    results_stream.write(json.dumps(results))
    results_stream.flush()


@contextlib.contextmanager
def fd_captured():
    """Captures file descriptors 1 and 2 (text written below Python's sys.stdout/stderr)."""
    captured = {}
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    files = {fd: tempfile.TemporaryFile() for fd in (1, 2)}
    for fd, handle in files.items():
        os.dup2(handle.fileno(), fd)
    try:
        yield captured
    finally:
        sys.__stdout__.flush()
        sys.__stderr__.flush()
        for fd in (1, 2):
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
            files[fd].seek(0)
            captured["stdout" if fd == 1 else "stderr"] = files[fd].read().decode(
                "utf-8", "replace")
            files[fd].close()


if __name__ == "__main__":
    main()
