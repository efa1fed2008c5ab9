"""What training tells its user about the input before it trains: the `note:` lines of
`ranking.train` (printed by `ranking.training` on the chief) for what may mislead on real logs.
Each function returns text and prints nothing, so each is tested on hand values.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Collection

from core.label_rules import utc_date
from core.labeler import day_rows_of, short_artifact_note, t2_days_note, t2_gap_note
from core.log_schema import LABEL_COLUMNS

# A column named like an id: `author_id`, `ID`, `musicId`, `videoID` (not `valid`, `grid`).
_ID_NAME = re.compile(r"(^|_)(id|ID|Id)$|[a-z0-9](Id|ID)$")


def label_column_notes(schema, rules) -> list[str]:
    """A note for training logs that carry the label job's columns (its shards): training
    labels every row again with the stats artifact's rules (`rules`, a `RuleConfig`), so labels
    the label job made with other thresholds (its overrides) are not the ones trained on."""
    present = [name for name in LABEL_COLUMNS if name in schema.dtypes]
    if not present:
        return []
    t1 = "x_l" if rules.t1_threshold is None else f"{rules.t1_threshold:g} s"
    return [f"note: the training logs carry label columns ({', '.join(present)}): training "
            "labels every row again with the stats artifact's rules (min_dwell "
            f"{rules.min_dwell:g} s, T1 {t1}, T2 {rules.light_user_clicks} clicks in "
            f"{rules.light_user_days} days, T3 {rules.min_item_records} records) and does not "
            "read them, so labels made with other thresholds (the label job's overrides) are "
            "not the ones trained on"]


def outcome_feature_notes(spec, artifact) -> list[str]:
    """Notes for the model's features that the statistics job found to be an outcome of the
    click (`core.data_doubts.outcome_features`; it warned too): trained on, they hand the model
    its label, and serving has no such value before the click."""
    from core.data_doubts import outcome_features

    found = outcome_features({"rows": artifact.rows, "clicks": artifact.clicks,
                              "numeric_features": artifact.numeric_features})
    return [f"note: {found[f.name]} (the statistics job's warning), and serving has no such "
            "value before the click: exclude it in the feature config "
            '({"features": {"' + f.name + '": {"exclude": true}}})'
            for f in spec.features if f.name in found]


def numeric_id_notes(spec) -> list[str]:
    """Notes for numeric features named like ids (`author_id`): integer ids read as numbers
    are log1p-transformed and standardized as magnitudes, which an id is not. A name is only a
    hint, so this is a note, not an error."""
    return [f"note: feature column '{feature.name}' is named like an id but is read as a "
            "number (log1p, standardized): if it is an id, make it categorical in the feature "
            f'config ({{"features": {{"{feature.name}": {{"type": "categorical"}}}}}})'
            for feature in spec.features
            if feature.kind == "numeric" and _ID_NAME.search(feature.name)]


# A hashed feature is noted when at least this share of its values share their embedding row
# with another value (1 - exp(-values / buckets): from about 0.29 values per bucket). Noting only
# past one value per bucket left a quarter to three fifths of a log's ids sharing rows unsaid.
SHARED_ROWS_NOTED = 0.25


def id_bucket_notes(spec, clicked_users: int | None, clicked_items: int | None,
                    feature_values: dict | None = None) -> list[str]:
    """Notes for categorical features hashed into too few buckets for the stats window's
    values: `user_id` / `item_id` against its users with a click / items with a clicked dwell
    (the stats artifact's counts; None in artifacts made before them), any other hashed feature
    against its distinct values (`feature_values`, stats.json's {name: {distinct, at_least}}).
    Noted when at least `SHARED_ROWS_NOTED` of the values share their embedding row with
    another (1 - exp(-values / buckets) of them); the suggested bucket count, a power of 2 of
    at least 4 x values, brings that below a quarter."""
    counts = {"user_id": (clicked_users, False, "users with a click"),
              "item_id": (clicked_items, False, "items with a clicked dwell")}
    for name, entry in (feature_values or {}).items():
        counts[name] = (entry["distinct"], entry["at_least"], "distinct values")
    notes = []
    for feature in spec.features:
        ids, at_least, what = counts.get(feature.name, (None, False, ""))
        buckets = feature.hash_buckets
        if (feature.kind != "categorical" or not ids or not buckets
                or 1 - math.exp(-ids / buckets) < SHARED_ROWS_NOTED):
            continue
        name = feature.name
        suggested = 1 << int(ids * 4 - 1).bit_length()  # a power of 2 >= 4 x values
        notes.append(
            f"note: the stats window has {'at least ' if at_least else ''}{ids:,} {what} for "
            f"{buckets:,} hash buckets of {name}: {1 - math.exp(-ids / buckets):.0%} of them "
            f'share an embedding row; raise them in the feature config ({{"features": {{"{name}": '
            f'{{"hash_buckets": {suggested}}}}}}}, {suggested * feature.embedding_dim * 4 / 2**20:,.1f} '
            "MB of table)")
    return notes


# A file is read in its own order, its rows mixed only within --shuffle_buffer: one holding many
# buffers' worth (a public dump sorted by time or by user) gives batches from a narrow slice.
LARGE_FILE_BUFFERS = 8


def input_order_note(paths: list[str], rows_per_file, shuffle_buffer: int) -> str | None:
    """A note for training files of more than LARGE_FILE_BUFFERS x `shuffle_buffer` rows
    (`rows_per_file`: int [files], aligned with `paths`), or None (also with no shuffle)."""
    large = [(path, int(rows)) for path, rows in zip(paths, rows_per_file)
             if shuffle_buffer > 0 and rows > LARGE_FILE_BUFFERS * shuffle_buffer]
    if not large:
        return None
    path, rows = max(large, key=lambda pair: pair[1])
    return (f"note: {len(large)} training file(s) hold over {LARGE_FILE_BUFFERS} x "
            f"--shuffle_buffer={shuffle_buffer:,} rows (the largest: {path}, {rows:,} rows); a "
            "file's rows mix only within the buffer, so if one is sorted (by time or by user), "
            "split it into files (e.g. one a day) or raise --shuffle_buffer")


# A held-out window with fewer rows a day than this share of the training days' mean is a sliver
# (logs cut at a local midnight end with a few hours of a UTC day).
SLIVER_SHARE = 0.1


def validation_window_line(file_day_rows: dict, validation_days: int) -> str:
    """What --validation_days held out: the window's UTC days and rows against the training
    days' (`file_day_rows`: {(file index, UTC day): rows} of the training input), with a note
    when the window is a sliver of a day."""
    per_day = day_rows_of(file_day_rows)
    days = sorted(per_day)
    cutoff = days[-1] - validation_days + 1
    held_days = [day for day in days if day >= cutoff]  # days with rows, as `kept`
    held = sum(per_day[day] for day in held_days)
    kept = [day for day in days if day < cutoff]
    trained = sum(per_day[day] for day in kept)
    line = (f"validation window (--validation_days={validation_days}): {utc_date(cutoff)} to "
            f"{utc_date(days[-1])} UTC, {held:,} rows; training {utc_date(kept[0])} to "
            f"{utc_date(kept[-1])}, {trained:,} rows")
    typical = trained / len(kept)  # rows a training day that has rows
    if held / len(held_days) < SLIVER_SHARE * typical:
        line += (f"; note: {held / len(held_days):,.0f} rows a held-out day against "
                 f"{typical:,.0f} a training day (logs cut at a local midnight end with a sliver "
                 "of a UTC day): hold out one more day")
    return line


def input_overlap_notes(train_files, held_out: dict, window_files=(),
                        window_trained: bool = False,
                        window_is: str = "in --train's validation window") -> list[str]:
    """Notes for held-out logs whose files are training files too (the same real path; files
    as `LogFile`s): `train_files`, the files trained on (after a --validation_days split, those
    with training rows); `window_files`, those of the validation window (the --validation_days
    days, or the --validation logs: `window_is` says which), which selection chose on (and,
    `window_trained`, the refit pass trained on); `held_out`, {flag: files} of --eval and
    --validation. Their metrics then measure rows the model trained (or was selected) on."""
    train = {os.path.realpath(f.path) for f in train_files}
    window = {os.path.realpath(f.path) for f in window_files} - train
    notes = []
    for flag, files in held_out.items():
        shared = [f.path for f in files if os.path.realpath(f.path) in train]
        if shared:
            notes.append(f"note: {len(shared)} {flag} file(s) are --train files too ({shared[0]}"
                         f"{', ...' if len(shared) > 1 else ''}): their metrics measure rows the "
                         "model trained on")
        shared = [f.path for f in files if os.path.realpath(f.path) in window]
        if shared and flag != "--validation":  # the window itself
            notes.append(f"note: {len(shared)} {flag} file(s) are {window_is} "
                         f"({shared[0]}{', ...' if len(shared) > 1 else ''}): their metrics "
                         "measure rows the model was selected on"
                         + (" and the refit pass trained on" if window_trained else ""))
    return notes


# Logs cut at a local midnight share a UTC day with the next logs: at most 14 h of it (the
# largest time-zone offset), 58 % of a day. Held-out rows on the training's last UTC day count
# as a training day's only from this share of the fullest training day's rows on (the first
# and last UTC days of logs cut so are partial: a mean over them would lower the bar).
FULL_DAY_SHARE = 0.75


def days_before_or_of(train_day_rows: dict, day_rows: dict,
                      copied: Collection[int] = ()) -> list[int]:
    """The UTC days of `day_rows` ({UTC day: rows} of held-out logs) that are training days
    (`train_day_rows`, the same) or earlier: those before the training's last day, and that
    day itself when the held-out logs hold a whole day's rows of it (FULL_DAY_SHARE of the
    fullest training day), not the share of it logs cut at a local midnight have, or when it
    is in `copied` (`copied_days`: a held-out file is a copy of a training file)."""
    if not train_day_rows or not day_rows:
        return []
    last = max(train_day_rows)
    full = max(train_day_rows.values())
    return sorted(day for day in day_rows if day < last or (
        day == last and (day_rows[day] >= FULL_DAY_SHARE * full or day in copied)))


def copied_days(train_files, train_file_day_rows: dict, files, file_day_rows: dict,
                size=None) -> set[int]:
    """The UTC days of held-out files (`files`, `LogFile`s; `file_day_rows`, {(file index, UTC
    day): rows}) that are copies of training files (`train_files`, `train_file_day_rows`, the
    same): a held-out file with a training file's rows on each of its UTC days and its size in
    bytes (`size`, default `core.log_files.file_size`), the same file or one copied under
    another name. Days vary by a third in rows, so a whole day's count, a fraction of the
    fullest day's, misses a copy of a day smaller than the fullest; the other part of a day cut
    at a local midnight holds other rows, and shards of a fixed row count other bytes. A copy
    written again otherwise (re-sharded, recompressed) is not found."""
    if size is None:
        from core.log_files import file_size as size

    def by_file(file_day_rows):
        days: dict = {}
        for (index, day), rows in file_day_rows.items():
            days.setdefault(index, {})[day] = rows
        return {index: tuple(sorted(rows.items())) for index, rows in days.items()}

    trained: dict = {}
    for index, days in by_file(train_file_day_rows).items():
        trained.setdefault(days, []).append(index)
    copied: set[int] = set()
    for index, days in by_file(file_day_rows).items():
        candidates = trained.get(days, ())
        if candidates and any(size(files[index].path) == size(train_files[t].path)
                              for t in candidates):
            copied.update(day for day, _ in days)
    return copied


def earlier_days_note(train_day_rows: dict, flag: str, day_rows: dict,
                      copied: Collection[int] = ()) -> str | None:
    """A note when held-out logs (`flag`; `day_rows`, {UTC day: rows}) hold rows of the
    training logs' days or earlier (`train_day_rows`, the same for --train, its validation
    window included; `days_before_or_of`, `copied` as there): held-out logs are later days
    than the training logs, and rows of earlier days evaluate on the past the model learned
    from."""
    earlier = days_before_or_of(train_day_rows, day_rows, copied)
    if not earlier:
        return None
    last = max(train_day_rows)
    rows = sum(day_rows[day] for day in earlier)
    return (f"note: {rows:,} {flag} rows fall on {len(earlier)} UTC day(s) of --train's days "
            f"or before ({utc_date(earlier[0])}"
            f"{' to ' + utc_date(earlier[-1]) if len(earlier) > 1 else ''}"
            f"; --train ends {utc_date(last)}): held-out logs should be later days than the "
            "training logs")


def trained_day_rows(record: dict | None, refitted: bool) -> dict | None:
    """{UTC day: rows} a model trained on, from its training_days.json `record` (written by
    training; None for a model directory from before it): the days its runs learned from
    (`learned`, `ranking.model_dir.add_learned_days`) when recorded; else the latest run's
    --train days, less the --validation_days window unless the refit pass (`refitted`) trained
    on it, plus the --validation logs' days when it did."""
    if not record:
        return None
    if record.get("learned") is not None:
        return {int(day): rows for day, rows in record["learned"].items()}
    return run_day_rows(record, refitted)


