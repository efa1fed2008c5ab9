"""The training loops behind `ranking.training.train_and_evaluate`.

`train_synchronous` (one device, mirrored, multi-worker mirrored): every step is one global
batch, split between replicas and workers; the loss of each replica is divided by the global
batch (`ranking.losses`), so the all-reduced gradient is the gradient of the whole batch. Resuming
is exact: an epoch's batch sequence is a function of (files, seed, epoch) (`ranking.data`), and
the checkpoint records the batches done in the epoch, which a resumed run skips.

`train_parameter_server` (`--strategy=parameter_server`, on the chief): a ClusterCoordinator
schedules steps on whichever worker is free; a step is one batch of `--batch_size` rows read by
that worker from its own files, and updates the variables on the ps tasks asynchronously. Which
worker takes which batch is not deterministic, so resuming restores the model, the optimizer and
the step, and each worker continues its file shard after batch_in_epoch / workers of its batches
(exact with one worker).

The step functions are traced without AutoGraph (`autograph=False`): a step is straight-line
Python over tensors (its branches are on settings), and converting the Keras and TF
Recommenders code it calls was most of a first step's time (about 15 of 16.6 s for `ple`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from core.errors import InputError, Stopped
from ranking import data, distribute, preemption


def make_replica_step(run):
    """One replica's training step on a batch (features, labels); returns {loss, <task>...,
    [regularization,] rows} as float32 scalars (the losses already divided by the global
    batch; the regularization penalty by the replicas, `ranking.regularization`)."""
    import tensorflow as tf

    from ranking import regularization
    from ranking.metabalance import add_gradients

    model, optimizer, balance = run.model, run.optimizer, run.balance
    variables = model.trainable_variables
    shared = model.shared_variables() if balance is not None else []
    shared_ids = {id(v) for v in shared}
    others = [v for v in variables if id(v) not in shared_ids]
    penalties = run.config.model.regularization
    regularized = penalties.any_penalty
    matrices = regularization.dense_matrices(model) if penalties.l2_dense else None

    def replica_step(batch):
        with tf.GradientTape(persistent=balance is not None) as tape:
            losses = model.task_losses(batch, training=True)
            if regularized:
                penalty = regularization.penalty(model, batch[0], penalties, matrices)
            total = tf.add_n(list(losses.values()) + ([penalty] if regularized else []))
        if balance is None:
            gradients = tape.gradient(total, variables)
            optimizer.apply_gradients(zip(gradients, variables))
        else:
            shared_gradients, other_gradients = balance.gradients(tape, losses, shared, others)
            if regularized:  # the penalty's own gradient, unbalanced
                extra = tape.gradient(penalty, shared + others)
                merged = [add_gradients(g, e) for g, e in
                          zip(shared_gradients + other_gradients, extra)]
            else:
                merged = shared_gradients + other_gradients
            optimizer.apply_gradients([(g, v) for g, v in zip(merged, shared + others)
                                       if g is not None])
        extra_losses = {"regularization": penalty} if regularized else {}
        return {"loss": total, **losses, **extra_losses,
                "rows": tf.cast(tf.size(batch[1]["click"]), tf.float32)}

    return replica_step


def make_nde_replica_step(run):
    """ORCA's NDE-only step of a masked batch (--mask_scope=batch, `ranking.orca`): the NDE
    loss of the masked forward, applied by the run's NDE optimizer to the NDE variables alone
    (with --l2_dense or --weight_decay, their own penalty added, as the authors' NDE optimizer
    decays its parameters); returns {nde_masked_step} (float32 scalar)."""
    import tensorflow as tf

    from ranking import orca, regularization

    model, optimizer = run.model, run.nde_optimizer
    variables = model.network.get_layer("orca").nde_step_variables
    penalties = run.config.model.regularization

    def replica_step(batch):
        with tf.GradientTape() as tape:
            loss = orca.nde_step_loss(model, batch)
            if penalties.l2_dense or penalties.weight_decay:
                loss += regularization.variables_penalty(variables, penalties)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return {"nde_masked_step": loss}

    return replica_step


def _reduced(strategy, replica_step, batch):
    import tensorflow as tf

    per_replica = strategy.run(replica_step, args=(batch,))
    # Each replica's loss is already divided by the global batch: the sum is the loss.
    return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items()}


def epoch_dataset(config, inputs, spec, epoch: int, batch_size: int, shard=None):
    """The (features, labels) batches of a training epoch of `inputs` (`ranking.data.Inputs`),
    in the order of (seed, epoch) (`ranking.data`)."""
    return data.labelled_dataset(
        inputs.train, inputs.labeler, spec, batch_size, seed=config.seed, epoch=epoch,
        shuffle_buffer=config.shuffle_buffer, allow_unclicked_dwell=config.allow_unclicked_dwell,
        shard=shard, days=inputs.train_days, cache=inputs.train_cache)


def single_worker_batches(config, inputs, spec, strategy, epoch: int, skip: int):
    """An iterator of one worker's batches of an epoch after its first `skip` (every replica's
    share of each, with a mirrored strategy)."""
    dataset = epoch_dataset(config, inputs, spec, epoch, config.batch_size)
    if config.steps_per_epoch:
        dataset = dataset.take(config.steps_per_epoch)
    dataset = dataset.skip(skip)
    if inputs.train_cache is None:  # batches from memory are made fast: no buffer on top
        dataset = data.read_ahead(dataset, config.batch_size, config.read_ahead_mb << 20)
    return iter(strategy.experimental_distribute_dataset(dataset))


def _synchronous_batches(run, epoch: int, skip: int):
    """(distributed iterator of the epoch's remaining batches, steps in the epoch or None)."""
    import tensorflow as tf

    config, strategy = run.config, run.strategy
    if run.workers == 1:
        ahead, run.inputs.first_epoch = run.inputs.first_epoch, None
        if ahead is not None and (epoch, skip) == (0, 0):
            return ahead, None
        return single_worker_batches(config, run.inputs, run.spec, strategy, epoch, skip), None
    mode = config.input_sharding
    order = distribute.epoch_file_order(len(run.train_source.files), config.seed, epoch)
    steps = distribute.synchronous_steps(run.rows_per_file, order, run.workers, mode,
                                         config.batch_size, config.steps_per_epoch)
    if steps == 0:
        raise InputError("the training input yielded no batch", file=config.train)

    def worker_dataset(context: tf.distribute.InputContext):
        shard = distribute.Shard(context.input_pipeline_id, context.num_input_pipelines, mode)
        # Files: each worker reads its files in batches of its share of the global batch.
        batch = config.batch_size // run.workers if mode == "files" else config.batch_size
        dataset = epoch_dataset(config, run.inputs, run.spec, epoch, batch, shard)
        dataset = dataset.take(steps).skip(skip)
        local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
        if local_replicas > 1:  # each local replica takes one piece of the worker's batch
            dataset = dataset.rebatch(context.get_per_replica_batch_size(config.batch_size))
        return dataset

    return iter(strategy.distribute_datasets_from_function(worker_dataset)), steps


def final_barrier(strategy) -> None:
    """Returns once every worker of `strategy` has called it (an all-reduce of ones), before
    the process exits. A peer that completed its side of the all-reduce may exit while this
    task still fetches its part (seen once in CI: "Connection reset by peer" on the chief,
    after its metrics were written), so a peer's leaving is not an error here: nothing is
    left to do, and a task that failed says so by its own exit status."""
    import tensorflow as tf

    @tf.function(autograph=False)
    def all_reduce():
        ones = strategy.run(lambda: tf.ones([], tf.float32))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)

    try:
        all_reduce()
    except distribute.peer_error_types() as error:
        print(f"note: a peer left the cluster during the final barrier "
              f"({type(error).__name__}); this task's work was done", file=sys.stderr,
              flush=True)


