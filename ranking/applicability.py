"""Which settings a training run reads: `unread_settings(config)` names each setting given a
value other than its default that this run's preset, backbone or other settings leave unread
(`--experts` on `ple`, an ORCA option without ORCA, `--patience` without a validation window).

Training says each in a `note:` and trains as it would without it; config.json keeps the value
as given. A note, not an error: one flagfile often serves several presets (the ORCA authors'
protocol, `configs/orca_authors.flags`, sets MMoE's and PLE's sizes for both), and a run must
not fail over a setting it has no use for. A setting whose effect the run cannot have and which
a user would not give by accident (`--noorca` on an ORCA preset) is an error where the flags
are read (`ranking.train`).
"""

from __future__ import annotations

import dataclasses

from core import settings
from ranking.backbones import BACKBONES

# Backbones of each backbone setting ("MMoE: shared experts.": only mmoe reads it).
_BACKBONE_SETTINGS = {
    "bottom_units": ("mlp", "shared_bottom", "separate", "aitm", "deepfm", "dcn_v2", "autoint"),
    "experts": ("mmoe",),
    "expert_units": ("mmoe", "ple"),
    "levels": ("ple",),
    "level_expert_units": ("ple",),
    "task_experts": ("ple",),
    "shared_experts": ("ple",),
    "field_dim": ("deepfm", "autoint"),
    "cross_layers": ("dcn_v2",),
    "attention_layers": ("autoint",),
    "attention_heads": ("autoint",),
}
_ORCA_SETTINGS = ("mask_prob", "mask_scope", "nde_head", "shared_representation", "alpha", "beta",
                  "instance_weights", "scd_heads", "orca_serve")
_INSTANCE_WEIGHT_SETTINGS = ("iw_a", "iw_b", "iw_c", "iw_balance")
_SELECTION_SETTINGS = ("validate_every", "max_epochs", "early_stopping_metric", "patience",
                       "min_delta", "min_steps", "refit", "validation_cache_mb")
# Towers whose loss reads --dt_denominator (ESMM's entire-space loss is over every impression).
_DWELL_BIN_TOWERS = ("dwell_bins",)