def validation_window_rows(record: dict | None) -> dict | None:
    """{UTC day: rows} of the --validation_days window of a training_days.json `record` as the
    latest run held it out (the last days of its --train logs); None without a record or such
    a window."""
    if not record or not record.get("validation_days") or not record.get("train"):
        return None
    train = {int(day): rows for day, rows in record["train"].items()}
    cutoff = max(train) - record["validation_days"] + 1
    return {day: rows for day, rows in sorted(train.items()) if day >= cutoff}


def run_day_rows(record: dict, refitted: bool) -> dict:
    """{UTC day: rows} the latest run of a training_days.json `record` trained on: its --train
    days, less the --validation_days window unless the refit pass (`refitted`) trained on it,
    plus the --validation logs' days when it did."""
    train = {int(day): rows for day, rows in record["train"].items()}
    window = validation_window_rows(record)
    if window and not refitted:
        train = {day: rows for day, rows in train.items() if day not in window}
    if refitted:
        for day, rows in (record.get("validation") or {}).items():
            train[int(day)] = train.get(int(day), 0) + rows
    return train


def input_change_note(record: dict | None, train: dict, validation: dict | None = None,
                      validation_days: int = 0) -> str | None:
    """A note when a resumed run's --train logs (`train`, {UTC day: rows}) or --validation logs
    (`validation`, the same or None) hold other rows per day than its model directory recorded
    for the run before (`record`, training_days.json; None: a new run, or not recorded): the
    same glob matched other files since (a day added or removed), so the epochs still to train
    read other logs than the epochs done; with a --validation_days window whose days changed,
    validation compares other days than the best recorded. training_days.json then records the
    logs as they are now (the gate's notes read the latest run's days)."""
    if not record:
        return None
    before = {int(day): rows for day, rows in record["train"].items()}
    held = {int(day): rows for day, rows in (record.get("validation") or {}).items()}
    changes = [(what, was, now) for what, was, now in (
        ("--train", before, train), ("--validation", held, validation or {})) if was != now]
    if not changes:
        return None
    parts = []
    for what, was, now in changes:
        days = sorted(day for day in set(was) | set(now) if was.get(day) != now.get(day))
        parts.append(f"{what} now holds {sum(now.values()) - sum(was.values()):+,} rows on "
                     f"{len(days)} UTC day(s) ({utc_date(days[0])}"
                     f"{' to ' + utc_date(days[-1]) if len(days) > 1 else ''})")

    def window(days: dict) -> list:
        # As `data.split_by_days` holds them out: the calendar days from the last day with
        # rows back validation_days days (a day without rows is one of them).
        first = max(days) - validation_days + 1 if days else 0
        return [(day, days[day]) for day in sorted(days) if day >= first]

    moved = (f"; the --validation_days={validation_days} window holds other rows now, so "
             "validation compares other days than the best recorded"
             if validation_days and window(before) != window(train) else "")
    return (f"note: against the run being resumed, {' and '.join(parts)}: the epochs still to "
            f"train read the logs as they are now, the epochs done read them as they were"
            f"{moved}; train in an empty directory to learn from one input")


