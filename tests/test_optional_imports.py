"""core.optional_imports: TensorFlow's import leaves out scipy, the Google API client and pandas,
which stay importable (and whole) before and after it; nothing else is touched; a training run
imports no pandas at all. Each check runs in a
fresh Python process: a process imports TensorFlow once."""

import os
import subprocess
import sys

from conftest import REPO


def _run(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_tensorflow_imports_without_scipy_the_api_client_and_pandas_and_each_imports_afterwards():
    out = _run("""
import sys
import core
from core import optional_imports
print(any(isinstance(f, optional_imports.SkipWhileTensorFlowImports) for f in sys.meta_path))
import tensorflow as tf
print(tf.reduce_sum(tf.ones([3])).numpy() == 3.0)
print('scipy' in sys.modules, 'googleapiclient' in sys.modules, 'pandas' in sys.modules)
# tf_keras (Keras 2, imported by TensorFlow) went on without scipy: its image module has none.
from tf_keras.src.preprocessing import image
print(not hasattr(image, 'scipy'))
import scipy.special
print(abs(scipy.special.expit(0.0) - 0.5) < 1e-12)
from sklearn.metrics import roc_auc_score
print(roc_auc_score([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == 1.0)
import googleapiclient
from tf_keras.src.engine import data_adapter
print(data_adapter.pd is None)
import pandas
print(pandas.DataFrame({'a': [1, 2]})['a'].sum() == 3)
print(any(isinstance(f, optional_imports.SkipWhileTensorFlowImports) for f in sys.meta_path))
""")
    # finder before; TF works; scipy, the client and pandas left out; tf_keras' image ops
    # without scipy, its data adapter without pandas; each imports normally afterwards; the
    # finder has removed itself.
    assert out == ["True", "True", "False", "False", "False", "True", "True", "True", "True",
                   "True", "False"]


def test_a_package_imported_before_tensorflow_is_left_as_it_is_submodules_included():
    out = _run("""
import sys
import scipy
print('scipy.sparse' in sys.modules)
import core
import tensorflow as tf
from tf_keras.src.preprocessing import image
from tf_keras.src.engine import training_v1
print(image.scipy is sys.modules['scipy'], 'scipy.ndimage' in sys.modules)
print(training_v1.issparse is not None)  # scipy.sparse, first imported by tf_keras
""")
    assert out == ["False", "True", "True", "True"]


def test_the_finder_skips_only_while_tensorflow_imports():
    # A stand-in module named tensorflow, marked as importing and then as imported, as
    # importlib marks a module's spec while its code runs.
    out = _run("""
import importlib.machinery, sys, types
from core import optional_imports as oi
finder = oi.SkipWhileTensorFlowImports()
sys.meta_path.insert(0, finder)
print(finder.find_spec('scipy') is None, oi.tensorflow_importing())
fake = types.ModuleType('tensorflow')
fake.__spec__ = importlib.machinery.ModuleSpec('tensorflow', None)
fake.__spec__._initializing = True
sys.modules['tensorflow'] = fake
# Asked by TensorFlow's or tf_keras' code (a frame of theirs), or by anyone else.
ask = "def ask(name):\\n    return finder.find_spec(name)\\n"
asked_by = {}
for package in ('tensorflow.python.x', 'tf_keras.src.y', '__main__', 'sklearn.z'):
    scope = {'__name__': package, 'finder': finder}
    exec(ask, scope)
    asked_by[package] = scope['ask']
for package, ask in asked_by.items():
    try:
        print(ask('scipy.linalg') is None)
    except ModuleNotFoundError as error:
        print(error.name)
print(asked_by['tensorflow.python.x']('numpy') is None, finder in sys.meta_path)
fake.__spec__._initializing = False
print(asked_by['tensorflow.python.x']('googleapiclient') is None, finder in sys.meta_path)
""")
    # Before TensorFlow: nothing skipped. While it imports: skipped for its code and tf_keras',
    # not for others' (another thread's) nor for other packages. After: removed.
    assert out == ["True", "False", "scipy.linalg", "scipy.linalg", "True", "True", "True",
                   "True", "True", "False"]


def test_a_training_run_imports_no_pandas(small_world, tmp_path):
    # The training logs are the artifact's (T2 windows from its user table) and the evaluation
    # logs are not (a counting pass): both labellers' tables are made without pandas.
    out = _run(f"""
import sys
import core
from ranking import training
config = training.TrainConfig(train={small_world['train']!r}, eval={small_world['eval']!r},
                              stats={small_world['stats']!r}, batch_size=256, epochs=1,
                              steps_per_epoch=2, progress='none')
metrics = training.train_and_evaluate(config, {str(tmp_path / 'model')!r})
print(metrics['rows'] > 0, 'pandas' in sys.modules)
""")
    assert out == ["True", "False"]
