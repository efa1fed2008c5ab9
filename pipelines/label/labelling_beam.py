"""The labelling job on Apache Beam (`python -m pipelines.label --engine=beam`).

It writes what the local engine (`pipelines.label.labelling.label_logs`) writes, shard for shard and
row for row: the same shard names, formats, columns and counts, because both label with
`core.labeler.Labeler` and write through `pipelines.label.labelling.write_shards`. What differs is
where rule T2's counts come from: here they are joined by key across workers, so the input can
be as large as the runner (Dataflow, Flink, Spark; DirectRunner by default) can read.

    Files ─ Reshuffle ─ CountUserDays ─┬─ counts:  user fp -> (day, clicks, file index),
                                       │           one per (user, UTC day) of each file
                                       └─ days:    rows per UTC day of the input (summed)
                                                   -> HeldDays: `core.labeler.held_days`
    user_days/part-*.csv ─ ReadHistory:  user fp -> (day, clicks) of the artifact's user table,
                                         only days a window needs and the input does not hold
    {counts, history} ─ CoGroupByKey by user ─ BatchElements ─ Windows: `window_clicks`
          on each batch of users (the local engine's code) -> file index -> (fp[], day[], window[])
    {windows, file} ─ CoGroupByKey by file ─ LabelFile: the file is read again, labelled by a
          `Labeler` built from that file's (user, day) windows, and written as its shard

Scaling: rows never leave the worker that reads their file; the shuffles carry one record per
(user, day, file) of the input and per needed (user, day) of the artifact. A `LabelFile` worker
holds one file's (user, day) windows (at most one per row of the file), plus the artifact's
stats and item table (one row per item), loaded once per worker process. Each file is read
twice (count, then label), as in the local engine. Workers write their shards straight into
the output's temporary directory, so on a distributed runner `--output_dir` must be on a file
system every worker shares (as for `pipelines.score`).

labels.png: each file's summary carries a fixed-size histogram of ln(dwell) (as the local
engine's), so the driver's memory does not grow with the input and the picture is the same.
"""

from __future__ import annotations

import os
import pickle
import shutil

import numpy as np

from core import label_rules, log_diagnosis, log_files, log_schema, logs, stats_artifact
from core.errors import reraised_from_workers
from core.labeler import (
    Labeler,
    UserDays,
    count_source,
    day_rows_of,
    held_days,
    short_artifact_days,
    t2_gap_days,
    user_fingerprint,
    window_clicks,
)
from pipelines.label import labelling

# Users per call of `window_clicks` (its cost is per call: a few sorts and searches).
USERS_PER_BATCH = (64, 8192)


