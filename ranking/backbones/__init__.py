"""Backbones: the encoded features [batch, d] in, one representation per task out.

Every backbone is a Keras layer whose `call(x, training)` returns a dict: one entry per task
name (that task's representation, [batch, units]) and `shared` (a representation of what the
tasks share, ORCA's h_s). `BACKBONES` registers each with what the rest of the model needs to
know of it: its layer's name in a network, whether it is an interaction model (whose towers
have no hidden layers) and whether ORCA can sit on it (task representations and a shared one
drawn from the same experts or bottom).

| backbone        | module           | representation of each task                | shared (h_s)      | ORCA |
|-----------------|------------------|--------------------------------------------|-------------------|------|
| `mlp`           | shared_bottom    | one MLP (single_ctr)                       | the same          |      |
| `shared_bottom` | shared_bottom    | one MLP shared by all towers               | the same          | yes  |
| `mmoe`          | mmoe             | softmax gate per task over shared experts  | an extra gate     | yes  |
| `ple`           | ple              | CGC levels of task and shared experts      | last shared gate  | yes  |
| `separate`      | separate         | an MLP per task on shared embeddings (ESMM)| the embeddings    |      |
| `aitm`          | aitm             | separate MLPs + adaptive information       | the embeddings    |      |
|                 |                  | transfer from ctr to the next task         |                   |      |
| `deepfm`        | deepfm           | [DNN, FM bi-interaction, first order]      | the same          |      |
| `dcn_v2`        | dcn_v2           | DNN on tfrs `Cross` layers                 | the same          |      |
| `autoint`       | autoint          | [self-attention over fields, DNN]          | the same          |      |
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from core.settings import setting
from ranking.backbones.aitm import AITM
from ranking.backbones.autoint import AutoInt
from ranking.backbones.dcn_v2 import DCNv2
from ranking.backbones.deepfm import DeepFM
from ranking.backbones.mmoe import MMoE
from ranking.backbones.ple import PLE
from ranking.backbones.separate import Separate
from ranking.backbones.shared_bottom import SharedBottom


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """Sizes of the backbones (each reads the fields it needs)."""

    bottom_units: tuple[int, ...] = setting(
        (256, 128), "Widths of the shared bottom, the MLP backbone, the interaction models' DNN "
        "and ESMM's and AITM's per-task networks.")
    experts: int = setting(4, "MMoE: shared experts.")
    expert_units: tuple[int, ...] = setting((128, 64), "MMoE and PLE: expert widths.")
    levels: int = setting(2, "PLE: CGC levels.")
    level_expert_units: str = setting(
        "", "PLE: each level's expert widths, levels separated by '/', as many as --levels: "
        "e.g. 128,64/32 (the ORCA authors': the first level's experts 128 -> 64, the second's "
        "32). Empty: --expert_units at every level.")
    task_experts: int = setting(1, "PLE: experts per task and level.")
    shared_experts: int = setting(1, "PLE: shared experts per level.")
    field_dim: int = setting(8, "deepfm, autoint: width of each field's vector.")
    cross_layers: int = setting(3, "dcn_v2: cross layers.")
    attention_layers: int = setting(2, "autoint: interacting layers.")
    attention_heads: int = setting(2, "autoint: attention heads.")

    def check(self) -> None:
        """ValueError naming a size that cannot make a backbone."""
        for name in ("bottom_units", "expert_units"):
            units = getattr(self, name)
            if not units or any(int(u) < 1 for u in units):
                raise ValueError(f"{name} must be one or more widths >= 1, not {units!r}")
        for name in ("experts", "levels", "task_experts", "shared_experts", "field_dim",
                     "attention_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        for name in ("cross_layers", "attention_layers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        levels = self.ple_level_units
        if len(levels) != self.levels:
            raise ValueError(f"--level_expert_units={self.level_expert_units} gives "
                             f"{len(levels)} levels; --levels is {self.levels}")

    @property
    def ple_level_units(self) -> tuple[tuple[int, ...], ...]:
        """PLE's expert widths per level (ValueError when `level_expert_units` is not widths
        >= 1 like 128,64/32)."""
        if not self.level_expert_units.strip():
            return (tuple(int(u) for u in self.expert_units),) * self.levels
        try:
            levels = tuple(tuple(int(u) for u in part.split(","))
                           for part in self.level_expert_units.split("/"))
        except ValueError:
            levels = ()
        if not levels or any(u < 1 for level in levels for u in level):
            raise ValueError(f"--level_expert_units must be widths >= 1 with the levels "
                             f"separated by '/', like 128,64/32, not "
                             f"{self.level_expert_units!r}")
        return levels


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A registered backbone: `make(task_names, config, regularization, spec)` gives its layer
    (`regularization`: a `ranking.regularization.RegularizationConfig`, for dropout and batch
    normalization). `supports_orca`: it returns the shared representation h_s ("shared") ORCA's
    NDE reads; `trainable_shared`: a gate mixes h_s, so `make(..., nde_shared=MODE)` can also
    return it as ORCA's NDE loss trains it ("nde_shared"; `ranking.orca`)."""

    name: str
    layer_name: str
    make: Callable
    interaction: bool = False  # ends in a representation the output layer reads directly
    supports_orca: bool = False
    trainable_shared: bool = False


