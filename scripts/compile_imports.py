"""Byte-compiles the installed modules the project imports: `make venv` runs it once, after
`pip install --no-compile`.

    .venv/bin/python scripts/compile_imports.py

It imports every module of the project's packages but the command-line ones (each defines
its flags on import, and several share names, so one process cannot import them all; what they
import is imported through the library modules), the Beam engines and what the test command
loads (pytest, xdist, scikit-learn's metrics, pandas, matplotlib), with bytecode writing forced
on (whatever PYTHONDONTWRITEBYTECODE says), so each installed module the stack imports gets its
`__pycache__` entry: about 4,400 of the environment's 17,000 files, compiled by this one
process. Compiling every installed file instead (`compileall`) took longer than the install
itself (42 s against 36 s on the project's 2-core VM); compiling nothing leaves the first
processes of a test run compiling the same modules at once. A module imported only later (a
code path no command imports at start-up) is compiled by the first process that imports it,
as Python does by default.
"""

import importlib
import os
import pkgutil
import sys
import warnings

sys.dont_write_bytecode = False
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import core  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)

PACKAGES = ("core", "pipelines", "ranking", "export", "online", "report")
TESTS = ("pytest", "xdist", "sklearn.metrics", "pandas", "matplotlib.pyplot")


def library_modules():
    """Every module of PACKAGES but the command-line ones (`FLAGS = flags.FLAGS` at the top)."""
    for package in PACKAGES:
        for info in pkgutil.walk_packages([os.path.join(REPO, package)], f"{package}."):
            path = os.path.join(REPO, *info.name.split(".")) + (
                "/__init__.py" if info.ispkg else ".py")
            with open(path) as handle:
                if "\nFLAGS = flags.FLAGS" not in handle.read():
                    yield info.name


def main() -> int:
    for name in (*PACKAGES, *library_modules(), *TESTS):
        importlib.import_module(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
