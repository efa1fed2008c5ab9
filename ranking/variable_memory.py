"""A model whose variables cannot fit in this machine's memory, refused as they are made.

A size flag far too large for any machine (`--embedding_dim=10**12`) fails at its first
allocation, which `core.cli` turns into one line. One that fits the address space but not the
memory (id tables of 15 GiB each on a 24 GiB machine) would be allocated table by table, each
written by its initializer, until the kernel's OOM killer ends the process with SIGKILL: no
message, after minutes of swapping. Before any variable is made, `check_embedding_tables`
refuses a feature spec whose embedding tables and their optimizer slots alone exceed the memory
available (they are most of a large model, and their sizes are known from the spec); then
`within_memory` counts the bytes of each variable as it is made (weights, then the optimizer's
slots) and raises an InputError before the one that would take the total past it, counting the
variable twice (its initial value is held beside it while it is copied in): wide towers or
experts. Available: MemAvailable plus free swap (`/proc/meminfo`) when training starts, or
less under a cgroup's limit (a container's). One training process on CPUs is checked
(`checks`), not a cluster's tasks nor variables on GPUs. Variables are a lower bound of what training
needs (batches, activations and TensorFlow itself come on top), so a model this refuses could
not have trained here; one it lets through may still not fit.
"""

from __future__ import annotations

import contextlib
import os

from core.errors import InputError
from ranking.optimizers import SLOTS

GIB = 2**30


def _size(n: float) -> str:
    """Bytes for people: GiB, MiB or bytes."""
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{int(n):,} bytes"


def _meminfo_bytes(path: str = "/proc/meminfo") -> int | None:
    """MemAvailable + SwapFree in bytes, or None where the file or the fields are missing."""
    try:
        with open(path) as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        kib = [int(fields[name].split()[0]) for name in ("MemAvailable", "SwapFree")]
    except (OSError, KeyError, ValueError, IndexError):
        return None
    return sum(kib) * 1024


def _read_int(path: str) -> int | None:
    try:
        with open(path) as handle:
            text = handle.read().strip()
        return None if text == "max" else int(text)
    except (OSError, ValueError):
        return None


def _stat_field(path: str, name: str) -> int:
    """A field of a cgroup's memory.stat (0 when missing)."""
    try:
        with open(path) as handle:
            for line in handle:
                key, _, value = line.partition(" ")
                if key == name:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _cgroup_bytes(root: str = "/sys/fs/cgroup") -> int | None:
    """What this process's memory cgroup still allows, v2 or v1: its limit less its usage,
    whose inactive file pages (the page cache of files read, which the kernel reclaims first)
    count as free; None when there is no limit. (The root cgroup is what a process in a
    container sees as its own.)"""
    for limit_name, usage_name, stat_name, inactive in (
            ("memory.max", "memory.current", "memory.stat", "inactive_file"),
            ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes",
             "memory/memory.stat", "total_inactive_file")):
        limit = _read_int(os.path.join(root, limit_name))
        usage = _read_int(os.path.join(root, usage_name))
        # (v1 writes "no limit" as a huge number, near 2**63)
        if limit is not None and usage is not None and limit < 2**60:
            cache = _stat_field(os.path.join(root, stat_name), inactive)
            return max(0, limit - max(0, usage - cache))
    return None


def checks(strategy) -> bool:
    """Whether training under `strategy` checks its variables against this machine's memory:
    one process on CPUs. (A cluster's tasks would each measure their own machine, and one that
    refused would leave its peers waiting in the collective op that makes the variables; on
    parameter servers or GPUs the variables live elsewhere.)"""
    import tensorflow as tf

    from ranking import distribute

    return (not isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy)
            and distribute.input_workers(strategy) == 1
            and not tf.config.list_logical_devices("GPU"))


def available_bytes() -> int | None:
    """Bytes this process may still take: MemAvailable + SwapFree, or the cgroup's room when
    that is less; None when neither can be read (the check is then off)."""
    known = [b for b in (_meminfo_bytes(), _cgroup_bytes()) if b is not None]
    return min(known) if known else None