def label_logs_beam(pattern: str, stats_dir: str, output_dir: str, *, fmt: str = "tfrecord",
                    rules: label_rules.RuleConfig | None = None, allow_unclicked_dwell: bool = False,
                    batch_size: int = 8192, compress: bool = True,
                    beam_args: list[str] | None = None, finish=None) -> labelling.LabelSummary:
    """Labels the logs of `pattern` with the stats artifact `stats_dir` into `output_dir` on
    Apache Beam; same arguments and result as `labelling.label_logs`, plus `beam_args` (Beam
    pipeline options such as ['--runner=FlinkRunner', ...] or ['--direct_num_workers=2',
    '--direct_running_mode=multi_processing']).

    Bad input found by a worker (a malformed row) comes back as the InputError naming its
    file, row and column; the output directory then does not appear."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    source = labelling.open_input(pattern, fmt, stats_dir)
    stats_dir = os.path.abspath(stats_dir)  # workers run elsewhere: not relative to this cwd
    artifact = stats_artifact.load_artifact(stats_dir, user_days=False)  # checked here, before workers
    rules = rules or artifact.rules
    job = dict(files=[(f.path, f.format, f.gzip) for f in source.files],
               names=labelling.shard_names(source.files, fmt, compress),
               schema=source.schema.to_json(), stored=source.stored_types,
               type_origins=dict(source.type_origins), stats=stats_dir,
               rules=rules, fmt=fmt, compress=compress, batch_size=batch_size,
               allow_unclicked_dwell=allow_unclicked_dwell,
               num_bins=artifact.num_bins, artifact_day_rows=artifact.day_rows)
    history = stats_artifact.table_shards(os.path.join(stats_dir, "user_days"))
    with labelling.output_directory(output_dir, [f.path for f in source.files]) as tmp:
        results = os.path.join(tmp, ".results")
        os.makedirs(results)
        with reraised_from_workers():
            with beam.Pipeline(options=PipelineOptions(beam_args or [])) as pipeline:
                _build(beam, pipeline, job, history, tmp, results)
        summary = _merge_results(results, job)
        shutil.rmtree(results)
        if finish is not None:
            finish(tmp, summary)
    return summary


def _build(beam, pipeline, job, history_shards, tmp, results):
    """The pipeline of the module docstring."""
    window_days = job["rules"].light_user_days
    files = (pipeline
             | "Files" >> beam.Create(list(enumerate(job["files"])))
             | "Reshuffle" >> beam.Reshuffle())
    counted = (files
               | "CountUserDays" >> beam.FlatMap(_count_file, job)
               .with_outputs("days", main="counts"))
    held = beam.pvalue.AsSingleton(counted.days
                                   | "DayRows" >> beam.CombinePerKey(sum)
                                   | "AllDays" >> beam.combiners.ToList()
                                   | "HeldDays" >> beam.Map(_held, job["artifact_day_rows"],
                                                            window_days))
    history = (pipeline
               | "HistoryShards" >> beam.Create(history_shards)
               | "ReshuffleHistory" >> beam.Reshuffle()
               | "ReadHistory" >> beam.FlatMap(_read_history, held, window_days))
    windows = ({"counts": counted.counts, "history": history}
               | "JoinByUser" >> beam.CoGroupByKey()
               | "LabelledUsers" >> beam.FlatMap(_labelled_user)
               | "BatchUsers" >> beam.BatchElements(min_batch_size=USERS_PER_BATCH[0],
                                                    max_batch_size=USERS_PER_BATCH[1])
               | "Windows" >> beam.FlatMap(_windows, held, window_days))
    _ = ({"windows": windows, "file": files}
         | "JoinByFile" >> beam.CoGroupByKey()
         | "LabelFile" >> beam.Map(_label_file, job, tmp, results, held))


# Workers --------------------------------------------------------------------------------------
def _source(job, index) -> logs.LogSource:
    """A reader of input file `index` alone, with the schema the driver inferred for all."""
    path, kind, gzipped = job["files"][index]
    return logs.LogSource([log_files.LogFile(path, kind, gzipped)],
                          log_schema.LogSchema.from_json(job["schema"]), job["stored"],
                          type_origins=job["type_origins"])


def _count_file(element, job):
    """One file -> (user fp, (day, clicks, file index)) per (user, UTC day) with an impression
    in it (clicks may be 0: the day still counts for that user), and ('days', (day, rows)) per
    UTC day of the file."""
    from apache_beam import pvalue

    index, _ = element
    with log_diagnosis.input_errors_for_beam():
        counted = count_source(_source(job, index), job["batch_size"],
                                      job["allow_unclicked_dwell"])
        counts = counted.user_days
    for day, rows in sorted(day_rows_of(counted.file_day_rows).items()):
        yield pvalue.TaggedOutput("days", (day, rows))
    for fp, day, clicks in zip(counts.user_fp.tolist(), counts.day.tolist(),
                               counts.count.tolist()):
        yield fp, (day, clicks, index)


def _held(day_rows, artifact_day_rows, window_days):
    """[(UTC day, rows of the input)] -> {days: the input's days, held: those whose counts come
    from the input, left: {day: (input rows, artifact rows)} of the others (`held_days`),
    short: the days the artifact saw whole yet fewer rows of (`short_artifact_days`), gap:
    the days T2's windows reach that neither holds (`t2_gap_days`)}."""
    held, left = held_days(dict(day_rows), artifact_day_rows)
    return {"days": sorted(day for day, _ in day_rows), "held": sorted(held), "left": left,
            "short": short_artifact_days(dict(day_rows), artifact_day_rows),
            "gap": t2_gap_days(dict(day_rows), artifact_day_rows, window_days)}


def _read_history(path, held, window_days):
    """One shard of the artifact's user table -> (user fp, (day, clicks)) for the days a T2
    window of the input reaches and the input does not hold (`_held`: those count from it)."""
    days = np.asarray(held["days"], np.int64)
    if not len(days):
        return
    with log_diagnosis.input_errors_for_beam():
        table = stats_artifact.read_table_shard(path, stats_artifact.USER_DAY_COLUMNS)
    day = table["day"]
    keep = ((day >= days[0] - window_days + 1) & (day <= days[-1])
            & ~np.isin(day, np.asarray(held["held"], np.int64)))
    if not keep.any():
        return
    fps = user_fingerprint(table["user_id"][keep]).numpy()
    for fp, d, clicks in zip(fps.tolist(), day[keep].tolist(), table["clicks"][keep].tolist()):
        yield fp, (d, clicks)


def _labelled_user(joined):
    """(fp, {counts, history}) -> (fp, counts, history) for users of the input only."""
    fp, groups = joined
    counts = list(groups["counts"])
    if counts:
        yield fp, counts, list(groups["history"])


def _windows(users, held, window_days):
    """A batch of users with all their counts -> (file index, (fp[], day[], window[])): each
    (user, day) of each file with the user's clicks over the `window_days` days ending that
    day, by `window_clicks` (the local engine's definition)."""
    own = np.asarray([(fp, day, clicks, index) for fp, counts, _ in users
                      for day, clicks, index in counts], np.int64).reshape(-1, 4)
    past = np.asarray([(fp, day, clicks) for fp, _, history in users
                       for day, clicks in history], np.int64).reshape(-1, 3)
    # A (user, day) may span files: its count is the sum over them.
    totals, of_total = UserDays.of(own[:, 0], own[:, 1], own[:, 2]).summed()
    window = window_clicks(totals, set(held["held"]),
                           UserDays.of(past[:, 0], past[:, 1], past[:, 2]),
                           window_days).count[of_total]
    files = own[:, 3]
    for index in np.unique(files).tolist():
        mine = files == index
        yield index, (own[mine, 0], own[mine, 1], window[mine])


_ARTIFACTS: dict = {}


def _artifact(path: str) -> stats_artifact.StatsArtifact:
    """The stats artifact without its user table, loaded once per worker process."""
    if path not in _ARTIFACTS:
        _ARTIFACTS[path] = stats_artifact.load_artifact(path, user_days=False)
    return _ARTIFACTS[path]


def _label_file(keyed, job, tmp, results, held):
    """(file index, {windows, file}) -> the file's shard in `tmp` and its counts (a pickled
    LabelSummary, with the days `held` left to the artifact) in `results`."""
    index, grouped = keyed
    parts = list(grouped["windows"])
    window = UserDays.of(*(np.concatenate([p[k] for p in parts] + [np.zeros(0, np.int64)])
                           for k in range(3)))
    source = _source(job, index)
    summary = labelling.LabelSummary(bin_counts=np.zeros(job["num_bins"], np.int64),
                                     t2_days_from_artifact=held["left"],
                                     short_artifact_days=held["short"],
                                     t2_gap_days=held["gap"])
    with log_diagnosis.input_errors_for_beam():
        labeler = Labeler(_artifact(job["stats"]), window, job["rules"])
        labelling.write_shards(source, labeler, tmp, job["names"], summary, fmt=job["fmt"],
                               compress=job["compress"],
                               allow_unclicked_dwell=job["allow_unclicked_dwell"],
                               batch_size=job["batch_size"])
    # Written under a temporary name and renamed: a retried bundle never leaves half a file.
    path = os.path.join(results, f"{index:05d}.pkl")
    with open(path + ".tmp", "wb") as handle:
        pickle.dump(summary, handle)
    os.replace(path + ".tmp", path)


def _merge_results(results, job) -> labelling.LabelSummary:
    summary = labelling.LabelSummary(bin_counts=np.zeros(job["num_bins"], np.int64))
    for index in range(len(job["files"])):
        with open(os.path.join(results, f"{index:05d}.pkl"), "rb") as handle:
            summary.add(pickle.load(handle))
    summary.files.sort()
    return summary
