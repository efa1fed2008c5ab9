"""Runs one command-line module's `main` for many argument lists in one process.

    python tests/cli_harness.py pipelines.stats      # one JSON line in, one JSON line out

Cases arrive one at a time on stdin as JSON lines {"argv": [...], "cwd": DIR}; each runs from
the flags' defaults in DIR, and its result is written as one JSON line as soon as it is known,
until stdin closes: {"code", "stdout", "stderr"} ("code" is the exit status, or "exception"
with the traceback in stderr when something escaped the CLI's error handling). Output is
captured at the file-descriptor level too (what logging handlers, Beam and native code write to
the process's stdout and stderr), so a traceback printed anywhere shows in the case's result.
The tests' `run` fixture (tests/conftest.py) keeps one such process per command module:
TensorFlow is imported once per module, not once per call.
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


def load(name):
    """The module whose `main` `python -m name` runs (a package's is its __main__)."""
    module = importlib.import_module(name)
    if not hasattr(module, "main"):
        module = importlib.import_module(f"{name}.__main__")
    return module


def passes_unknown_flags(module) -> bool:
    """Whether the module's entry point passes unknown flags on to Beam, as its
    `if __name__ == "__main__":` block says (cli.run(main, pass_unknown_flags=True))."""
    with open(module.__file__) as handle:
        return "cli.run(main, pass_unknown_flags=True)" in handle.read()


def run_case(name, module, argv) -> dict:
    """Runs `python -m name argv...`'s main in this process: {"code", "stdout", "stderr"}."""
    flags.FLAGS.unparse_flags()
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with fd_captured() as captured, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            cli.run(module.main, pass_unknown_flags=passes_unknown_flags(module),
                    argv=[name] + list(argv))
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except BaseException:  # noqa: BLE001 - reported to the test
            code = "exception"
            err.write(traceback.format_exc())
    return {"code": code, "stdout": out.getvalue() + captured["stdout"],
            "stderr": err.getvalue() + captured["stderr"]}


def main():
    name = sys.argv[1]
    # Taken before any case runs: a case's captured descriptors must not take the pipe.
    results_stream = os.fdopen(os.dup(1), "w")
    module = load(name)
    while line := sys.stdin.readline():
        request = json.loads(line)
        os.chdir(request["cwd"])
        results_stream.write(json.dumps(run_case(name, module, request["argv"])) + "\n")
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
