"""Runs one command-line module's `main` for many argument lists in one process.

    python tests/cli_harness.py pipelines.stats < cases.json > results.json

cases.json is a list of argument lists; each run starts from the flags' defaults. Results are
{"code", "stdout", "stderr"} per case ("code" is the exit status, or "exception" with the
traceback in stderr when something escaped the CLI's error handling). One process per entry
point keeps the bad-input catalogue fast: TensorFlow is imported once.
"""

import contextlib
import importlib
import io
import json
import sys
import traceback

from absl import flags

from pipelines import cli

PASS_UNKNOWN = {"pipelines.stats", "pipelines.validate"}


def main():
    name = sys.argv[1]
    cases = json.load(sys.stdin)
    module = importlib.import_module(name)
    results = []
    for argv in cases:
        flags.FLAGS.unparse_flags()
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.run(module.main, pass_unknown_flags=name in PASS_UNKNOWN,
                        argv=[name] + list(argv))
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            except BaseException:  # noqa: BLE001 - reported to the test
                code = "exception"
                err.write(traceback.format_exc())
        results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
    sys.__stdout__.write(json.dumps(results))


if __name__ == "__main__":
    main()