def gate_days_note(trained: dict, day_rows: dict, model: str = "candidate") -> str | None:
    """A note when the gate's held-out logs (`day_rows`, {UTC day: rows}) hold rows of days
    the `model` ("candidate" or "baseline") trained on (`trained`, the same;
    `days_before_or_of`): its figure then measures rows it learned from."""
    shared = [day for day in days_before_or_of(trained, day_rows) if day in trained]
    if not shared:
        return None
    rows = sum(day_rows[day] for day in shared)
    favours = ", which favours it" if model == "baseline" else ""
    return (f"note: {rows:,} rows of the gate's logs fall on {len(shared)} UTC day(s) the "
            f"{model} trained on ({utc_date(shared[0])}"
            f"{' to ' + utc_date(shared[-1]) if len(shared) > 1 else ''}): its figure measures "
            f"rows it learned from{favours}; gate on later days")


def stats_window_notes(stats_files, held_out: dict) -> list[str]:
    """Notes for held-out logs (`held_out`, {flag: their `LogFile`s}) with files
    the stats artifact was computed from (`stats_files`, its stats.json `files` records): the
    labels' thresholds (x_l, item P10, bin edges) and rule T2's counts then learned from the
    rows evaluated on. (A file at the real path the artifact lists, of its size, modification
    time and inode; a URL is never matched.)"""
    from core.stats_artifact import file_status

    same = ("bytes", "mtime_ns", "ino")  # the file the job read, not one rewritten there since
    records = {record["path"]: record for record in stats_files or () if record}
    notes = []

    def computed_from(path: str) -> bool:
        status = file_status(path)  # None for a URL
        record = records.get(status["path"]) if status else None
        return record is not None and all(record.get(k) == status[k] for k in same)

    for flag, files in held_out.items():
        shared = [f.path for f in files if records and computed_from(f.path)]
        if shared:
            notes.append(f"note: {len(shared)} {flag} file(s) are files the stats artifact was "
                         f"computed from ({shared[0]}{', ...' if len(shared) > 1 else ''}): "
                         "their labels' thresholds (x_l, item P10s, bin edges) and rule T2's "
                         "counts learned from the rows evaluated on; compute the statistics "
                         "on the training logs alone")
    return notes


