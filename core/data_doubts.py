"""What looks wrong in a feed's logs, read from their statistics (stats.json, and the first ids
of the artifact's tables): each doubt a sentence for the user, which `pipelines.stats` prints as
a warning (and the NDT fit's error quotes when the dwell unit is the likely cause). Thresholds
are named constants, each with why.
"""

from __future__ import annotations

import re

import numpy as np

# A typical clicked dwell (exp(mu) of ln seconds) longer than this is not a feed's read (those
# last seconds to minutes): dwell in milliseconds read as seconds looks so.
DWELL_UNIT_DOUBT_SECONDS = 3600.0


def dwell_unit_doubt(mu: float) -> str | None:
    """What to tell a user whose clicked rows' typical dwell, exp(`mu`) with `mu` the mean ln
    dwell in seconds, is over an hour (`DWELL_UNIT_DOUBT_SECONDS`); None otherwise."""
    typical = float(np.exp(mu))
    if not typical > DWELL_UNIT_DOUBT_SECONDS:  # NaN too
        return None
    return (f"the clicked rows' typical dwell is exp(mu) = {typical:,.0f} s "
            f"({typical / 3600:.1f} h), and dwell_time is read as seconds (SPEC §2): if it is in "
            "milliseconds, divide it by 1000")


# A share of clicks with dwell 0 above this is more than a feed's instant bounces: likely dwell
# "unknown" written as 0.
ZERO_DWELL_DOUBT_SHARE = 0.05


# A numeric feature negative on more than this share of the rows loses that part: the transform
# reads max(x, 0) (SPEC §2).
NEGATIVE_DOUBT_SHARE = 0.05


# A numeric feature whose deviation is less than this share of its mean (above 1) is large
# against its spread (a date written 20220408, a year, unix seconds): its log1p barely varies,
# so the default transform reads it as a few float32 steps, or as a constant, and a missing
# value (0) thousands of deviations away.
LARGE_MEAN_DOUBT = 1e-3


# The longest dwell bin's median above this (seconds): its clicks are pages left open (idle
# tabs), not reads, in an article feed; they set the top bins, and the expected dwell that a
# dwell-bin model serves (sum of bin probability x bin value) is weighed by them.
LONG_TOP_BIN_DOUBT = 3600.0


# A numeric feature that is 0 on every unclicked row but not on clicked ones is an outcome of the
# click (a like, a share, a play time): as a feature it hands the model its label. Named when
# at least this many unclicked rows would be non-zero were it independent of the click.
OUTCOME_DOUBT_EXPECTED_ROWS = 20


# Ids written as decimals ("100196.0": pandas writes an integer column that has a missing value
# as floats) are named when at least this share of the sampled ids look so: a feed's own text ids
# seldom end in ".0", and a few odd ids in a column of integers are not the pattern.
DECIMAL_ID_DOUBT_SHARE = 0.9
# Ids read per column (the first rows of the artifact's tables), and the fewest worth a doubt.
ID_SAMPLE = 1000
DECIMAL_ID_MIN_SAMPLE = 20
_DECIMAL_INTEGER = re.compile(r"[+-]?[0-9]+\.0+")


def decimal_id_doubt(column: str, ids) -> str | None:
    """What to tell a user whose `column` ('user_id' or 'item_id') holds integers written as
    decimals ('100196.0'), from `ids` (the first values the statistics job's tables hold, text;
    at most ID_SAMPLE are read, each distinct id counted once): ids are text as written
    (SPEC §2), so logs that write the same ids as integers name other users or items. None below
    DECIMAL_ID_DOUBT_SHARE of at least DECIMAL_ID_MIN_SAMPLE distinct non-empty ids."""
    sample = _distinct_ids(ids)
    decimal = [i for i in sample if _DECIMAL_INTEGER.fullmatch(i)]
    if len(sample) < DECIMAL_ID_MIN_SAMPLE or len(decimal) < DECIMAL_ID_DOUBT_SHARE * len(sample):
        return None
    example = decimal[0]
    whole = example.split(".")[0]
    return (f"column '{column}' holds integers written as decimals ({len(decimal):,} of the "
            f"{len(sample):,} distinct ids read, such as '{example}'): ids are text, read as written, so "
            f"logs or requests that write them as integers ('{whole}') name other "
            f"{_kind(column)}, unknown to these statistics' per-user and per-item counts (rules "
            "T2 and T3, the items' P10) and to a model's embeddings; write the ids as "
            "integers in every log (pandas writes an integer column that has a missing value "
            "as floats: fill it, or read it with dtype=str or 'Int64') and compute the "
            "statistics again")