# The key of a cluster's step losses that counts the tasks asked to stop (`synchronous_steps`).
STOP_REQUESTS = "stop_requests"


def synchronous_steps(run):
    """`run_batches(batches, first_step, stop=None)`: a generator that takes each batch's
    training step (and, for ORCA with --mask_scope=batch, the NDE-only step of a masked batch)
    and yields its losses; `first_step` is the global step number of the first batch. On a
    multi-worker cluster the losses also hold STOP_REQUESTS: the replicas whose task's `stop`
    (`ranking.preemption.StopRequest`) was set when it took the step, the same number on
    every task (summed over the replicas, so only > 0 means anything). Made once per run, so
    that the refit pass reuses the traced step of training."""
    if run.synchronous_steps is None:
        run.synchronous_steps = _make_synchronous_steps(run)
    return run.synchronous_steps


def _make_synchronous_steps(run):
    import tensorflow as tf

    strategy = run.strategy
    replica_step = make_replica_step(run)
    # The tasks of a cluster carry their stop requests in each step's all-reduce, so that all
    # end after the same step (`ranking.preemption`).
    carries_stops = run.workers > 1

    @tf.function(reduce_retracing=True, autograph=False)
    def step(batch, stop_requested=None):
        losses = _reduced(strategy, replica_step, batch)
        if stop_requested is not None:
            requests = strategy.run(tf.identity, args=(stop_requested,))
            losses[STOP_REQUESTS] = strategy.reduce(tf.distribute.ReduceOp.SUM, requests,
                                                    axis=None)
        return losses

    masked_batches = run.nde_optimizer is not None
    if masked_batches:
        from ranking import orca

        orca_config = run.config.model.orca
        nde_replica_step = make_nde_replica_step(run)

        @tf.function(reduce_retracing=True, autograph=False)
        def nde_step(batch):
            return _reduced(strategy, nde_replica_step, batch)

    def run_batches(batches, first_step: int, stop=None):
        for number, batch in enumerate(batches, start=first_step):
            losses = (step(batch, tf.constant(1.0 if stop else 0.0)) if carries_stops
                      else step(batch))
            # The decision is the host's, keyed by the global step: every worker makes the
            # same one, and a resumed run the one an uninterrupted run made.
            if masked_batches and orca.batch_masked(orca_config, number):
                losses = {**losses, **nde_step(batch)}
            yield losses

    return run_batches


