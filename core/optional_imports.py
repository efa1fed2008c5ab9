"""What TensorFlow's own import may leave out: its optional integrations no tool here uses.

While `tensorflow` imports itself (with tf_keras, which it loads), it also imports scipy
(tf_keras: image augmentation) and the Google API client (TensorFlow: the GCE cluster
resolver), each inside `try: ... except ImportError`, which leaves the integration off when
the package is missing. Together they are 0.2-0.3 s of every process's start on a 2-core
machine (docs/BENCHMARKS.md), for features this project never calls: it resolves clusters from
TF_CONFIG and augments no images. (pandas, which tf_keras imports the same way, is not left
out: the labeller and the stats artifact's tables need it in the same processes anyway.)

`skip_while_tensorflow_imports()` (called by `core/__init__.py`, before any TensorFlow import)
makes those packages look absent to imports made *during* TensorFlow's import only. Before it
(a package imported first is simply there) and after it (scikit-learn, say, imports scipy as
usual) nothing is changed; the finder removes itself once TensorFlow is imported.
"""

from __future__ import annotations

import importlib.abc
import sys

# Top-level packages TensorFlow and tf_keras import optionally.
SKIPPED = ("scipy", "googleapiclient")


def tensorflow_importing() -> bool:
    """Whether `tensorflow` is being imported right now (its module is registered but its
    code has not finished: importlib marks the spec `_initializing` meanwhile)."""
    module = sys.modules.get("tensorflow")
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


class SkipWhileTensorFlowImports(importlib.abc.MetaPathFinder):
    """A meta-path finder raising ModuleNotFoundError for SKIPPED packages while TensorFlow
    imports itself; it leaves every other import to the finders after it."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] not in SKIPPED:
            return None
        if tensorflow_importing():
            raise ModuleNotFoundError(
                f"No module named {name!r} (left out of TensorFlow's import: "
                "core.optional_imports)", name=name)
        if "tensorflow" in sys.modules:  # imported: nothing left to skip
            remove()
        return None


def skip_while_tensorflow_imports() -> None:
    """Installs the finder first on sys.meta_path (once), unless TensorFlow is imported."""
    if "tensorflow" in sys.modules or any(
            isinstance(f, SkipWhileTensorFlowImports) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, SkipWhileTensorFlowImports())


def remove() -> None:
    """Removes the finder from sys.meta_path."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, SkipWhileTensorFlowImports)]