def absent_features_note(flag: str, names) -> str | None:
    """A note for held-out logs none of whose sampled records has a value of the model's
    features `names` (`LogSource.absent_features`: empty CSV fields, or features no sampled
    tf.Example holds): they are read as their defaults."""
    if not names:
        return None
    return (f"note: the model's feature(s) {', '.join(names)} have no value in any sampled "
            f"record of the {flag} logs (empty CSV fields, or left out of every tf.Example): "
            "read as their default there")


def input_lines(config, inputs, stats_files=()) -> list[str]:
    """The lines training prints about its input once it is counted (`config`: a
    `TrainConfig`, `inputs`: its `ranking.data.Inputs`, `stats_files`: the stats artifact's
    file records): the held-out window, and notes on large files, on files shared with
    --eval or --validation (or the stats job's, `stats_window_notes`), and on days of an input
    whose rule-T2 counts are the stats artifact's (`core.labeler.held_days`)."""
    lines = []
    if config.selection.validation_days:
        lines.append(validation_window_line(inputs.labeler.file_day_rows,
                                            config.selection.validation_days))
    order = input_order_note([f.path for f in inputs.train.files], inputs.rows_per_file,
                             config.shuffle_buffer)
    held_out, counted = {}, {}
    if inputs.evaluation is not None:
        held_out["--eval"] = inputs.evaluation[0].files
        counted["--eval"] = inputs.evaluation[1]
    window_files, window_is = (), "in --train's validation window"
    if inputs.validation is not None:  # the --validation_days window, or --validation's logs
        window_files = inputs.validation[0].files
    if inputs.validation is not None and config.selection.validation:
        held_out["--validation"] = inputs.validation[0].files
        counted["--validation"] = inputs.validation[1]
        window_is = "--validation files too"
    overlap = input_overlap_notes(inputs.train.files, held_out, window_files,
                                  config.selection.refit == "validation", window_is)
    overlap += stats_window_notes(stats_files, held_out)
    train_days = day_rows_of(inputs.labeler.file_day_rows or {})
    earlier = [note for flag, labeler in counted.items()
               if (note := earlier_days_note(
                   train_days, flag, day_rows_of(labeler.file_day_rows or {}),
                   copied_days(inputs.labeler.files, inputs.labeler.file_day_rows or {},
                               labeler.files, labeler.file_day_rows or {})))]
    sources = {"--eval": inputs.evaluation, "--validation": inputs.validation
               if config.selection.validation else None}
    absent = [note for flag, held in sources.items() if held is not None and (
        note := absent_features_note(flag, held[0].absent_features))]
    # The stats artifact is of the training logs' window; held-out logs (a sample of the same
    # days, other users) may hold more rows of its days by design.
    t2_notes = [f"note: {what} logs: {note}" for what, labeler in inputs.labellers()
                for note in (short_artifact_note(labeler.short_artifact_days)
                             if what == "train" else None,
                             t2_days_note(labeler.t2_days_from_artifact),
                             t2_gap_note(labeler.t2_gap_days)) if note]
    return lines + ([order] if order else []) + overlap + earlier + absent + t2_notes