def train_synchronous(run, say) -> list[float]:
    """Trains the remaining epochs of `run` (a `ranking.training.Run`); returns examples/s of
    each epoch after its first step."""
    run_batches = synchronous_steps(run)

    # (A collective op that fails because a peer left is one line: training's
    # `distribute.peer_failures_named`.)
    def run_steps(batches, steps, stop):
        yield from run_batches(batches, int(run.global_step) + 1, stop)

    return _epochs(run, say, lambda epoch, skip: _synchronous_batches(run, epoch, skip),
                   run_steps, stop_rule="agreed" if run.workers > 1 else "step")


def refit_on_validation(run, say) -> dict:
    """`--refit=validation` (`ranking.selection`): the best checkpoint trains one pass over the
    validation window and is written as the final one; returns final.json's summary. The
    optimizer is as training left it; no rolling checkpoint is written."""
    import tensorflow as tf

    from ranking import model_dir as model_dir_lib
    from ranking import orca, selection_files

    config, model_dir = run.config, run.model_dir
    # What best/ holds (best.json; the selection state's best but after a kill between best/
    # and the checkpoint that records it), so final.json names the weights the pass starts from.
    summary = selection_files.read_best(model_dir) or run.validator.selection.summary()
    done = selection_files.read_final(model_dir)
    if done is not None:
        return done  # a finished run started again: the pass of this best/ is made already
    best = selection_files.require_best_checkpoint(model_dir)
    model_dir_lib.read_checkpoint(tf.train.Checkpoint(model=run.model), best)
    # The pass trains as training did, with the debiased head (a best/ that --refit=none
    # rewrote with the raw head reads back with the gate at 0).
    if config.model.uses_orca:
        orca.set_served_head(run.model.network, "debiased")
    source, labeler, days = run.inputs.validation
    # Its own shuffle order: the epoch number after every training epoch's.
    dataset = data.labelled_dataset(
        source, labeler, run.spec, config.batch_size, seed=config.seed,
        epoch=config.selection.max_epochs, shuffle_buffer=config.shuffle_buffer,
        allow_unclicked_dwell=config.allow_unclicked_dwell, days=days)
    started, steps, rows = time.perf_counter(), 0, 0
    trained_to = int(run.global_step)  # where training left the optimizer, for `read_final`
    batches = iter(run.strategy.experimental_distribute_dataset(dataset))
    for losses in synchronous_steps(run)(batches, int(run.global_step) + 1):
        steps += 1
        rows += int(losses["rows"])
    if steps == 0:
        raise InputError("the validation window yielded no batch for the refit pass",
                         file=config.selection.validation or config.train)
    final = {"from_step": summary["step"], "from_epoch": summary["epoch"], "steps": steps,
             "rows": rows, "window": "validation", "after_step": trained_to}
    head = apply_served_head(run, say)  # after the pass, which trains as training did
    if head is not None:
        final["orca_served_head"] = head
    if run.chief:
        selection_files.write_final(model_dir, run.model, final)
    say(f"refit: the best checkpoint (step {summary['step']}) trained one pass over the "
        f"validation window: {steps} steps, {rows:,} rows in "
        f"{time.perf_counter() - started:.1f} s")
    return final


