"""Settings a run does not read are named (`ranking.applicability`): each case's expected notes
are written out by hand from the presets' table (ranking/presets.py) and the settings' help."""

import dataclasses

import pytest
from absl import flags

from core import settings
from ranking import applicability
from ranking.backbones import BACKBONES, BackboneConfig
from ranking.models import ModelConfig
from ranking.orca import OrcaConfig
from ranking.tasks import TowerConfig
from ranking.training import TrainConfig

from conftest import REPO

BASE = TrainConfig(train="logs/*.csv", stats="stats")


def config(preset="vr_ndt", **changes):
    """BASE with the preset and the nested settings given as {section: {field: value}}."""
    model = ModelConfig(preset=preset)
    top = {}
    for section, values in changes.items():
        if section in ("backbone", "towers", "orca", "regularization"):
            model = dataclasses.replace(model, **{section: dataclasses.replace(
                getattr(model, section), **values)})
        elif isinstance(values, dict):
            top[section] = dataclasses.replace(getattr(BASE, section), **values)
        else:
            top[section] = values
    return dataclasses.replace(BASE, model=model, **top)


def flags_named(notes):
    return [note.split()[1] for note in notes]


def test_defaults_and_settings_that_apply_give_no_note():
    assert applicability.unread_settings(BASE) == []
    assert applicability.unread_settings(config("mmoe", backbone={"experts": 8})) == []
    assert applicability.unread_settings(config(
        "ple", backbone={"levels": 3, "task_experts": 2, "expert_units": (32,)})) == []
    assert applicability.unread_settings(config(
        "deepfm", towers={"single_task": "dwell_bins", "dt_denominator": "clicks"})) == []
    assert applicability.unread_settings(config("vr_ndt", towers={
        "negative_weighting": "ndt", "negative_weight": 0.5})) == []
    assert applicability.unread_settings(config(
        "shared_bottom_dt", orca={"enabled": True, "mask_prob": 0.3})) == []


@pytest.mark.parametrize("case, expected", [
    (config("ple", backbone={"expert_units": (64,), "level_expert_units": "128,64/32"}),
     ["note: --expert_units=64 does not apply: PLE's experts take their widths from "
      "--level_expert_units; it is not used"]),
    (config("mmoe", backbone={"level_expert_units": "128,64/32"}),
     ["note: --level_expert_units=128,64/32 does not apply: a setting of the ple backbone; "
      "mmoe has the mmoe backbone; it is not used"]),
    (config("ple", backbone={"experts": 7}),
     ["note: --experts=7 does not apply: a setting of the mmoe backbone; ple has the ple "
      "backbone; it is not used"]),
    (config("mmoe", towers={"single_task": "dwell_bins"}),
     ["note: --single_task=dwell_bins does not apply: the task of the single-task presets "
      "deepfm, dcn_v2, autoint; mmoe trains its own towers (ctr, dwell_bins); it is not used"]),
    (config("deepfm", backbone={"cross_layers": 5}), ["--cross_layers=5"]),
    (config("mmoe", orca={"mask_prob": 0.5}), ["--mask_prob=0.5"]),
    (config("single_ctr", towers={"negative_weighting": "ndt"}), ["--negative_weighting=ndt"]),
    (config("single_ctr", metabalance={"enabled": True}), ["--metabalance"]),
    (config("single_ctr", towers={"dt_denominator": "clicks"}), ["--dt_denominator=clicks"]),
    (config("esmm", towers={"dt_denominator": "clicks"}), ["--dt_denominator=clicks"]),
    (config("vr_ndt", input_sharding="rows"), ["--input_sharding=rows"]),
    (config("vr_ndt", selection={"patience": 1, "early_stopping_metric": "auc_ctr"}),
     ["--early_stopping_metric=auc_ctr", "--patience=1"]),
    (config("vr_ndt", epochs=3, selection={"validation_days": 1}), ["--epochs=3"]),
    (config("mmoe_orca", orca={"mask_scope": "row", "nde_learning_rate_ratio": 2.0,
                               "instance_weights": False, "iw_a": -0.2}),
     ["--nde_learning_rate_ratio=2.0", "--iw_a=-0.2"]),
    (config("vr_ndt", optimizer={"embedding_learning_rate": 0.1}),
     ["--embedding_learning_rate=0.1"]),
    (config("vr_ndt", metabalance={"ratio": 0.5}), ["--metabalance_ratio=0.5"]),
    (config("vr_ndt", eval=None, baseline_metrics="m/eval_metrics.json"),
     ["note: --baseline_metrics=m/eval_metrics.json does not apply: RelaImpr of this run's "
      "evaluation, which needs --eval; it is not used"]),
    (config("mmoe", post_click_features=("category", "item_length")),
     ["note: --post_click_features=category,item_length does not apply: the features ORCA "
      "masks; mmoe has no ORCA (mmoe_orca, ple_orca, or --orca on shared_bottom_dt); it is not "
      "used"]),
])
def test_a_setting_the_run_does_not_read_is_named(case, expected):
    notes = applicability.unread_settings(case)
    if expected[0].startswith("note:"):
        assert notes == expected
    else:
        assert flags_named(notes) == expected, notes


