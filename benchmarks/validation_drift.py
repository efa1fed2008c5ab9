"""What validation's dwell drift checks see: TFDV's Jensen-Shannon divergence of `dwell_time`
and of the derived `log_dwell_of_clicks` (`pipelines.validate.validation`) between each day and
the day before, and between one day and itself with every dwell multiplied.

    .venv/bin/python benchmarks/validation_drift.py --logs='/work/bench/sim/logs/day-*.csv.gz' \\
        --workdir=/work/bench/drift [--factors=0.8,0.5,0.25,2,1000]

Prints a Markdown table: the divergences TFDV reports (its own figure, read from its anomaly
with every threshold at 0) and the default thresholds they are checked against.
"""

from __future__ import annotations

import os
import re
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from core import cli  # noqa: E402  (quiets TensorFlow before it loads)
from core.errors import InputError  # noqa: E402
from core.log_files import expand_inputs  # noqa: E402
from pipelines.validate import validation  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("logs", None, "Comma-separated globs of day files, one file a day, in order.")
flags.DEFINE_string("workdir", None, "Directory for the statistics and the multiplied day.")
flags.DEFINE_list("factors", ["0.8", "0.5", "0.25", "2", "1000"],
                  "Each dwell of the last day but one multiplied by these.")
flags.mark_flags_as_required(["logs", "workdir"])

COLUMNS = ("click", "dwell_time", validation.LOG_DWELL_OF_CLICKS)
DIVERGENCE = re.compile(r"divergence between current and previous is ([0-9.e+-]+)")


def divergences(current, previous, schema) -> dict[str, float]:
    """{column: TFDV's Jensen-Shannon divergence} of COLUMNS (0 where TFDV reports none)."""
    anomalies = validation.validate(current, schema, previous)
    found = {name: 0.0 for name in COLUMNS}
    for name, info in anomalies.anomaly_info.items():
        for reason in info.reason:
            match = DIVERGENCE.search(reason.description)
            if match and name in found:
                found[name] = float(match.group(1))
    return found


def statistics(path: str, name: str):
    """TFDV statistics of `path`, written to WORKDIR/name.pb (made again on every run)."""
    return validation.generate_statistics(path, os.path.join(FLAGS.workdir, f"{name}.pb"))


def multiplied(path: str, factor: float) -> str:
    """`path` with every dwell multiplied by `factor`, as WORKDIR/dwell_x<factor>.csv.gz."""
    import pandas as pd

    out = os.path.join(FLAGS.workdir, f"dwell_x{factor:g}.csv.gz")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["dwell_time"] = (frame["dwell_time"].astype(float) * factor).round(3).astype(str)
    frame.to_csv(out, index=False)
    return out


def main(argv):
    del argv
    os.makedirs(FLAGS.workdir, exist_ok=True)
    paths = [f.path for f in expand_inputs(FLAGS.logs)]
    if len(paths) < 2:
        raise InputError(f"--logs needs at least two day files, not {len(paths)}")
    days = [statistics(path, f"day{k:03d}") for k, path in enumerate(paths)]
    # Every threshold at 0, so that TFDV reports each divergence it computes.
    schema = validation.infer_schema(days[0], validation.ValidationConfig(
        click_drift=0.0, dwell_drift=0.0, log_dwell_drift=0.0))
    defaults = validation.ValidationConfig()
    print(f"| compared | {' | '.join(COLUMNS)} |")
    print(f"|---|{'---|' * len(COLUMNS)}")
    print(f"| default threshold | {defaults.click_drift} | {defaults.dwell_drift} | "
          f"{defaults.log_dwell_drift} |")

    def row(label, values):
        print(f"| {label} | " + " | ".join(f"{values[c]:.4g}" for c in COLUMNS) + " |",
              flush=True)

    for k in range(1, len(paths)):
        row(f"{os.path.basename(paths[k])} against {os.path.basename(paths[k - 1])}",
            divergences(days[k], days[k - 1], schema))
    base = paths[-2]
    for factor in (float(f) for f in FLAGS.factors):
        changed = statistics(multiplied(base, factor), f"x{factor:g}")
        row(f"{os.path.basename(base)}, every dwell x {factor:g}, against itself",
            divergences(changed, days[-2], schema))


if __name__ == "__main__":
    cli.run(main)