def apply_served_head(run, say) -> str | None:
    """--orca_serve (`ranking.orca`) once selection has chosen: makes an ORCA model with a
    validation window serve the head chosen at the best validation (`validated`: the raw one
    when the debiased head was worse there; `debiased`: always the debiased one); returns that
    head, or None for a model without ORCA or without a validation window."""
    from ranking import orca

    if not run.config.model.uses_orca or run.validator is None:
        return None
    gain = run.validator.selection.best_head_gain
    validated = run.config.model.orca.serve == "validated"
    head = orca.choose_head(gain) if validated else "debiased"
    orca.set_served_head(run.model.network, head)
    if validated:
        say(f"ORCA: at the best validation the debiased head's mean DT gain over the raw head "
            f"is {gain:+.2f} %: serving the {head} head"
            + (" (--orca_serve=debiased serves the debiased one)" if head == "raw" else ""))
    return head


def serve_best_with_head(run, say) -> None:
    """--refit=none with --orca_serve=validated: the best checkpoint read back, given the head
    `apply_served_head` chooses and written again (best.json says which head). Every task of
    a synchronous cluster reads its copy of the best checkpoint (the chief's, or the one in
    its scratch directory) and takes part in the write (a collective one, which may aggregate
    variables over the tasks); only the chief's is kept."""
    import tensorflow as tf

    from ranking import model_dir as model_dir_lib
    from ranking import selection_files

    if not run.config.model.uses_orca or run.config.model.orca.serve != "validated":
        return  # the best checkpoint serves the debiased head it was written with
    scratch = None if run.chief else run.validator.scratch
    best = selection_files.require_best_checkpoint(run.model_dir, scratch)
    model_dir_lib.read_checkpoint(tf.train.Checkpoint(model=run.model), best)
    head = apply_served_head(run, say)
    summary = dict(run.validator.selection.summary(), orca_served_head=head)
    selection_files.write_best(run.model_dir, run.model, summary, scratch)


def _epochs(run, say, open_epoch, run_steps, stop_rule: str = "step") -> list[float]:
    """The loop over epochs and steps shared by both strategies' loops: progress, summaries,
    checkpoints every --checkpoint_every steps and at each epoch's end; with a validation
    window, validation (each epoch's end or every --validate_every steps, each followed by a
    checkpoint), early stopping and --max_epochs (`ranking.selection`). In a single process,
    SIGTERM or Ctrl-C stops it, checkpointed (`ranking.preemption`), after the step in flight
    (`stop_rule` "step": one process); on every task after the first step that carried a
    task's request ("agreed": the tasks of a multi-worker cluster); or after the steps already
    scheduled, which `run_steps` still yields ("drained": a parameter-server cluster's
    chief)."""
    stops_agreed = stop_rule == "agreed"
    with preemption.checkpointing() as stop:
        stopped_together = _epoch_loop(run, say, open_epoch, run_steps, stop, stop_rule)
        throughputs = stopped_together.throughputs
        # Read once: a signal from here on is one after the loop (a cluster's tasks must not
        # see one such signal two ways).
        asked = bool(stop)
        if asked and stops_agreed and not stopped_together.agreed:
            # Asked after the loop's last step, which no step carried: as outside the loop.
            preemption.end_at_once(stop)
        if asked:  # (still within the block: another signal does not end the save)
            _checkpoint_now(run)
            epoch, batches = int(run.epoch), int(run.batch_in_epoch)
            where = (f"epoch {epoch + 1}, {batches} batches into it" if batches
                     else f"after epoch {epoch}" if epoch else "before its first step")
            who = ("another task of the cluster was asked to stop, so this one stopped"
                   if stop.by_peer else stop.signal_name)
            raise Stopped(f"{who} at global step {int(run.global_step)} ({where}); "
                          f"its checkpoint is {checkpoint_of(run)}: the same command "
                          f"{'on every task ' if stops_agreed else ''}resumes from there",
                          status=preemption.status(stop))
    return throughputs


def checkpoint_of(run) -> str:
    """The newest checkpoint of the run as the chief keeps it (a worker writes its copy in a
    scratch directory, removed when the run ends)."""
    latest = run.manager.latest_checkpoint or ""
    if run.chief or not latest:
        return latest
    return os.path.join(run.model_dir, "checkpoints", os.path.basename(latest))


