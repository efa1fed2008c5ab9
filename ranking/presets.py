"""The model presets of SPEC §4, registered by name (the papers' table rows).

| preset                 | backbone (`backbones`) | towers (`tasks`)                 | default serving score |
|------------------------|------------------------|----------------------------------|-----------------------|
| single_ctr             | mlp                    | ctr                              | ctr                   |
| ctr_logdt              | shared_bottom          | ctr, log_dwell                   | ctr                   |
| vr_logdt               | shared_bottom          | valid_read, log_dwell            | valid_read            |
| vr_ndt                 | shared_bottom          | valid_read, weighted_valid_read  | P + P' (their sum)    |
| shared_bottom_dt       | shared_bottom          | ctr, dwell_bins                  | log ctr + log E[dwell]|
| mmoe, ple              | mmoe, ple              | ctr, dwell_bins                  | log ctr + log E[dwell]|
| esmm                   | separate               | ctr, entire_space_dwell          | log ctr + log E[dwell]|
| aitm                   | aitm                   | ctr, dwell_bins                  | log ctr + log E[dwell]|
| mmoe_orca, ple_orca    | mmoe, ple (or          | ctr, dwell_bins (raw), nde       | log ctr + log E[dwell]|
|                        | shared_bottom_dt with  | (`ranking.orca`)                 | (debiased bins)       |
|                        | `--orca`)              |                                  |                       |
| deepfm, dcn_v2, autoint| as named               | ctr, or dwell_bins (single_task) | ctr / log E[dwell]    |

`serving` names the towers' outputs the default score fuses (`ranking.fusion.default_fusion`:
E[dwell] is `expected_dwell_seconds`, the expected dwell per impression with the click
probability). The first tower is the model's main task (MetaBalance balances the others against it).
"""

from __future__ import annotations

import dataclasses

from ranking.backbones import BACKBONES


@dataclasses.dataclass(frozen=True)
class Preset:
    """A registered preset: its towers (task names; a single-task preset's default task), the
    outputs its serving score sums, its backbone, and whether ORCA is on by preset."""

    name: str
    towers: tuple[str, ...]
    serving: tuple[str, ...]
    backbone: str = "shared_bottom"
    single_task: bool = False  # one tower, chosen by TowerConfig.single_task
    orca: bool = False

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"preset {self.name}: unknown backbone {self.backbone!r}")


def _register(*presets: Preset) -> dict[str, Preset]:
    return {preset.name: preset for preset in presets}


_BINS = ("ctr", "dwell_bins")
_BINS_SCORE = ("ctr", "expected_ndt")
PRESETS = _register(
    Preset("single_ctr", ("ctr",), ("ctr",), backbone="mlp"),
    Preset("ctr_logdt", ("ctr", "log_dwell"), ("ctr",)),
    Preset("vr_logdt", ("valid_read", "log_dwell"), ("valid_read",)),
    Preset("vr_ndt", ("valid_read", "weighted_valid_read"),
           ("valid_read", "weighted_valid_read")),
    Preset("shared_bottom_dt", _BINS, _BINS_SCORE),
    Preset("mmoe", _BINS, _BINS_SCORE, backbone="mmoe"),
    Preset("ple", _BINS, _BINS_SCORE, backbone="ple"),
    Preset("esmm", ("ctr", "entire_space_dwell"), _BINS_SCORE, backbone="separate"),
    Preset("aitm", _BINS, _BINS_SCORE, backbone="aitm"),
    Preset("mmoe_orca", _BINS, _BINS_SCORE, backbone="mmoe", orca=True),
    Preset("ple_orca", _BINS, _BINS_SCORE, backbone="ple", orca=True),
    Preset("deepfm", ("ctr",), ("ctr",), backbone="deepfm", single_task=True),
    Preset("dcn_v2", ("ctr",), ("ctr",), backbone="dcn_v2", single_task=True),
    Preset("autoint", ("ctr",), ("ctr",), backbone="autoint", single_task=True),
)


def preset(name: str) -> Preset:
    """The preset `name`; ValueError naming the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name]
