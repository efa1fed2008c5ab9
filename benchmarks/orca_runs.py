"""The rows of `benchmarks/orca_table.py`: what each run trains (preset, flags, bins, the
backbone its ORCA gain is against), and the flag sets they are built from."""

from __future__ import annotations

import os

from common import REPO

POST_CLICK = "--post_click_features=category,item_length,publish_age_hours"
PROTOCOL = ["--validation_days=1", "--max_epochs=10"]
ONE_EPOCH = ["--epochs=1"]
AUTHORS = [f"--flagfile={os.path.join(REPO, 'configs', 'orca_authors.flags')}"]
AUTHORS_STATS = [f"--flagfile={os.path.join(REPO, 'configs', 'orca_authors_stats.flags')}"]
# The flagfile's protocol as it was until 2026-12-08, before three differences from the
# authors' code were closed (weight decay on every parameter, PLE's widths per level, the
# output layers with the first-order and FM terms); after AUTHORS, these flags win. (The
# attention output of the authors' NDE head, linear since, is code, not a flag.)
AUTHORS_UNTIL_1208 = ["--weight_decay=0", "--l2_dense=5e-5", "--l2_embedding=5e-5",
                      "--level_expert_units=", "--tower_output=dense"]
# The authors' training protocol alone: optimizer, batch, regularization, sizes, early stopping.
AUTHORS_TRAINING = ["--optimizer=adam", "--learning_rate=0.001", "--weight_decay=1e-4",
                    "--batch_size=512", "--patience=1",
                    "--early_stopping_metric=dwell_ce", "--dropout=0.2", "--batch_norm",
                    "--embedding_dim=16", "--experts=8", "--task_experts=8",
                    "--shared_experts=8", "--expert_units=128,64,32",
                    "--level_expert_units=128,64/32", "--tower_units=16,8",
                    "--tower_output=fm_terms"]
# After AUTHORS: the click task trained as this project does (its defaults for the loss scale and
# model selection) with the click prior, the rest of the authors' protocol kept.
PROJECT_CLICK_TRAINING = ["--output_bias=prior", "--dt_denominator=batch",
                          "--early_stopping_metric=auto", "--patience=2"]


# ORCA rows serve the debiased head, as the paper, unless their flags say otherwise: the
# rows before --orca_serve (2026-12-03) were trained so, and keep their meaning.
PAPER_HEAD = ["--orca_serve=debiased"]
VALIDATED_HEAD = ["--orca_serve=validated"]
# Early stopping on the raw dwell head's cross-entropy (ranking.selection, raw_dwell_ce).
RAW_STOP = ["--early_stopping_metric=raw_dwell_ce"]


class Run:
    """One row: `name` (its model directories), `preset`, `flags`, `stats` (project | authors
    bins), `baseline` (the run its ORCA gain is against), `columns` (dt, auc or both). An ORCA
    row (a `*_orca` preset) without --orca_serve in `flags` serves the debiased head."""

    def __init__(self, label, name, preset, flags=(), stats="project", baseline=None,
                 columns="both", protocol=PROTOCOL):
        self.label, self.name, self.preset = label, name, preset
        flags = list(flags)
        if preset.endswith("_orca") and not any(f.startswith("--orca_serve") for f in flags):
            flags = PAPER_HEAD + flags
        self.flags, self.stats, self.baseline = flags, stats, baseline
        self.columns, self.protocol = columns, protocol


