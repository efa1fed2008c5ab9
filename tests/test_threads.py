"""`--intra_op_threads` (core/threads.py): the number reaches TensorFlow's runtime when set
before its first op, a later different number is refused with a note, bad values are an error.

Each check runs in a fresh Python process: a process' TensorFlow runtime starts once, and the
test workers' own runtime is already running."""

import os
import subprocess
import sys

import pytest

from core.errors import InputError

from conftest import REPO

CHECK = """
import os
os.environ.pop("TF_NUM_INTRAOP_THREADS", None)
import core
from core import threads
assert threads.set_intra_op_threads({threads}) is None
import tensorflow as tf
print(float(tf.reduce_sum(tf.ones([4, 4]))))  # the runtime starts here
print(tf.config.threading.get_intra_op_parallelism_threads())
print(threads.set_intra_op_threads({threads}))
print(threads.set_intra_op_threads(3))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_the_number_reaches_the_runtime_and_a_later_change_is_refused(threads):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", CHECK.format(threads=threads)], cwd=REPO,
                         env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "16.0"
    assert out[1] == str(threads)  # the runtime's pool, as configured before its first op
    assert out[2] == "None"  # the same number again: nothing to do
    assert out[3] == (f"--intra_op_threads=3 not applied: TensorFlow already runs in this "
                      f"process with {threads} threads per op")


def test_a_negative_number_is_an_input_error(tmp_path):
    from ranking import training

    config = training.TrainConfig(train="x.csv", stats="stats", intra_op_threads=-1)
    with pytest.raises(InputError, match=r"--intra_op_threads must be >= 0"):
        training.train_and_evaluate(config, str(tmp_path / "model"))
    assert not (tmp_path / "model").exists()
