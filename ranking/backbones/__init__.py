"""Backbones: the encoded features [batch, d] in, one representation per task out.

Every backbone is a Keras layer whose `call(x, training)` returns a dict: one entry per task
name (that task's representation, [batch, units]) and `shared` (a representation of what the
tasks share, ORCA's h_s). ORCA (`ranking.orca`) can therefore sit on any multi-task backbone.

| backbone        | module           | representation of each task                | shared (h_s)      |
|-----------------|------------------|--------------------------------------------|-------------------|
| `mlp`           | shared_bottom    | one MLP (single_ctr)                       | the same          |
| `shared_bottom` | shared_bottom    | one MLP shared by all towers               | the same          |
| `mmoe`          | mmoe             | softmax gate per task over shared experts  | an extra gate     |
| `ple`           | ple              | CGC levels of task and shared experts      | last shared gate  |
| `separate`      | separate         | an MLP per task on shared embeddings (ESMM)| the embeddings    |
| `aitm`          | aitm             | separate MLPs + adaptive information       | the embeddings    |
|                 |                  | transfer from ctr to the next task         |                   |
| `deepfm`        | deepfm           | [DNN, FM bi-interaction, first order]      | the same          |
| `dcn_v2`        | dcn_v2           | DNN on tfrs `Cross` layers                 | the same          |
| `autoint`       | autoint          | [self-attention over fields, DNN]          | the same          |
"""

from __future__ import annotations

from ranking.backbones.aitm import AITM
from ranking.backbones.autoint import AutoInt
from ranking.backbones.dcn_v2 import DCNv2
from ranking.backbones.deepfm import DeepFM
from ranking.backbones.mmoe import MMoE
from ranking.backbones.ple import PLE
from ranking.backbones.separate import Separate
from ranking.backbones.shared_bottom import SharedBottom

BACKBONES = ("mlp", "shared_bottom", "mmoe", "ple", "separate", "aitm", "deepfm", "dcn_v2",
             "autoint")
# Interaction backbones end in a representation the task's output layer reads directly (the
# original models' last layer is linear over it): their towers have no hidden layers.
INTERACTION_BACKBONES = ("deepfm", "dcn_v2", "autoint")


def layer_name(backbone: str) -> str:
    """The name of backbone `backbone`'s layer in a network."""
    return "bottom" if backbone in ("mlp", "shared_bottom") else backbone


def make_backbone(name: str, task_names, config, spec):
    """The backbone layer `name` for towers `task_names`, sized by `config` (a ModelConfig);
    `spec` (the FeatureSpec) gives the field layout that FM and AutoInt need."""
    common = dict(dropout=config.dropout)
    if name in ("mlp", "shared_bottom"):
        return SharedBottom(task_names, config.bottom_units, name="bottom", **common)
    if name == "mmoe":
        return MMoE(task_names, config.experts, config.expert_units, name="mmoe", **common)
    if name == "ple":
        return PLE(task_names, config.levels, config.task_experts, config.shared_experts,
                   config.expert_units, name="ple", **common)
    if name == "separate":
        return Separate(task_names, config.bottom_units, name="separate", **common)
    if name == "aitm":
        return AITM(task_names, config.bottom_units, name="aitm", **common)
    if name == "deepfm":
        return DeepFM(task_names, spec, config.field_dim, config.bottom_units, name="deepfm",
                      **common)
    if name == "dcn_v2":
        return DCNv2(task_names, config.cross_layers, config.bottom_units, name="dcn_v2",
                     **common)
    if name == "autoint":
        return AutoInt(task_names, spec, config.field_dim, config.attention_layers,
                       config.attention_heads, config.bottom_units, name="autoint", **common)
    raise ValueError(f"unknown backbone {name!r}; backbones: {', '.join(BACKBONES)}")
