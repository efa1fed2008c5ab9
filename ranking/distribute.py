"""Distribution: the `tf.distribute` strategy of `--strategy`, the cluster of `TF_CONFIG`, which
task is the chief, and how the training input is split between workers.

Strategies (`--strategy`):

    default                one device
    mirrored               every GPU of this machine, or without GPUs every logical CPU device
    multi_worker_mirrored  synchronous data parallelism over the workers of TF_CONFIG (each runs
                           `ranking.train`); gradients are all-reduced every step
    parameter_server       asynchronous training: the chief runs the loop (a ClusterCoordinator
                           schedules steps on the workers), variables live on the ps tasks
                           (embedding tables partitioned across them); worker and ps tasks of
                           TF_CONFIG run `ranking.train` too, which for them starts a TensorFlow
                           server and serves until it is stopped

Multi-worker strategies configure collective ops when they are made, which TensorFlow allows
only before any other op has run: `train_and_evaluate` therefore makes the strategy first
(after setting the threads per op, `core.threads`, which runs no op).

Input sharding (`--input_sharding`, multi-worker strategies):

    files  each worker reads only its files: the epoch's file order (a function of seed and
           epoch) dealt round-robin, worker w taking files w, w + W, ...; every worker then takes
           the same number of batches of global_batch / W rows (the smallest shard's count: a
           synchronous step needs every worker, and uneven counts would hang the all-reduce),
           so an epoch can leave out the tail of the larger shards.
    rows   every worker reads every file and takes its slice of each global batch: the same
           batches as one process, at W times the reading (for few, large files, and to check
           that W workers train exactly like one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re

import numpy as np

from core.errors import InputError

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "parameter_server")
INPUT_SHARDINGS = ("files", "rows")
# Partition a variable into at most one shard per ps task, none smaller than this: the id
# tables split, small dense layers stay whole.
MIN_SHARD_BYTES = 256 << 10


class PeerFailed(InputError):
    """Another task of a synchronous cluster stopped (its log says why): this one cannot go on."""


def peer_error_types() -> tuple:
    """TensorFlow's errors for a peer gone from a collective op or a remote call."""
    import tensorflow as tf

    return (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
            tf.errors.DeadlineExceededError)


# Words of TensorFlow's messages for a peer gone ("Collective ops is aborted by: Error reported
# from /job:worker/task:1: ... heartbeat timeout"), which a file system's error (a storage
# service's 503, also an UnavailableError) does not hold.
_PEER_WORDS = ("/job:", "collective", "coordination", "heartbeat", "peer")


@contextlib.contextmanager
def peer_failures_named(strategy_name: str):
    """Within it, a task of a cluster (`strategy_name` multi_worker_mirrored or parameter_server,
    TF_CONFIG of more than one task) that meets TensorFlow's error for a peer gone (in a
    collective op or a remote call: the build's broadcast of the initial variables, a step, the
    evaluation) raises PeerFailed, one line naming what to do and TensorFlow's reason, not a
    traceback: a task that refused its input at start-up left the others waiting in the
    build's broadcast until the coordination service's heartbeat timed out, and they ended in
    an UnavailableError traceback that hid the one line that said why. Other errors of those
    types (a log file the storage cannot serve) pass on to the error layer that names them."""
    from core.errors import tf_reason

    in_cluster = (strategy_name in ("multi_worker_mirrored", "parameter_server")
                  and sum(len(tasks) for tasks in cluster_task()[2].values()) > 1)
    try:
        yield
    except peer_error_types() as error:
        message = getattr(error, "message", None) or str(error)
        if not in_cluster or not any(word in message.lower() for word in _PEER_WORDS):
            raise
        raise PeerFailed(
            f"another task of the cluster stopped (see its log), so this one cannot continue "
            f"({type(error).__name__}: {tf_reason(message)[:300]}); start every task again "
            "with the same command to resume from the chief's last checkpoint") from None


