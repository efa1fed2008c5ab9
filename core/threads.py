"""How many threads one TensorFlow op may use in this process (`--intra_op_threads`), and the
threads a job starts to read input in the background (`read_in_background`).

TensorFlow's default gives every op a pool of one thread per core, and runs independent ops
side by side on its inter-op threads. The ranking networks here are many small matmuls
(batch 2,048 by widths of 32-256) on independent branches (experts, towers, gates): on 2 cores
splitting each op costs more than it gains, and with one thread per op the two cores run two
branches at once instead (docs/BENCHMARKS.md: a `ple` step 12.2 -> 8.0 ms, 21.7 -> 13.4 op
thread-ms). The number can be set only before the process' TensorFlow runtime starts (its
first op); a parameter-server task's server takes it in its own config (`ranking.distribute`).
"""

from __future__ import annotations

import os


def _environment_threads() -> int:
    # TensorFlow's own fallback when the config says 0; it ignores a value it cannot parse.
    try:
        return max(int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0")), 0)
    except ValueError:
        return 0


def set_intra_op_threads(threads: int) -> str | None:
    """Makes TensorFlow's ops use `threads` threads each (0: TensorFlow's choice, which is
    TF_NUM_INTRAOP_THREADS when set, else one per core). Returns None when the process runs
    with that number, or a one-line note when its runtime had already started with another
    (the setting then has no effect: a process runs with one pool)."""
    import tensorflow as tf

    threading = tf.config.threading
    current = threading.get_intra_op_parallelism_threads() or _environment_threads()
    if current == (threads or _environment_threads()):
        return None
    try:
        threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime started (an op ran) before this call
        return (f"--intra_op_threads={threads} not applied: TensorFlow already runs in this "
                f"process with {current or 'its default number of'} threads per op")
    return None


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else the count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# Names the threads of `read_in_background`: a failed tool does not wait for them
# (`core.cli.end_now`).
READ_THREAD_PREFIX = "dwellrank-read"


def read_in_background(task):
    """A `concurrent.futures.Future` of `task()`, a read (it writes nothing), run in a thread of
    its own that ends with it."""
    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(1, thread_name_prefix=READ_THREAD_PREFIX)
    future = executor.submit(task)
    executor.shutdown(wait=False)
    return future


def is_background_read(thread) -> bool:
    """Whether `thread` (a threading.Thread) was started by `read_in_background`."""
    return thread.name.startswith(READ_THREAD_PREFIX)