RUNS = [
    # The backbones and ORCA on them: this project's and the authors' way.
    Run("MMoE", "mmoe", "mmoe"),
    Run("MMoE + ORCA", "mmoe_orca", "mmoe_orca", baseline="mmoe"),
    Run("MMoE (authors' protocol)", "mmoe_authors", "mmoe", AUTHORS, "authors"),
    Run("MMoE + ORCA (authors' protocol)", "mmoe_orca_authors", "mmoe_orca", AUTHORS, "authors",
        baseline="mmoe_authors"),
    Run("PLE", "ple", "ple"),
    Run("PLE + ORCA", "ple_orca", "ple_orca", baseline="ple"),
    Run("PLE (authors' protocol)", "ple_authors", "ple", AUTHORS, "authors"),
    Run("PLE + ORCA (authors' protocol)", "ple_orca_authors", "ple_orca", AUTHORS, "authors",
        baseline="ple_authors"),
    # The authors' protocol with the click tower's output bias started at the training CTR
    # (--output_bias=prior, not the authors' choice): their narrow towers (16, 8) behind
    # 32-wide experts otherwise leave the click output near constant (docs/orca.md).
    Run("MMoE (authors' protocol, click prior)", "mmoe_authors_prior", "mmoe", AUTHORS + [
        "--output_bias=prior"], "authors"),
    Run("MMoE + ORCA (authors' protocol, click prior)", "mmoe_orca_authors_prior", "mmoe_orca",
        AUTHORS + ["--output_bias=prior"], "authors", baseline="mmoe_authors_prior"),
    Run("PLE (authors' protocol, click prior)", "ple_authors_prior", "ple", AUTHORS + [
        "--output_bias=prior"], "authors"),
    Run("PLE + ORCA (authors' protocol, click prior)", "ple_orca_authors_prior", "ple_orca",
        AUTHORS + ["--output_bias=prior"], "authors", baseline="ple_authors_prior"),
    # The authors' protocol (their bins, which make the backbones collapse, and their model,
    # masking and optimizer) with the click task trained as this project trains it: the dwell
    # losses over the batch, early stopping on the click log loss plus the dwell cross-entropy
    # with patience 2, the click prior. Decided before it was run (2026-12-02).
    Run("MMoE (authors' protocol, this project's click training)", "mmoe_authors_ctr", "mmoe",
        AUTHORS + PROJECT_CLICK_TRAINING, "authors"),
    Run("MMoE + ORCA (authors' protocol, this project's click training)", "mmoe_orca_authors_ctr",
        "mmoe_orca", AUTHORS + PROJECT_CLICK_TRAINING, "authors", baseline="mmoe_authors_ctr"),
    Run("PLE (authors' protocol, this project's click training)", "ple_authors_ctr", "ple",
        AUTHORS + PROJECT_CLICK_TRAINING, "authors"),
    Run("PLE + ORCA (authors' protocol, this project's click training)", "ple_orca_authors_ctr",
        "ple_orca", AUTHORS + PROJECT_CLICK_TRAINING, "authors", baseline="ple_authors_ctr"),
    # One difference at a time, on MMoE + ORCA as this project trains it.
    Run("MMoE + ORCA, masked batches + NDE-only step", "mmoe_orca_batchmask", "mmoe_orca",
        ["--mask_scope=batch"], baseline="mmoe"),
    Run("MMoE + ORCA, the authors' NDE head", "mmoe_orca_authorshead", "mmoe_orca",
        ["--nde_head=authors"], baseline="mmoe"),
    Run("PLE + ORCA, the authors' NDE head", "ple_orca_authorshead", "ple_orca",
        ["--nde_head=authors"], baseline="ple"),
    Run("MMoE, dwell losses over clicks", "mmoe_clicks", "mmoe", ["--dt_denominator=clicks"]),
    Run("MMoE + ORCA, dwell losses over clicks", "mmoe_orca_clicks", "mmoe_orca",
        ["--dt_denominator=clicks"], baseline="mmoe_clicks"),
    Run("MMoE + ORCA, h_s gate trained by the NDE", "mmoe_orca_gate", "mmoe_orca",
        ["--shared_representation=gate"], baseline="mmoe"),
    Run("MMoE, the authors' training", "mmoe_authorstraining", "mmoe", AUTHORS_TRAINING),
    Run("MMoE + ORCA, the authors' training", "mmoe_orca_authorstraining", "mmoe_orca",
        AUTHORS_TRAINING, baseline="mmoe_authorstraining"),
    Run("MMoE, the authors' bins", "mmoe_authorsbins", "mmoe", stats="authors"),
    Run("MMoE + ORCA, the authors' bins", "mmoe_orca_authorsbins", "mmoe_orca", stats="authors",
        baseline="mmoe_authorsbins"),
    # One epoch, no selection: training as it was, for the collapse.
    Run("MMoE, one epoch", "mmoe_1ep", "mmoe", protocol=ONE_EPOCH),
    Run("MMoE + ORCA, one epoch", "mmoe_orca_1ep", "mmoe_orca", baseline="mmoe_1ep",
        protocol=ONE_EPOCH),
    Run("PLE, one epoch", "ple_1ep", "ple", protocol=ONE_EPOCH),
    Run("PLE + ORCA, one epoch", "ple_orca_1ep", "ple_orca", baseline="ple_1ep",
        protocol=ONE_EPOCH),
    # Not run by default (--runs): the paper's other baselines.
    Run("DeepFM", "deepfm_ctr", "deepfm", ["--single_task=ctr"], columns="auc"),
    Run("DeepFM", "deepfm_dt", "deepfm", ["--single_task=dwell_bins"], columns="dt"),
    Run("Shared bottom", "shared_bottom_dt", "shared_bottom_dt"),
    Run("PLE + MetaBalance", "ple_mb", "ple", ["--metabalance"]),
    Run("PLE + MetaBalance + ORCA", "ple_orca_mb", "ple_orca", ["--metabalance"],
        baseline="ple_mb"),
    # Not run by default (--runs): which NDE head where the backbones collapse (the authors'
    # bins), this project's protocol otherwise (docs/orca.md, 2026-12-03).
    Run("MMoE + ORCA, the authors' bins and NDE head", "mmoe_orca_authorsbins_authorshead",
        "mmoe_orca", ["--nde_head=authors"], stats="authors", baseline="mmoe_authorsbins"),
    Run("PLE, the authors' bins", "ple_authorsbins", "ple", stats="authors"),
    Run("PLE + ORCA, the authors' bins", "ple_orca_authorsbins", "ple_orca", stats="authors",
        baseline="ple_authorsbins"),
    Run("PLE + ORCA, the authors' bins and NDE head", "ple_orca_authorsbins_authorshead",
        "ple_orca", ["--nde_head=authors"], stats="authors", baseline="ple_authorsbins"),
    # The same without the instance weights: is the over-correction theirs?
    Run("MMoE + ORCA, the authors' bins, no instance weights", "mmoe_orca_authorsbins_noiw",
        "mmoe_orca", ["--noinstance_weights"], stats="authors", baseline="mmoe_authorsbins"),
    Run("PLE + ORCA, the authors' bins, no instance weights", "ple_orca_authorsbins_noiw",
        "ple_orca", ["--noinstance_weights"], stats="authors", baseline="ple_authorsbins"),
    # The instance weights balanced per true bin (--iw_balance=bin), on both bins.
    Run("MMoE + ORCA, weights balanced per bin", "mmoe_orca_binbal", "mmoe_orca",
        ["--iw_balance=bin"], baseline="mmoe"),
    Run("PLE + ORCA, weights balanced per bin", "ple_orca_binbal", "ple_orca",
        ["--iw_balance=bin"], baseline="ple"),
    Run("MMoE + ORCA, the authors' bins, weights balanced per bin", "mmoe_orca_authorsbins_binbal",
        "mmoe_orca", ["--iw_balance=bin"], stats="authors", baseline="mmoe_authorsbins"),
    Run("PLE + ORCA, the authors' bins, weights balanced per bin", "ple_orca_authorsbins_binbal",
        "ple_orca", ["--iw_balance=bin"], stats="authors", baseline="ple_authorsbins"),
    # The served head checked on the validation window (--orca_serve=validated, an option),
    # on both bins (docs/orca.md).
    Run("MMoE + ORCA, head validated", "mmoe_orca_validated", "mmoe_orca", VALIDATED_HEAD,
        baseline="mmoe"),
    Run("PLE + ORCA, head validated", "ple_orca_validated", "ple_orca", VALIDATED_HEAD,
        baseline="ple"),
    Run("MMoE + ORCA, the authors' bins, head validated", "mmoe_orca_authorsbins_validated",
        "mmoe_orca", VALIDATED_HEAD, stats="authors", baseline="mmoe_authorsbins"),
    Run("PLE + ORCA, the authors' bins, head validated", "ple_orca_authorsbins_validated",
        "ple_orca", VALIDATED_HEAD, stats="authors", baseline="ple_authorsbins"),
    # Where the paper's head gained (the authors' protocol): does the check keep it?
    Run("MMoE + ORCA (authors' protocol), head validated", "mmoe_orca_authors_validated",
        "mmoe_orca", AUTHORS + VALIDATED_HEAD, "authors", baseline="mmoe_authors"),
    Run("PLE + ORCA (authors' protocol), head validated", "ple_orca_authors_validated",
        "ple_orca", AUTHORS + VALIDATED_HEAD, "authors", baseline="ple_authors"),
    # The authors' protocol stopped on the raw head's loss, the backbone's own criterion
    # (ranking.selection: the trunk stops at its backbone's epoch), 2026-12-05.
    Run("MMoE + ORCA (authors' protocol), stopped as the backbone",
        "mmoe_orca_authors_rawstop", "mmoe_orca", AUTHORS + RAW_STOP, "authors",
        baseline="mmoe_authors"),
    Run("PLE + ORCA (authors' protocol), stopped as the backbone", "ple_orca_authors_rawstop",
        "ple_orca", AUTHORS + RAW_STOP, "authors", baseline="ple_authors"),
    # The authors' protocol as configs/orca_authors.flags had it until 2026-12-08, and each
    # difference closed that day undone alone (on both the backbone and ORCA), 2026-12-08.
    *[Run(f"{label} (authors' protocol{what})", f"{name}_authors{suffix}", preset,
          AUTHORS + flags, "authors", baseline=None if not preset.endswith("_orca")
          else f"{name.removesuffix('_orca')}_authors{suffix}")
      for suffix, what, flags in (
          ("1207", " as until 2026-12-08", AUTHORS_UNTIL_1208),
          ("_l2", ", L2 on matrices and read rows", AUTHORS_UNTIL_1208[:3]),
          ("_levels", ", PLE's widths alike at both levels", ["--level_expert_units="]),
          ("_dense", ", towers without the FM terms", ["--tower_output=dense"]))
      for label, name, preset in (("MMoE", "mmoe", "mmoe"), ("MMoE + ORCA", "mmoe_orca", "mmoe_orca"),
                                  ("PLE", "ple", "ple"), ("PLE + ORCA", "ple_orca", "ple_orca"))
      if not (suffix == "_levels" and preset.startswith("mmoe"))],
]
DEFAULT_RUNS = [r.name for r in RUNS][:RUNS.index(next(r for r in RUNS
                                                       if r.name == "deepfm_ctr"))]