def cluster_task() -> tuple[str | None, int, dict]:
    """(task type, task index, cluster dict) of the TF_CONFIG environment variable; (None, 0,
    {}) without one. InputError for a TF_CONFIG that is not JSON of that shape: every job a
    list of "host:port" strings, the task's type one of the cluster's jobs and its index within
    that job."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None, 0, {}
    example = ('expected JSON like {"cluster": {"worker": ["host:port", ...]}, '
               '"task": {"type": "worker", "index": 0}}')
    try:
        tf_config = json.loads(raw)
        cluster, task = tf_config.get("cluster", {}), tf_config.get("task", {})
        if not isinstance(cluster, dict) or not isinstance(task, dict):
            raise ValueError("cluster and task must be objects")
        for job, addresses in cluster.items():
            # (a port that is not a number failed in TensorFlow's C++ with a traceback)
            if (not isinstance(addresses, list) or not addresses
                    or not all(isinstance(a, str) and re.fullmatch(r".+:[0-9]{1,5}", a)
                               for a in addresses)):
                raise ValueError(f"job {job!r} must be a non-empty list of \"host:port\" with "
                                 "a numeric port")
        if "index" not in task:  # (TensorFlow refuses a cluster task without one, later)
            raise ValueError("the task has no index")
        task_type, index = task.get("type"), task["index"]
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueError(f"task index must be an integer, not {index!r}")
    except (ValueError, TypeError, AttributeError) as error:
        raise InputError(f"TF_CONFIG is not valid ({error}); {example}") from None
    if task_type not in cluster:
        raise InputError(f"TF_CONFIG: task type {task_type!r} is not a job of the cluster "
                         f"({', '.join(cluster) or 'none'})")
    if not 0 <= index < len(cluster[task_type]):
        raise InputError(f"TF_CONFIG: task index {index} is out of range: job {task_type!r} has "
                         f"{len(cluster[task_type])} task(s)")
    return task_type, index, cluster


def check_parameter_server_cluster() -> str:
    """This task's type in a parameter-server cluster (chief, worker or ps); InputError unless
    TF_CONFIG names one chief, at least one worker and at least one ps task."""
    task_type, _, cluster = cluster_task()
    if len(cluster.get("chief", [])) != 1 or not cluster.get("worker") or not cluster.get("ps"):
        raise InputError("--strategy=parameter_server needs TF_CONFIG with one chief, workers "
                         "and ps tasks (the chief trains, the others serve; BUILD.md); its "
                         "cluster has "
                         f"{', '.join(f'{len(v)} {k}' for k, v in cluster.items()) or 'no tasks'}")
    return task_type


def is_server_task(strategy: str) -> bool:
    """True for a parameter-server cluster's worker and ps tasks: they serve, the chief trains."""
    return (strategy == "parameter_server"
            and check_parameter_server_cluster() in ("worker", "ps"))


def serve_forever(intra_op_threads: int = 0) -> None:
    """Starts this task's TensorFlow server (TF_CONFIG) and blocks: a parameter-server cluster's
    worker or ps task. The chief's ClusterCoordinator sends it work; stop it with a signal.
    `intra_op_threads` (`--intra_op_threads`; 0: TensorFlow's choice) sizes the pool of the
    ops the server runs: the server builds its devices from its own config, not the process'."""
    import tensorflow as tf

    _default_signal_actions()  # (it serves in C++: a Python handler would never run)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    # Workers and ps tasks keep their threads to serve; a ps serves many workers' requests.
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra_op_threads)
    server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                  task_index=resolver.task_id, protocol=resolver.rpc_layer or
                                  "grpc", config=config, start=True)
    print(f"{resolver.task_type} {resolver.task_id}: serving at {server.target}", flush=True)
    server.join()


def lone_worker_note(name: str) -> str | None:
    """The note for --strategy=multi_worker_mirrored without TF_CONFIG (TensorFlow then makes
    a cluster of this process alone, which trains as --strategy=default would), and for a
    TF_CONFIG cluster under a strategy of one process (each task would train alone), or None."""
    cluster = cluster_task()[2]
    if name == "multi_worker_mirrored" and not cluster:
        return ("note: --strategy=multi_worker_mirrored without TF_CONFIG: one worker, this "
                "process (BUILD.md says how to describe the cluster)")
    tasks = sum(len(addresses) for addresses in cluster.values())
    if name in ("default", "mirrored") and tasks > 1:
        return (f"note: TF_CONFIG describes a cluster of {tasks} tasks, but --strategy={name} "
                "trains in this process alone (every task started so would train its own "
                "model): give --strategy=multi_worker_mirrored or parameter_server to train on "
                "the cluster")
    return None