@dataclasses.dataclass
class _LoopEnd:
    """How `_epoch_loop` ended: examples/s of each whole epoch; `agreed`: a cluster's step
    carried a stop request, and every task stopped after it."""

    throughputs: list
    agreed: bool = False


def _checkpoint_now(run) -> None:
    """A checkpoint at the global step, unless the newest one is at it."""
    if not (run.manager.latest_checkpoint or "").endswith(f"ckpt-{int(run.global_step)}"):
        run.save()


def _epoch_loop(run, say, open_epoch, run_steps, stop, stop_rule="step") -> _LoopEnd:
    """`_epochs`' loop; on a `stop` request (`ranking.preemption.StopRequest`) it writes the
    checkpoint of the step it ended at and returns. `stop_rule` (`_epochs`): "agreed" counts
    only a request a step carried (the same on every task of the cluster:
    `synchronous_steps`); "drained" ends the epoch's steps when `run_steps` does, which stops
    scheduling steps once `stop` is set."""
    import tensorflow as tf

    config, validator = run.config, run.validator
    every = config.selection.validate_every if validator is not None else None
    epochs = config.selection.max_epochs if validator is not None else config.epochs
    stopped = validator is not None and validator.selection.stopped
    writer = (tf.summary.create_file_writer(f"{run.model_dir}/logs/train") if run.chief
              else tf.summary.create_noop_writer())
    show = config.progress if config.progress != "auto" else (
        "bar" if sys.stdout.isatty() else "epoch")
    if not run.chief:
        show = "none"
    throughputs = []
    agreed = False  # "agreed": a step carried a task's stop request

    def stopping(between_steps: bool = False) -> bool:
        if stop_rule == "agreed":
            return agreed
        # ("drained": the steps scheduled before the request are trained and counted first)
        return bool(stop) and (stop_rule != "drained" or not between_steps)

    while int(run.epoch) < epochs and not stopped and not stopping():
        epoch = int(run.epoch)
        skip = int(run.batch_in_epoch)
        batches, steps = open_epoch(epoch, skip)
        target = steps or int(run.steps_per_epoch) or config.steps_per_epoch or None
        bar = None
        if show == "bar":
            print(f"epoch {epoch + 1}/{epochs}")
            bar = tf.keras.utils.Progbar(target, stateful_metrics=["loss"], unit_name="step")
            if skip:
                bar.update(skip)
        epoch_started, epoch_rows, losses = time.perf_counter(), 0, {}
        warm = None  # (time, rows) after the first step, which includes tracing
        with writer.as_default():
            for step_losses in run_steps(batches, steps, stop):
                run.global_step.assign_add(1)
                run.batch_in_epoch.assign_add(1)
                step = int(run.global_step)
                step_losses = dict(step_losses)
                requests = step_losses.pop(STOP_REQUESTS, None)
                if requests is not None and float(requests) > 0:
                    agreed = True
                    stop.from_peer()  # (a task's own request stays its own)
                epoch_rows += int(step_losses.pop("rows"))
                if warm is None:
                    warm = (time.perf_counter(), epoch_rows)
                losses = {k: float(v) for k, v in step_losses.items()}
                if bar is not None:
                    bar.update(int(run.batch_in_epoch), values=[("loss", losses["loss"])])
                if step % config.log_every == 0:
                    for name, value in losses.items():
                        tf.summary.scalar(f"loss/{name}", value, step=step)
                    tf.summary.scalar("examples_per_second",
                                      epoch_rows / (time.perf_counter() - epoch_started), step=step)
                if validator is not None:
                    validator.selection.add_train_loss(losses["loss"])
                if every and step % every == 0:
                    stopped = validator.validate(step, epoch + 1)
                    run.save()
                    if stopped:
                        break
                elif step % config.checkpoint_every == 0:
                    run.save()
                if stopping(between_steps=True):  # (checkpointed before the input is closed)
                    _checkpoint_now(run)
                    break
        if stopped or stopping():  # stopped mid-epoch: the epoch's counters stay where it stopped
            break
        if int(run.batch_in_epoch) == 0:
            raise InputError("the training input yielded no batch", file=config.train)
        run.steps_per_epoch.assign(int(run.batch_in_epoch))
        run.epoch.assign_add(1)
        run.batch_in_epoch.assign(0)
        if validator is not None and not every:
            stopped = validator.validate(int(run.global_step), epoch + 1)
        run.save()
        now = time.perf_counter()
        seconds = now - epoch_started
        throughput = ((epoch_rows - warm[1]) / (now - warm[0])
                      if warm is not None and epoch_rows > warm[1] else float("nan"))
        throughputs.append(throughput)
        if show != "none":
            done = int(run.steps_per_epoch) - skip
            say(f"epoch {epoch + 1}/{epochs}: {done} steps in {seconds:.1f} s "
                f"({throughput:,.0f} examples/s after the first step), "
                f"global step {int(run.global_step)}, last batch's "
                + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
    return _LoopEnd(throughputs, agreed)


def train_parameter_server(run, say) -> list[float]:
    """Trains the remaining epochs of `run` on a parameter-server cluster, from the chief
    (module docstring); returns examples/s of each epoch after its first step."""
    import tensorflow as tf

    config, strategy = run.config, run.strategy
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    replica_step = make_replica_step(run)
    workers = run.workers
    if config.progress != "none":
        encoder = run.model.network.get_layer("features")
        # A partitioned table is a ShardedVariable, with one variable per shard.
        shards = sorted({len(getattr(layer.embeddings, "variables", [None]))
                         for layer in encoder.embeddings.values()})
        say(f"parameter_server: {workers} worker(s), "
            f"{len(distribute.cluster_task()[2]['ps'])} ps; embedding "
            f"tables in {'/'.join(str(s) for s in shards)} shard(s)")

    @tf.function(autograph=False)
    def worker_step(iterator):
        return _reduced(strategy, replica_step, next(iterator))

    def open_epoch(epoch, skip):
        # Each step is one worker's batch of --batch_size rows: one process's step count.
        steps = distribute.synchronous_steps(run.rows_per_file, None, 1, "rows",
                                             config.batch_size, config.steps_per_epoch)

        def worker_dataset(_context=None):
            index = tf.distribute.coordinator.experimental_get_current_worker_index()
            shard = distribute.Shard(index, workers, "files")
            # A worker whose shard ends first starts it again: the epoch is a number of steps.
            return epoch_dataset(config, run.inputs, run.spec, epoch, config.batch_size,
                                 shard).repeat().skip(skip // workers)

        @tf.function(autograph=False)
        def per_worker_dataset():
            return strategy.distribute_datasets_from_function(worker_dataset)

        iterator = iter(coordinator.create_per_worker_dataset(per_worker_dataset))
        return iterator, steps

    def run_steps(iterator, steps, stop):
        return _scheduled(run, coordinator, worker_step, iterator, steps, stop)

    return _epochs(run, say, open_epoch, run_steps, stop_rule="drained")


def _scheduled(run, coordinator, worker_step, iterator, steps: int, stop=None):
    """Schedules the epoch's remaining steps and yields their losses as they finish; waits for
    every scheduled step before a checkpoint, so that it holds them all. Once `stop` is set
    it schedules no more, and yields the steps scheduled before (all trained)."""
    config = run.config
    pending = []
    for _ in range(int(run.batch_in_epoch), steps):
        if stop:
            break
        pending.append(coordinator.schedule(worker_step, args=(iterator,)))
        next_step = int(run.global_step) + len(pending)
        if next_step % config.checkpoint_every == 0 or len(pending) >= 64:
            _join(coordinator, stop)
            for result in pending:
                yield result.fetch()
            pending = []
    _join(coordinator, stop)
    for result in pending:
        yield result.fetch()


# Seconds a parameter-server chief asked to stop waits for the steps it scheduled: a whole job
# evicted stops the workers too, and the coordinator would wait for them to come back.
DRAIN_SECONDS = 10.0


def _join(coordinator, stop) -> None:
    """`coordinator.join()`; once `stop` is set, the process ends (one line, no checkpoint) if
    the scheduled steps do not finish within DRAIN_SECONDS of seeing it."""
    deadline = None
    while not coordinator.done():  # (raises a failed step's error, as join does)
        if stop and deadline is None:
            deadline = time.monotonic() + DRAIN_SECONDS
        if deadline is not None and time.monotonic() > deadline:
            preemption.end_at_once(stop, f"the steps scheduled before it did not finish within "
                                         f"{DRAIN_SECONDS:g} s (were the workers stopped too?)")
        time.sleep(0.002)
    coordinator.join()
