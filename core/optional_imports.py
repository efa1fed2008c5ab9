"""What TensorFlow's own import may leave out: its optional integrations no tool here uses.

While `tensorflow` imports itself (with tf_keras, which it loads), it also imports scipy
(tf_keras: image augmentation and scipy-sparse inputs to the v1 training loops; TensorFlow's
copy of those), the Google API client (TensorFlow: the GCE cluster resolver and the TPU
client) and pandas (tf_keras: DataFrames as inputs to `Model.fit`), each inside
`try: ... except ImportError`, which leaves the integration off when the package is missing.
Together they are 0.5-0.7 s of a training run's start on a 2-core machine (docs/BENCHMARKS.md),
for features this project never calls: it trains with its own loops on `tf.data` datasets,
resolves clusters from TF_CONFIG and augments no images. (The labeller and the stats
artifact's tables use NumPy, so training imports no pandas at all; the tools that do, the Beam
jobs (Apache Beam imports it before TensorFlow), scoring's writers and the report, import it
as usual.)

`skip_while_tensorflow_imports()` (called by `core/__init__.py`, before any TensorFlow import)
makes those packages look absent to imports that TensorFlow's or tf_keras' own code makes while
TensorFlow is being imported, and to nothing else: not to another thread importing meanwhile,
not when the package (or any of it) was imported before, not after TensorFlow's import (the
first lookup of a skipped package after it removes the finder).
"""

from __future__ import annotations

import importlib.abc
import sys

# Top-level packages TensorFlow and tf_keras import optionally.
SKIPPED = ("scipy", "googleapiclient", "pandas")
# Whose imports are skipped: code of these top-level packages.
IMPORTERS = ("tensorflow", "tf_keras")


def tensorflow_importing() -> bool:
    """Whether `tensorflow` is being imported right now (its module is registered but its
    code has not finished: importlib marks the spec `_initializing` meanwhile)."""
    module = sys.modules.get("tensorflow")
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def importing_package(frame) -> str:
    """The top-level package of the code that asked for an import, from the frame of a finder's
    `find_spec`: the first caller outside importlib's machinery ('' if unknown)."""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not (name.startswith("importlib") or name.startswith("_frozen_importlib")
                or name == __name__):
            return name.partition(".")[0]
        frame = frame.f_back
    return ""


class SkipWhileTensorFlowImports(importlib.abc.MetaPathFinder):
    """A meta-path finder raising ModuleNotFoundError for SKIPPED packages asked for by
    TensorFlow's or tf_keras' code while TensorFlow imports itself; every other lookup goes to
    the finders after it."""

    def find_spec(self, name, path=None, target=None):
        package = name.partition(".")[0]
        if package not in SKIPPED or package in sys.modules:
            return None
        if not tensorflow_importing():
            if "tensorflow" in sys.modules:  # imported: nothing left to skip
                remove()
            return None
        if importing_package(sys._getframe(1)) in IMPORTERS:  # noqa: SLF001
            raise ModuleNotFoundError(
                f"No module named {name!r} (left out of TensorFlow's import: "
                "core.optional_imports)", name=name)
        return None


def skip_while_tensorflow_imports() -> None:
    """Installs the finder first on sys.meta_path (once), unless TensorFlow is imported."""
    if "tensorflow" in sys.modules or any(
            isinstance(f, SkipWhileTensorFlowImports) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, SkipWhileTensorFlowImports())


def remove() -> None:
    """Removes the finder: sys.meta_path is replaced, not edited, since importlib may be
    iterating over the current list (editing it would skip the next finder once)."""
    sys.meta_path = [f for f in sys.meta_path if not isinstance(f, SkipWhileTensorFlowImports)]