def test_the_orca_authors_flagfile_names_the_other_backbones_sizes():
    """configs/orca_authors.flags serves mmoe_orca and ple_orca: each run names the other
    backbone's expert counts, and nothing else."""
    for preset, unread in (("mmoe_orca", ["--level_expert_units=128,64/32",
                                          "--task_experts=8", "--shared_experts=8"]),
                           ("ple_orca", ["--experts=8", "--expert_units=128,64,32"])):
        values = flags.FlagValues()
        settings.define_flags(TrainConfig, values)
        values(["train", f"--flagfile={REPO}/configs/orca_authors.flags", f"--model={preset}",
                "--train=logs/*.csv", "--stats=stats", "--validation_days=1"])
        run = settings.from_flags(TrainConfig, values)
        assert flags_named(applicability.unread_settings(run)) == unread, preset


# One preset per backbone, and a value other than the default of each backbone setting.
BACKBONE_PRESETS = {"mlp": "single_ctr", "shared_bottom": "shared_bottom_dt", "mmoe": "mmoe",
                    "ple": "ple", "separate": "esmm", "aitm": "aitm", "deepfm": "deepfm",
                    "dcn_v2": "dcn_v2", "autoint": "autoint"}
OTHER_VALUES = {"bottom_units": (16,), "experts": 3, "expert_units": (16,), "levels": 1,
                "task_experts": 2, "shared_experts": 2, "field_dim": 4, "cross_layers": 1,
                "attention_layers": 1, "attention_heads": 1, "level_expert_units": "16/8"}


def _weight_shapes(preset, backbone=BackboneConfig()):
    import tensorflow as tf

    from core.stats_artifact import DwellTargets
    from ranking import models

    from model_fixtures import tiny_spec

    bins = (10.0, 30.0, 60.0)  # three dwell bins' medians (seconds), any will do
    network = models.build_network(tiny_spec(), ModelConfig(preset, backbone=backbone),
                                   DwellTargets(bin_values=bins, bin_ndt=bins))
    return sorted((v.name, tuple(v.shape)) for v in network.trainable_variables
                  if not isinstance(v, tf.Tensor))


def test_the_backbone_settings_are_read_where_building_the_network_says():
    """Independently of the table: a backbone reads a setting when another value of it gives
    the network other weights. Built for every backbone and every backbone setting, the
    backbones whose weights change are exactly those the table says read it (and the table
    covers every backbone setting with a flag)."""
    assert {leaf.flag for leaf in settings.leaves(BackboneConfig)} == set(OTHER_VALUES)
    assert set(applicability._BACKBONE_SETTINGS) == set(OTHER_VALUES)  # noqa: SLF001
    assert set(BACKBONE_PRESETS) == set(BACKBONES)
    defaults = {backbone: _weight_shapes(preset) for backbone, preset in BACKBONE_PRESETS.items()}
    for flag, value in OTHER_VALUES.items():
        readers = {backbone for backbone, preset in BACKBONE_PRESETS.items()
                   if _weight_shapes(preset, dataclasses.replace(BackboneConfig(), **{flag: value}))
                   != defaults[backbone]}
        assert readers == set(applicability._BACKBONE_SETTINGS[flag]), flag  # noqa: SLF001
        for backbone, preset in BACKBONE_PRESETS.items():
            noted = applicability.unread_settings(config(preset, backbone={flag: value}))
            assert bool(noted) == (backbone not in readers), (flag, backbone, noted)


def test_every_orca_setting_is_in_the_table():
    assert {leaf.flag for leaf in settings.leaves(OrcaConfig)} - {"orca"} == set(
        applicability._ORCA_SETTINGS + applicability._INSTANCE_WEIGHT_SETTINGS  # noqa: SLF001
        + ("nde_learning_rate_ratio",))
    assert TowerConfig().single_task == "ctr"


def test_post_click_marks_of_the_feature_config_are_named_without_orca():
    """The feature config's marks (those the flag does not name: the flag has its own note)."""
    from model_fixtures import tiny_spec

    spec = tiny_spec({"features": {"category": {"post_click": True}}},
                     post_click=("item_length",))
    assert spec.post_click == ("category", "item_length")
    run = config("vr_ndt", post_click_features=("item_length",))
    assert applicability.unread_post_click_marks(run, spec) == [
        "note: the feature config marks category post_click, which only ORCA reads (it masks "
        "them); vr_ndt has no ORCA (mmoe_orca, ple_orca, or --orca on shared_bottom_dt): the "
        "mark is not used"]
    assert applicability.unread_post_click_marks(config("ple_orca"), spec) == []
    assert applicability.unread_post_click_marks(config(
        "shared_bottom_dt", orca={"enabled": True}), spec) == []
    assert applicability.unread_post_click_marks(config("vr_ndt"), tiny_spec()) == []
    # With ORCA the flag is read: no note.
    assert applicability.unread_settings(config(
        "mmoe_orca", post_click_features=("category",))) == []