def _default_signal_actions() -> None:
    """SIGTERM ends a cluster's task and SIGINT raises KeyboardInterrupt, as in any process:
    set before its strategy or server (which wait for peers, or serve, in TensorFlow's C++,
    where the Python handler `ranking.train` sets before TensorFlow loads would never run)
    and again after the strategy is made (`_signals_end_the_task`)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():  # (where handlers can be set)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt, as usual


def _signals_end_the_task(strategy):
    """`strategy`, with SIGTERM and SIGINT ending the process again. TensorFlow's coordination
    service installs its own handlers for them (a preemption notice for its
    PreemptionCheckpointHandler, which training does not use), so a task of a cluster went on
    training after `kill`, and one waiting for its peers could only be stopped by SIGKILL;
    the run resumes from its last checkpoint, as after any stop."""
    _default_signal_actions()
    return strategy


def make_strategy(name: str):
    """The `tf.distribute` strategy of `--strategy` (cluster from TF_CONFIG for multi-worker).

    Call it before any other TensorFlow op: multi-worker strategies configure collective ops."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # Every GPU, or without GPUs every logical CPU device (MirroredStrategy's own default
        # would take only the first CPU).
        devices = ([d.name for d in tf.config.list_logical_devices("GPU")]
                   or [d.name for d in tf.config.list_logical_devices("CPU")])
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker_mirrored":
        task_type, _, cluster = cluster_task()
        if cluster and task_type not in ("chief", "worker"):
            raise InputError(f"--strategy=multi_worker_mirrored: TF_CONFIG's task type must be "
                             f"chief or worker, not {task_type!r}")
        others = sorted(set(cluster) - {"chief", "worker"})
        if others:
            # TensorFlow makes such a job's first task the coordination leader, which no task
            # of this strategy serves: every task waited for it forever, without a word.
            raise InputError(f"--strategy=multi_worker_mirrored: TF_CONFIG's cluster has job(s) "
                             f"{', '.join(others)}; this strategy's cluster is a chief and "
                             "workers only (ps tasks are --strategy=parameter_server's)")
        _default_signal_actions()
        return _signals_end_the_task(tf.distribute.MultiWorkerMirroredStrategy())
    if name == "parameter_server":
        check_parameter_server_cluster()
        _default_signal_actions()
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
            min_shard_bytes=MIN_SHARD_BYTES, max_shards=len(cluster_task()[2]["ps"]))
        return _signals_end_the_task(tf.distribute.experimental.ParameterServerStrategy(
            resolver, variable_partitioner=partitioner))
    raise InputError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")


def is_chief(strategy) -> bool:
    """True for the task that writes checkpoints, summaries and metrics: the chief, or worker 0
    of a cluster without one, or the only process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker"
                                             and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def input_workers(strategy) -> int:
    """Workers that each read their own input: the chief and workers of a multi-worker
    mirrored cluster, the workers of a parameter-server cluster, else 1."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
        return len(cluster_task()[2].get("worker", []))
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


@dataclasses.dataclass(frozen=True)
class Shard:
    """Worker `index` of `count` reads by `mode` (module docstring)."""

    index: int
    count: int
    mode: str = "files"


def epoch_file_order(files: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which an epoch reads `files` files: a permutation, a function of (seed,
    epoch) alone, so every worker computes the same one."""
    return np.random.default_rng([seed, epoch]).permutation(files)


def shard_files(order: np.ndarray, shard: Shard) -> np.ndarray:
    """The file indices worker `shard.index` reads in an epoch whose file order is `order`."""
    return order[shard.index::shard.count] if shard.mode == "files" else order


def synchronous_steps(rows_per_file: np.ndarray, order: np.ndarray, workers: int, mode: str,
                      batch_size: int, cap: int | None) -> int:
    """Steps of an epoch that every one of `workers` can take: with file sharding the smallest
    shard's ceil(rows / (batch_size / workers)), with row sharding ceil(rows / batch_size);
    at most `cap` (--steps_per_epoch). `batch_size` is the global batch in rows."""
    if mode == "rows" or workers == 1:
        steps = math.ceil(int(np.sum(rows_per_file)) / batch_size)
    else:
        per_worker = batch_size // workers
        steps = min(math.ceil(int(np.sum(rows_per_file[shard_files(order, Shard(w, workers))]))
                              / per_worker) for w in range(workers))
    return min(steps, cap) if cap else steps
