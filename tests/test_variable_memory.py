"""ranking.variable_memory: variables past the memory available are refused before they are made."""

import os
import re
import subprocess
import sys

import pytest

from core.errors import InputError
from ranking import variable_memory

from conftest import REPO


def test_variables_are_counted_until_the_one_past_the_budget():
    import tensorflow as tf

    # Each variable counts twice while it is made (its initial value beside it). float32
    # [100, 10]: 4,000 bytes (8,000 while made); Keras' Dense(10) on 5 inputs: 200 + 40 bytes.
    made = []
    with pytest.raises(InputError) as refused, variable_memory.within_memory(available=8_000):
        made.append(tf.Variable(tf.zeros([100, 10])))
        dense = tf.keras.layers.Dense(10)
        dense(tf.zeros([1, 5]))  # 4,240 bytes in all
        made.append(dense)
        # float64 [250]: 2,000 bytes, 4,240 + 2 x 2,000 = 8,240 while made
        tf.Variable(tf.zeros([250], tf.float64), name="table")
        made.append("past the budget")
    assert len(made) == 2
    assert str(refused.value) == (
        "the model does not fit in this machine's memory: its variables (weights and optimizer "
        "state) need more than 8,240 bytes while they are made (the variable 'table' of shape "
        "[250]: 2,000 bytes, twice that while its initial value is copied into it) and 8,000 "
        "bytes is available; lower --embedding_dim, a --feature_config's hash_buckets or "
        "embedding_dim, --tower_units or --expert_units")


def test_optimizer_slots_count_and_outside_the_block_nothing_does():
    import tensorflow as tf

    table = tf.Variable(tf.zeros([1000, 8]))  # 32,000 bytes, made before the block
    # Adam's two slots of the table: 32,000 + 2 x 32,000 = 96,000 bytes while the second is
    # made (and its scalars: iterations, int64).
    optimizer = tf.keras.optimizers.legacy.Adam()
    with variable_memory.within_memory(available=96_100):
        optimizer._create_all_weights([table])  # noqa: SLF001
    optimizer = tf.keras.optimizers.legacy.Adam()
    with pytest.raises(InputError, match="shape \\[1000, 8\\]"), \
            variable_memory.within_memory(available=95_999):
        optimizer._create_all_weights([table])  # noqa: SLF001
    tf.Variable(tf.zeros([10**6]))  # outside: no budget


def test_available_memory_is_meminfo_or_the_cgroup_s_room(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 24000000 kB\nMemAvailable: 1000 kB\nSwapFree: 24 kB\n")
    assert variable_memory._meminfo_bytes(str(meminfo)) == 1024 * 1024
    meminfo.write_text("MemTotal: 24000000 kB\n")
    assert variable_memory._meminfo_bytes(str(meminfo)) is None
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text("5\n")
    assert variable_memory._cgroup_bytes(str(tmp_path)) is None
    (tmp_path / "memory.max").write_text("1000\n")
    assert variable_memory._cgroup_bytes(str(tmp_path)) == 995
    # The page cache of files read, inactive, counts as free.
    (tmp_path / "memory.current").write_text("600\n")
    (tmp_path / "memory.stat").write_text("anon 400\nfile 200\ninactive_file 150\n")
    assert variable_memory._cgroup_bytes(str(tmp_path)) == 1000 - (600 - 150)
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory/memory.limit_in_bytes").write_text(str(2**63 - 4096))  # v1's "no limit"
    (v1 / "memory/memory.usage_in_bytes").write_text("7")
    assert variable_memory._cgroup_bytes(str(v1)) is None
    (v1 / "memory/memory.limit_in_bytes").write_text("100")
    (v1 / "memory/memory.stat").write_text("cache 5\ntotal_inactive_file 3\n")
    assert variable_memory._cgroup_bytes(str(v1)) == 100 - (7 - 3)


def test_embedding_tables_with_their_slots_are_checked_before_any_is_made():
    from ranking.features import Feature, FeatureSpec
    from ranking.optimizers import OptimizerConfig

    spec = FeatureSpec(features=(
        Feature("user_id", "string", "categorical", hash_buckets=999, embedding_dim=10),
        Feature("age", "float32", "numeric"),
        Feature("device", "string", "categorical", vocabulary=("a", "b"), embedding_dim=4)))
    # user_id: 1,000 rows x 10 x 4 bytes = 40,000; device: 4 rows (2 words, OOV, mask) x 4 x 4
    # = 64; with lazy_adam's two slots, three copies: 120,192 bytes.
    variable_memory.check_embedding_tables(spec, OptimizerConfig(), available=120_192)
    with pytest.raises(InputError) as refused:
        variable_memory.check_embedding_tables(spec, OptimizerConfig(), available=120_191)
    assert str(refused.value) == (
        "the model does not fit in this machine's memory: its embedding tables and their "
        "lazy_adam state need 120,192 bytes (user_id's, [1000, 10] with 2 slot(s), 120,000 "
        "bytes) and 120,191 bytes is available; lower --embedding_dim, a --feature_config's "
        "hash_buckets or embedding_dim, --tower_units or --expert_units")
    # The tables' own optimizer, when they have one: SGD keeps no slot.
    variable_memory.check_embedding_tables(
        spec, OptimizerConfig(embedding_optimizer="sgd"), available=40_064)
    with pytest.raises(InputError, match="their adagrad state need 80,128 bytes"):
        variable_memory.check_embedding_tables(
            spec, OptimizerConfig(embedding_optimizer="adagrad"), available=80_127)


TRAIN_IN_LITTLE_MEMORY = """
import sys
from core import cli
from ranking import variable_memory
mib = int(sys.argv.pop(1))
variable_memory.available_bytes = lambda: mib * 2**20  # as if this machine had so much free
from ranking import train
cli.run(train.main, argv=["ranking.train"] + sys.argv[1:])
"""


@pytest.mark.parametrize("mib, extra, expected", [
    # ple's two id tables (131,073 x 16 floats, 8 MiB each) with LazyAdam's two slots: 48 MiB,
    # and the other features' small tables: refused before anything is made.
    (40, [], r"its embedding tables and their lazy_adam state need 48\.\d MiB \((user|item)_id's, "
             r"\[131073, 16\] with 2 slot\(s\), 24\.0 MiB\) and 40\.0 MiB is available"),
    # The tables fit in 60 MiB; experts of 4,096 x 4,096 (64 MiB a kernel) do not.
    (60, ["--expert_units=4096,4096"],
     r"its variables \(weights and optimizer state\) need more than \d+\.\d MiB while "
     r"they are made \(the variable 'kernel' of shape \[4096, 4096\]: 64\.0 MiB, twice "
     r"that while its initial value is copied into it\) and 60\.0 MiB is available"),
], ids=["tables", "experts"])
def test_training_a_model_past_the_memory_is_one_error_line(small_world, tmp_path, mib, extra,
                                                            expected):
    """No model directory is left, no traceback; the line says what to lower."""
    model_dir = tmp_path / "m"
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_IN_LITTLE_MEMORY, str(mib), "--model=ple",
         f"--train={small_world['train']}", f"--stats={small_world['stats']}",
         f"--model_dir={model_dir}", "--steps_per_epoch=1", *extra],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert re.fullmatch("error: the model does not fit in this machine's memory: " + expected
                        + "; lower --embedding_dim, a --feature_config's hash_buckets or "
                        "embedding_dim, --tower_units or --expert_units", last), last
    assert not model_dir.exists()