def _register(*entries: Backbone) -> dict[str, Backbone]:
    return {entry.name: entry for entry in entries}


BACKBONES = _register(
    Backbone("mlp", "bottom", lambda tasks, c, r, spec: SharedBottom(
        tasks, c.bottom_units, name="bottom", dropout=r.dropout, batch_norm=r.batch_norm)),
    Backbone("shared_bottom", "bottom", lambda tasks, c, r, spec: SharedBottom(
        tasks, c.bottom_units, name="bottom", dropout=r.dropout, batch_norm=r.batch_norm),
        supports_orca=True),
    Backbone("mmoe", "mmoe", lambda tasks, c, r, spec, nde_shared="stop": MMoE(
        tasks, c.experts, c.expert_units, name="mmoe", dropout=r.dropout,
        batch_norm=r.batch_norm, nde_shared=nde_shared), supports_orca=True,
        trainable_shared=True),
    Backbone("ple", "ple", lambda tasks, c, r, spec, nde_shared="stop": PLE(
        tasks, c.levels, c.task_experts, c.shared_experts, c.expert_units, name="ple",
        level_units=c.ple_level_units,
        dropout=r.dropout, batch_norm=r.batch_norm, nde_shared=nde_shared), supports_orca=True,
        trainable_shared=True),
    Backbone("separate", "separate", lambda tasks, c, r, spec: Separate(
        tasks, c.bottom_units, name="separate", dropout=r.dropout, batch_norm=r.batch_norm)),
    Backbone("aitm", "aitm", lambda tasks, c, r, spec: AITM(
        tasks, c.bottom_units, name="aitm", dropout=r.dropout, batch_norm=r.batch_norm)),
    Backbone("deepfm", "deepfm", lambda tasks, c, r, spec: DeepFM(
        tasks, spec, c.field_dim, c.bottom_units, name="deepfm", dropout=r.dropout,
        batch_norm=r.batch_norm), interaction=True),
    Backbone("dcn_v2", "dcn_v2", lambda tasks, c, r, spec: DCNv2(
        tasks, c.cross_layers, c.bottom_units, name="dcn_v2", dropout=r.dropout,
        batch_norm=r.batch_norm), interaction=True),
    Backbone("autoint", "autoint", lambda tasks, c, r, spec: AutoInt(
        tasks, spec, c.field_dim, c.attention_layers, c.attention_heads, c.bottom_units,
        name="autoint", dropout=r.dropout, batch_norm=r.batch_norm), interaction=True),
)