def spaced_id_doubt(column: str, ids) -> str | None:
    """What to tell a user whose `column` holds ids with white space at an end (' art-00088', as
    a fixed-width or ', '-separated export pads them), from the first ID_SAMPLE of `ids`: ids
    are text, read as written, so ' art-00088' and 'art-00088' are two. None without such ids."""
    sample = _distinct_ids(ids)
    spaced = [i for i in sample if i != i.strip()]
    if not spaced:
        return None
    return (f"column '{column}' holds ids with white space at an end ({len(spaced):,} of the "
            f"{len(sample):,} distinct ids read, such as {spaced[0]!r}): ids are text, read as "
            f"written, so {spaced[0]!r} and {spaced[0].strip()!r} are two {_kind(column)}; write the ids "
            "without the spaces in every log and compute the statistics again")


def _distinct_ids(ids) -> list[str]:
    """The distinct non-empty ids among the first ID_SAMPLE of `ids`, in their order."""
    return [i for i in dict.fromkeys(list(ids)[:ID_SAMPLE]) if i != ""]


def _kind(column: str) -> str:
    return "users" if column == "user_id" else "items"


def id_doubts(column: str, ids) -> list[str]:
    """The doubts about `column`'s ids ('user_id' or 'item_id') from the first ID_SAMPLE of
    `ids` (text): integers written as decimals, white space at an end."""
    return [d for d in (decimal_id_doubt(column, ids), spaced_id_doubt(column, ids)) if d]


def outcome_features(stats: dict) -> dict[str, str]:
    """{name: why} of the numeric feature columns that look like an outcome of the click in
    logs whose statistics are `stats` (stats.json's content): 0 on every unclicked row but not
    on clicked ones, where at least OUTCOME_DOUBT_EXPECTED_ROWS unclicked rows would be
    non-zero were it independent of the click."""
    found = {}
    clicks, unclicked = stats["clicks"], stats["rows"] - stats["clicks"]
    for name, feature in sorted(stats.get("numeric_features", {}).items()):
        on_clicks, off_clicks = feature.get("nonzero_clicked"), feature.get("nonzero_unclicked")
        if on_clicks is None or off_clicks != 0 or not clicks:
            continue
        if unclicked * on_clicks / clicks >= OUTCOME_DOUBT_EXPECTED_ROWS:
            found[name] = (f"feature column '{name}' is 0 on all {unclicked:,} unclicked rows "
                           f"but not on {on_clicks:,} of the {clicks:,} clicked ones: an outcome "
                           "of the click (a like, a share, a play time) hands the model its label")
    return found


