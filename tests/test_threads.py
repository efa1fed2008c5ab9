"""`--intra_op_threads` (core/threads.py): the number sizes TensorFlow's op pool when set before
the runtime's first op (counted as the process' OS threads), a later different number is
refused with a note, the training command sets it before any op, bad values are an error.

The checks run in fresh Python processes without TF_NUM_INTRAOP_THREADS (which the test
workers set): a process' TensorFlow runtime starts once."""

import os
import subprocess
import sys

import pytest

from conftest import REPO

CHECK = """
import os
import core
from core import threads
assert threads.set_intra_op_threads({threads}) is None
import tensorflow as tf
tf.matmul(tf.ones([64, 64]), tf.ones([64, 64]))  # the runtime starts here, with its pools
print(len(os.listdir("/proc/self/task")))  # the process' OS threads
print(tf.config.threading.get_intra_op_parallelism_threads())
print(threads.set_intra_op_threads({threads}))
print(threads.set_intra_op_threads(5))
"""


def _fresh_env():
    env = {k: v for k, v in os.environ.items() if k != "TF_NUM_INTRAOP_THREADS"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _check(threads: int) -> list[str]:
    done = subprocess.run([sys.executable, "-c", CHECK.format(threads=threads)], cwd=REPO,
                          env=_fresh_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_the_number_sizes_the_op_pool_and_a_later_change_is_refused():
    one, three = _check(1), _check(3)
    # The op pool is the only difference between the two processes: two more threads.
    assert int(three[0]) - int(one[0]) == 2
    for threads, out in ((1, one), (3, three)):
        assert out[1] == str(threads)
        assert out[2] == "None"  # the same number again: nothing to do
        assert out[3] == (f"--intra_op_threads=5 not applied: TensorFlow already runs in this "
                          f"process with {threads} threads per op")


def test_the_training_command_sets_it_before_any_op_and_refuses_a_negative_one(
        small_world, tmp_path):
    command = [sys.executable, "-m", "ranking.train", "--model=single_ctr",
               f"--train={small_world['train']}", f"--stats={small_world['stats']}",
               "--steps_per_epoch=2", "--progress=none"]
    done = subprocess.run([*command, f"--model_dir={tmp_path / 'model'}",
                           "--intra_op_threads=3"], cwd=REPO, env=_fresh_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not applied" not in done.stdout + done.stderr  # no op ran before the setting
    done = subprocess.run([*command, f"--model_dir={tmp_path / 'bad'}", "--intra_op_threads=-1"],
                          cwd=REPO, env=_fresh_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --intra_op_threads must be >= 0 (0: TensorFlow's choice), not -1")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("environment, threads, note", [
    ("2", 0, False),   # 0 is the environment's number: nothing differs
    ("2", 2, False),
    ("abc", 0, False),  # TensorFlow ignores a value it cannot parse; so does the check
    ("2", 1, True),
])
def test_a_running_process_compares_what_it_runs_with(environment, threads, note):
    script = (f"import core, tensorflow as tf; from core import threads; tf.constant(1) + 1; "
              f"print(threads.set_intra_op_threads({threads}))")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO,
                          env={**_fresh_env(), "TF_NUM_INTRAOP_THREADS": environment},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("not applied" in done.stdout) is note