REMEDY = ("lower --embedding_dim, a --feature_config's hash_buckets or embedding_dim, "
          "--tower_units or --expert_units")


def _refusal(need: str, largest: str, available: int) -> InputError:
    return InputError(f"the model does not fit in this machine's memory: {need} ({largest}) "
                      f"and {_size(available)} is available; {REMEDY}")


def check_embedding_tables(spec, optimizer, available: int | None = None) -> None:
    """Raises an InputError when the float32 embedding tables of `spec` (a
    `ranking.features.FeatureSpec`) with the slots of their optimizer (`optimizer`, a
    `ranking.optimizers.OptimizerConfig`) exceed `available` bytes (default:
    `available_bytes()`)."""
    available = available_bytes() if available is None else available
    name = (optimizer.embedding_optimizer if optimizer.embedding_optimizer != "same"
            else optimizer.optimizer)
    copies = 1 + SLOTS[name]
    tables = [(f.num_embeddings * f.embedding_dim * 4 * copies, f) for f in spec.features
              if f.kind == "categorical"]
    need = sum(size for size, _ in tables)
    if available is None or not tables or need <= available:
        return
    size, feature = max(tables, key=lambda t: t[0])
    raise _refusal(f"its embedding tables and their {name} state need {_size(need)}",
                   f"{feature.name}'s, [{feature.num_embeddings}, {feature.embedding_dim}] with "
                   f"{copies - 1} slot(s), {_size(size)}", available)


def _shape_and_dtype(kwargs):
    """(shape as a tuple of ints, dtype) of the variable tf.Variable(**kwargs) will make, from
    its `shape`, its initial value's shape, or the initializer's arguments (Keras passes a
    functools.partial of the initializer); None where not fully known."""
    import tensorflow as tf

    initial = kwargs.get("initial_value")
    shape, dtype = kwargs.get("shape"), kwargs.get("dtype")
    if shape is None or not tf.TensorShape(shape).is_fully_defined():
        shape = getattr(initial, "shape", None)
    arguments = getattr(initial, "keywords", None) or {}
    if shape is None:
        positional = getattr(initial, "args", ())
        shape = arguments.get("shape", positional[0] if positional else None)
    dtype = dtype or arguments.get("dtype") or getattr(initial, "dtype", None) or tf.float32
    try:
        shape = tf.TensorShape(shape)
    except (TypeError, ValueError):
        return None
    if shape.rank is None or not shape.is_fully_defined():
        return None
    return tuple(int(d) for d in shape), tf.as_dtype(dtype)


class _Refused(BaseException):
    """Carries the refusal out of Keras' layer calls, which would rewrite an Exception's
    message with the layer's arguments (they catch Exception only); `within_memory` raises the
    InputError it holds."""

    def __init__(self, error: InputError):
        super().__init__(str(error))
        self.error = error


@contextlib.contextmanager
def within_memory(available: int | None = None):
    """Within the block, variables made (directly or by Keras layers and optimizers) are
    counted; the one that would take their total past `available` bytes (default:
    `available_bytes()` now) raises an InputError naming it, before it is allocated."""
    import tensorflow as tf

    available = available_bytes() if available is None else available
    total = 0

    def creator(next_creator, **kwargs):
        nonlocal total
        known = _shape_and_dtype(kwargs)
        if known is not None and available is not None:
            shape, dtype = known
            size = dtype.size if dtype != tf.string else 0
            for d in shape:
                size *= d
            # Making a variable holds its initial value beside it until it is copied in: a
            # [60000, 60000] float kernel (13.4 GiB) failed so with 22.7 GiB available.
            if total + 2 * size > available:
                name = kwargs.get("name")
                raise _Refused(_refusal(
                    f"its variables (weights and optimizer state) need more than "
                    f"{_size(total + 2 * size)} while they are made",
                    f"the variable {repr(name) + ' ' if name else ''}of shape "
                    f"[{', '.join(str(d) for d in shape)}]: {_size(size)}, twice that while "
                    "its initial value is copied into it", available))
            total += size
        return next_creator(**kwargs)

    try:
        with tf.variable_creator_scope(creator):
            yield
    except _Refused as refused:
        raise refused.error from None