def data_doubts(stats: dict) -> list[str]:
    """What looks wrong in logs whose statistics are `stats` (stats.json's content), each a
    sentence for the user; the job still writes the artifact. Dwell too long for seconds
    (`dwell_unit_doubt`) or below the valid-read floor (minutes read as seconds), rule T1's
    threshold x_l below that floor (short reads: the rules cannot differ), many clicks
    with dwell 0 (unknown dwell written as 0), a longest dwell bin of idle tabs (its median
    above an hour), a numeric feature column that only clicked rows
    have (an outcome of the click), one often negative (read as 0), or one large against its
    spread (a date, a year: its log1p barely varies)."""
    doubts = []
    mu, rules = stats["mu"], stats["rules"]
    long_doubt = dwell_unit_doubt(mu)
    if long_doubt:
        doubts.append(long_doubt)
    typical, floor = float(np.exp(mu)), float(rules["min_dwell"])
    if typical < floor:
        doubts.append(f"the clicked rows' typical dwell is exp(mu) = {typical:.2f} s, below the "
                      f"valid-read floor --min_dwell={floor:g} s, so most clicks can never be "
                      "valid reads: dwell_time is read as seconds (SPEC §2); if it is in "
                      "minutes, multiply it by 60")
    given = rules.get("t1_threshold")
    t1 = float(given) if given is not None else (
        float(np.exp(mu - stats["sigma"])) if "sigma" in stats else float("nan"))
    if typical >= floor and t1 < floor:
        named = (f"--t1_threshold={t1:g} s" if given is not None
                 else f"x_l = exp(mu - sigma) = {t1:.2f} s")
        doubts.append(f"rule T1's threshold, {named}, is below the "
                      f"valid-read floor --min_dwell={floor:g} s: every click of {floor:g} s or "
                      "more passes T1, so rules T2 and T3 never decide and a valid read is a "
                      f"dwell of at least {floor:g} s; in a feed of short reads or videos a "
                      "lower --min_dwell (or --t1_threshold) keeps the rules apart")
    medians, edges = stats.get("dwell_bin_medians") or [], stats.get("dwell_bin_edges") or []
    top = medians[-1] if medians else None  # None: an empty bin (given --bin_edges)
    if not long_doubt and top is not None and top > LONG_TOP_BIN_DOUBT:
        doubts.append(f"the longest dwell bin's median is {top:,.0f} s ({top / 3600:.1f} h; "
                      f"it holds the clicks from {edges[-2]:,.0f} s on): if those clicks are "
                      "pages left open "
                      "(idle tabs) rather than reads, they set the top bins, and the expected "
                      "dwell a dwell-bin model serves (bin probabilities x bin values) is "
                      "weighed by them; cap dwell_time in the logs (at the longest plausible "
                      "read) before this job")
    zero = stats["clicks"] - stats["clicks_with_dwell"]
    if stats["clicks"] and zero / stats["clicks"] > ZERO_DWELL_DOUBT_SHARE:
        doubts.append(f"{zero:,} of {stats['clicks']:,} clicks ({zero / stats['clicks']:.0%}) "
                      "have dwell 0, read as reads shorter than any other (dwell bin 0, never a "
                      "valid read); if 0 stands for an unknown dwell, leave those rows out")
    for name, text in outcome_features(stats).items():
        doubts.append(text + "; leave it out of the logs or exclude it in the feature config "
                      '(--feature_config: {"features": {"' + name + '": {"exclude": true}}}; '
                      "the statistics job does not read the feature config, so this note "
                      "stays when it does)")
    rows = stats["rows"]
    for name, feature in sorted(stats.get("numeric_features", {}).items()):
        negative = feature.get("negative", 0)
        if rows and negative / rows > NEGATIVE_DOUBT_SHARE:
            doubts.append(f"feature column '{name}' is negative on {negative:,} of {rows:,} rows "
                          f"({negative / rows:.1%}): a numeric feature is log1p of its "
                          "non-negative part (SPEC §2), so all of those read as 0; standardize it "
                          'instead in the feature config ({"features": {"' + name + '": '
                          '{"transform": "standardize"}}}), or make it categorical there '
                          '({"type": "categorical"})')
    for name, feature in sorted(stats.get("numeric_features", {}).items()):
        mean, std = feature.get("mean"), feature.get("std")
        raw_mean, raw_std = feature.get("raw_mean"), feature.get("raw_std")
        # A rare flag (1 on one row in millions) has a tiny log1p spread too, but no large mean.
        if raw_mean is None or not raw_std or not (
                raw_mean > 1 and raw_std < LARGE_MEAN_DOUBT * raw_mean):
            continue
        read_as = ("a constant" if std <= float(np.finfo(np.float32).eps) * max(1.0, abs(mean))
                   else "a few float32 steps (so a row's served score may differ with the "
                   "batch it is scored in, by float32 rounding)")
        doubts.append(f"feature column '{name}' varies by {raw_std:.4g} around {raw_mean:.10g} "
                      f"but its log1p only by {std:.2g} around {mean:.4g}: the default transform "
                      f"(log1p, standardized) reads it as {read_as}, and a missing value (0) "
                      f"as {abs(mean) / max(std, 1e-300):.2g} deviations away; standardize it "
                      'instead in the feature config ({"features": {"' + name + '": '
                      '{"transform": "standardize"}}}, with a typical "default"), or make it '
                      'categorical ({"type": "categorical"}) if it is a date or a code')
    return doubts