def _why_unread(flag: str, config) -> str | None:
    """Why `flag` is not read by a run of `config` (a `ranking.training.TrainConfig`), or None
    when it is (or is not a setting this module knows: those are always read)."""
    model = config.model
    backbone = model.spec.backbone
    towers = model.tower_names
    preset = model.preset
    if flag in _BACKBONE_SETTINGS and backbone not in _BACKBONE_SETTINGS[flag]:
        readers = ", ".join(_BACKBONE_SETTINGS[flag])
        return (f"a setting of the {readers} backbone{'s' if ',' in readers else ''}; "
                f"{preset} has the {backbone} backbone")
    if flag == "expert_units" and backbone == "ple" and model.backbone.level_expert_units.strip():
        return "PLE's experts take their widths from --level_expert_units"
    if flag in ("negative_weight", "negative_weighting") and \
            "weighted_valid_read" not in towers:
        return f"a setting of the weighted valid-read loss (vr_ndt); {preset} has no such tower"
    if flag == "single_task" and not model.spec.single_task:
        return f"the task of the single-task presets deepfm, dcn_v2, autoint; {preset} trains " \
               f"its own towers ({', '.join(towers)})"
    if flag == "dt_denominator" and not any(t in _DWELL_BIN_TOWERS for t in towers):
        if "entire_space_dwell" in towers:
            return f"a setting of the dwell-bin losses over clicks; {preset}'s dwell loss is " \
                   "ESMM's over every impression (divided by the batch)"
        return f"a setting of the dwell-bin losses; {preset} has no dwell-bin tower"
    if flag == "orca" and model.spec.orca:
        return None  # --orca on mmoe_orca / ple_orca: what they have already
    if flag == "post_click_features" and not model.uses_orca:
        return f"the features ORCA masks; {preset} has no ORCA (mmoe_orca, ple_orca, or " \
               "--orca on shared_bottom_dt)"
    if flag in _ORCA_SETTINGS and not model.uses_orca:
        return f"an ORCA setting; {preset} has no ORCA (mmoe_orca, ple_orca, or --orca on " \
               "shared_bottom_dt)"
    if flag == "nde_learning_rate_ratio" and (not model.uses_orca
                                              or model.orca.mask_scope != "batch"):
        return "the NDE optimizer's rate, which only ORCA with --mask_scope=batch has"
    if flag in _INSTANCE_WEIGHT_SETTINGS and (not model.uses_orca
                                              or not model.orca.instance_weights):
        return "an ORCA instance-weight setting; this run has no instance weights " + (
            "(--noinstance_weights)" if model.uses_orca else f"({preset} has no ORCA)")
    if flag == "baseline_metrics" and not config.eval:
        return "RelaImpr of this run's evaluation, which needs --eval"
    if flag == "embedding_learning_rate" and config.optimizer.embedding_optimizer == "same":
        return "the rate of --embedding_optimizer, which is `same` (--optimizer and " \
               "--learning_rate train the embeddings too)"
    if flag == "metabalance" and len(towers) < 2 and not model.uses_orca:
        return f"MetaBalance balances auxiliary tasks against the main one; {preset} here " \
               f"has one task ({towers[0]})"
    if flag in ("metabalance_ratio", "metabalance_beta") and not config.metabalance.enabled:
        return "a MetaBalance setting; --metabalance is off"
    if flag == "input_sharding" and config.strategy != "multi_worker_mirrored":
        return f"how multi_worker_mirrored workers share the input; --strategy={config.strategy}"
    if flag in _SELECTION_SETTINGS and not config.selection.enabled:
        return "a model-selection setting; there is no validation window (--validation or " \
               "--validation_days)"
    if flag == "epochs" and config.selection.enabled:
        return f"with a validation window --max_epochs={config.selection.max_epochs} bounds " \
               "the epochs and early stopping ends sooner (--patience)"
    return None


def unread_settings(config) -> list[str]:
    """`note:` lines, one per flag of `config` (a `ranking.training.TrainConfig`) given a value
    other than its default that this run does not read, in flag order."""
    notes = []
    for leaf in settings.leaves(type(config)):
        value = config
        for name in leaf.path:
            value = getattr(value, name)
        if leaf.field.default is dataclasses.MISSING or value == leaf.field.default:
            continue
        why = _why_unread(leaf.flag, config)
        if why:
            notes.append(f"note: {_flag_text(leaf.flag, value)} does not apply: {why}; it is "
                         "not used")
    return notes


def unread_post_click_marks(config, spec) -> list[str]:
    """A `note:` when the feature config marks features `post_click` (in `spec`, a
    `ranking.features.FeatureSpec`; those --post_click_features names have their flag's note)
    and the run of `config` has no ORCA, their only reader."""
    marked = [name for name in spec.post_click if name not in config.post_click_features]
    if not marked or config.model.uses_orca:
        return []
    return [f"note: the feature config marks {', '.join(marked)} post_click, which only ORCA "
            f"reads (it masks them); {config.model.preset} has no ORCA (mmoe_orca, ple_orca, "
            "or --orca on shared_bottom_dt): the mark is not used"]


def _flag_text(flag: str, value) -> str:
    """The flag as a user writes it: --orca / --noorca, --expert_units=64,32, --experts=8."""
    if isinstance(value, bool):
        return f"--{'' if value else 'no'}{flag}"
    if isinstance(value, tuple):
        return f"--{flag}={','.join(str(v) for v in value)}"
    return f"--{flag}={value}"


# Every backbone a setting above names exists (a renamed backbone would silently never match).
assert all(b in BACKBONES for names in _BACKBONE_SETTINGS.values() for b in names)
