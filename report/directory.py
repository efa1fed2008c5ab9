"""A report directory: report.md with its pictures (the models' training curves, the label
job's picture and rule shares, the online A/B test's table and heat maps, the fusion tuning's
frontier), written atomically."""

from __future__ import annotations

import os
import shutil

from core.atomic import atomic_directory, earlier_output, file_starts_with
from core.errors import InputError
from ranking.selection_files import HISTORY_JSON
from report.figures import rule_shares_figure, training_curves
from report.tables import model_names, read_json


def _copy(directory: str, name: str, flag: str, tmp: str) -> None:
    """Copies `name` of another job's output `directory` into the report."""
    try:
        shutil.copy(os.path.join(directory, name), os.path.join(tmp, name))
    except OSError as error:
        raise InputError(f"cannot read {name} of {flag} ({error.strerror})",
                         file=os.path.join(directory, name)) from None


def _read_text(directory: str, name: str, flag: str) -> str:
    try:
        with open(os.path.join(directory, name)) as handle:
            return handle.read()
    except OSError as error:
        raise InputError(f"cannot read {name} of {flag} ({error.strerror})",
                         file=os.path.join(directory, name)) from None


REPORT_TITLE = "# dwellrank report"


def is_report(path: str) -> bool:
    """Whether file `path` is a report.md this tool wrote (run again, it may replace it)."""
    return file_starts_with(path, REPORT_TITLE)


# Empty, or a report directory this tool wrote: its report.md and the pictures it writes
# alone, nothing a person may have put beside them.
is_report_directory = earlier_output(
    titles={"report.md": REPORT_TITLE},
    patterns=(r"curves-.*\.png", r"migration-.*\.png", r"(labels|rule_shares|frontier)\.png"))


def write_report_directory(output_dir: str, text: str, labelled: str | None,
                           online_dir: str | None, model_dirs: list[str],
                           fusion_tuning: str | None = None,
                           names: list[str] | None = None) -> list[str]:
    """report.md with its pictures in `output_dir` (atomically); returns the picture names.
    `names`: the models' names in the report (`report.tables.model_names`, the default)."""
    names = names or model_names(model_dirs)
    pictures, sections = [], [text]
    with atomic_directory(output_dir, may_replace=is_report_directory,
                          what="--output_dir") as tmp:
        curves = []
        for name, model_dir in zip(names, model_dirs):
            if os.path.isfile(os.path.join(model_dir, HISTORY_JSON)):
                stem, k = f"curves-{name.replace('/', '_')}", 1
                picture = f"{stem}.png"
                while picture in pictures:  # a/b/vr and a_b/vr: two names, one file name
                    k += 1
                    picture = f"{stem}-{k}.png"
                training_curves(os.path.join(tmp, picture),
                                read_json(model_dir, HISTORY_JSON, "--model_dirs"), name)
                pictures.append(picture)
                curves.append(f"![{name}: training loss and validation metric by step, the "
                              f"selected step marked]({picture})")
        if curves:
            sections.append("## Training and validation\n\n" + "\n\n".join(curves))
        if labelled:
            summary = read_json(labelled, "summary.json", "--labelled")
            if "rule_shares_of_valid_reads" not in summary:
                raise InputError("is not a pipelines.label summary",
                                 file=os.path.join(labelled, "summary.json"))
            shares = summary["rule_shares_of_valid_reads"]
            section = [f"## Labels\n\nValid reads are "
                       f"{100 * summary['valid_read_share_of_clicks']:.1f} % of the "
                       f"{summary['clicks']:,} clicks; first rule among valid reads: "
                       + ", ".join(f"{r} {100 * v:.1f} %" for r, v in shares.items())
                       + " (the paper's system: 89.9 / 2.9 / 7.2 %)."]
            if os.path.exists(os.path.join(labelled, "labels.png")):
                shutil.copy(os.path.join(labelled, "labels.png"), os.path.join(tmp, "labels.png"))
                pictures.append("labels.png")
                section.append("![ln(dwell) of clicks with mu ± sigma, x_l and x_h, and the NDT "
                               "curve beside log(1 + T)](labels.png)")
            rule_shares_figure(os.path.join(tmp, "rule_shares.png"), summary)
            pictures.append("rule_shares.png")
            section.append("![Shares of the valid-read rules](rule_shares.png)")
            sections.append("\n\n".join(section))
        if online_dir:
            run = read_json(online_dir, "online.json", "--online")
            if not {"metrics", "config", "figures"} <= set(run):
                raise InputError("is not an online.ab_test output",
                                 file=os.path.join(online_dir, "online.json"))
            table = _read_text(online_dir, "online.md", "--online")
            consequences = run["config"].get("consequences", "none")
            section = [f"## Online A/B test on the simulator\n\nPolicies "
                       f"{', '.join(run['metrics'])} over {run['config']['days']} simulated "
                       f"days, consequences `{consequences}` (online/consequences.py), the "
                       f"same random draws at every (user, day, session, slot) for each "
                       f"(common random numbers); ± is a 95 % interval over users.", table]
            for name in run["figures"]:
                _copy(online_dir, name, "--online", tmp)
                pictures.append(name)
                section.append(f"![Change in clicks by user activeness and dwell: "
                               f"{name[len('migration-'):-4]} against {list(run['metrics'])[0]}]"
                               f"({name})")
            sections.append("\n\n".join(section))
        if fusion_tuning:
            tuning = read_json(fusion_tuning, "frontier.json", "--fusion_tuning")
            if not {"saved_model", "baseline", "objective", "min_clicks"} <= set(tuning):
                raise InputError("is not an online.tune_fusion output",
                                 file=os.path.join(fusion_tuning, "frontier.json"))
            frontier = _read_text(fusion_tuning, "frontier.md", "--fusion_tuning")
            _copy(fusion_tuning, "frontier.png", "--fusion_tuning", tmp)
            pictures.append("frontier.png")
            sections.append(f"## Serving-score fusion tuned online\n\n`{tuning['saved_model']}` "
                            f"against `{tuning['baseline']}`: the weights that maximize "
                            f"{tuning['objective']} per user with clicks per user at least "
                            f"{tuning['min_clicks']:g} x the baseline's (online/tune_fusion.py)."
                            f"\n\n{frontier}\n![The frontier of the fusion weights](frontier.png)")
        with open(os.path.join(tmp, "report.md"), "w") as handle:
            handle.write("\n\n".join(sections) + "\n")
    return pictures
