"""ORCA (SPEC §4): the negative CTR dependency extractor (NDE) and its debiased dwell logits.

On a backbone that supports it (MMoE, PLE or the shared bottom: `ranking.backbones`) with a CTR
tower (p_ctr) and a raw dwell tower (logits z_raw over the dwell bins), ORCA adds:

- SCD, the cross-task attention over the two tokens [stopgrad(h_ctr), stopgrad(h_dt)];
- the NDE tower on concat(SCD output, h_s) giving logits z_nde [batch, bins];
- debiased logits z = stopgrad(z_raw) - z_nde; the model serves softmax(z) (SPEC §4), or,
  with `serve` "validated" and a validation window, softmax(z_raw) when that window finds the
  debiased head worse (a gate g in z = stopgrad(z_raw) - g z_nde, 1 in training; `choose_head`).

The inputs of the NDE path are stopped, so no gradient of its loss reaches the embeddings or the
raw towers, and the CTR and raw-DT losses never see the NDE variables. h_s (the backbone's
shared representation) is stopped too unless `shared_representation` lets the NDE loss train
the gate that mixes it (`gate`: MMoE's extra gate, PLE's last shared gate), or that gate and the
experts it mixes (`gate_and_experts`); nothing else.

**NDE head** (`nde_head`): `project` (this project's: one residual layer of multi-head
self-attention over the tokens, flattened to [batch, 2 d], then a tower of the towers' widths
and kind) or `authors` (after the authors' code: the tokens projected to 32 wide, attention
with a learned linear residual of the unprojected tokens, ReLU, flattened, a linear 32-unit
projection (with a ReLU until 2026-12-08; docs/orca.md lists what differs still); then with h_s
a 16-unit layer (batch normalization and dropout when the model has them), an 8-unit ReLU
layer and the bins). With `--tower_output=fm_terms` the NDE's last hidden layer also reads the
embeddings' first-order and FM terms, stopped (`ranking.output_layers`), as the authors'.

**Counterfactual masking** (training only; `mask_scope`):

- `row` (this project's): each example is masked with probability `mask_prob` inside the
  training step; the NDE path sees the backbone's representations of the masked input (a
  second, stop-gradient forward of the encoder and backbone, in inference mode: it updates no
  batch-norm statistics and draws no dropout noise, so the backbone the towers train is not
  disturbed). Masks are drawn statelessly from (seed, a counter of training calls kept in the
  checkpoint), so a resumed run draws what an uninterrupted one would.
- `batch` (the authors'): a whole batch is masked with probability `mask_prob` (decided from
  (seed, global step)); it gets its ordinary step on the unmasked input, then an extra step
  (`nde_step_loss`) in which the whole model reads the masked input (in inference mode) and
  only the NDE tower is updated, by its own Adam optimizer at `nde_learning_rate_ratio` x the
  learning rate; the raw logits being corrected and the instance weights come from that masked
  forward. The NDE reads the ordinary forward otherwise.

At evaluation and serving the NDE reads the ordinary forward: one pass, no mask input.

ORCA attaches itself to a model (`ranking.models` calls `adapt_tasks` and `attach` when the
preset or `--orca` asks for it): the model's `dwell_bins` task becomes the raw tower (outputs
`raw_dwell_logits`, ..., loss weighed by alpha) and ORCA adds its `nde` task, whose loss weighs
each clicked example by ORCA's instance weight (`instance_weights`) and whose outputs are the
debiased `dwell_*` the model serves. Its settings are `OrcaConfig`; `configs/orca_authors.flags`
sets each option the ORCA issue lists the authors' way.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import tensorflow as tf

from core.errors import InputError
from core.settings import setting
from ranking import losses
from ranking.backbones import BACKBONES
from ranking.layers import MLP, StatelessDropout, StaticLayer, stateless_seed
from ranking.losses import global_sum
from ranking.output_layers import WIDE, make_tower, tower_input
from ranking.tasks import DwellBinsTask, Task

# The towers ORCA reads: the click tower and the dwell-bin tower it debiases.
CTR_TASK, DWELL_TASK = "ctr", "dwell_bins"
RAW_PREFIX = "raw_"
MASK_SCOPES = ("row", "batch")
NDE_HEADS = ("project", "authors")
SHARED_REPRESENTATIONS = ("stop", "gate", "gate_and_experts")
IW_BALANCES = ("none", "bin")
SERVED_HEADS = ("debiased", "validated")
# The authors' NDE head widths: attention and projection, the hidden layers after it.
AUTHORS_ATTENTION, AUTHORS_UNITS = 32, (16, 8)


@dataclasses.dataclass(frozen=True)
class OrcaConfig:
    """ORCA's settings (SPEC §4). `enabled` adds ORCA to `shared_bottom_dt`; the *_orca presets
    have it by preset."""

    enabled: bool = setting(False, "ORCA on shared_bottom_dt (mmoe_orca and ple_orca have it "
                            "by preset).", flag="orca")
    mask_prob: float = setting(0.2, "ORCA: probability that an example's (--mask_scope=row) or "
                               "a batch's (batch) post-click features are masked for the NDE "
                               "(training only).")
    mask_scope: str = setting(
        "row", "ORCA: row (each example masked inside the step) or batch (whole batches masked, "
        "each with an extra step that trains only the NDE on the masked forward: the "
        "authors' code).", choices=MASK_SCOPES)
    nde_learning_rate_ratio: float = setting(
        1.0, "ORCA, --mask_scope=batch: learning rate of the NDE's own optimizer, as a "
        "multiple of --learning_rate.")
    nde_head: str = setting("project", "ORCA's NDE head: project (this project's) or authors "
                            "(as the authors' code; ranking/orca.py).", choices=NDE_HEADS)
    shared_representation: str = setting(
        "stop", "ORCA: what the NDE loss trains through h_s: nothing (stop), the gate that "
        "mixes it (gate), or that gate and the experts it mixes (gate_and_experts).",
        choices=SHARED_REPRESENTATIONS)
    alpha: float = setting(1.0, "ORCA: weight of the raw dwell-bin loss.", minimum=0)
    beta: float = setting(1.0, "ORCA: weight of the debiased (NDE) loss.", minimum=0)
    instance_weights: bool = setting(True, "ORCA: weigh the NDE loss by relu(l_ctr^a l_dt^b + "
                                     "c) (else 1).")
    iw_a: float = setting(-0.1, "ORCA instance weights: exponent a of l_ctr.")
    iw_b: float = setting(0.8, "ORCA instance weights: exponent b of l_dt.")
    iw_c: float = setting(-0.2, "ORCA instance weights: offset c.")
    iw_balance: str = setting(
        "none", "ORCA instance weights: rescaled to mean 1 over the batch's clicked rows (none, "
        "the paper's), or over each true bin's clicked rows (bin: every bin keeps its share of "
        "the NDE loss; the weights only choose which of its rows count most; it lost on the "
        "simulator: docs/orca.md).",
        choices=IW_BALANCES)
    scd_heads: int = setting(2, "ORCA: heads of the SCD attention.")
    # The default is SPEC §4's: serving uses softmax(z).
    serve: str = setting(
        "debiased", "ORCA: the dwell head the model serves: debiased (always, as the paper and "
        "SPEC §4) or validated (with a validation window, the debiased head unless it is worse "
        "than the raw head there on the mean of the five class metrics, then the raw one; it "
        "needs a validation window).", choices=SERVED_HEADS, flag="orca_serve")
    mask_seed: int = 0  # training sets it from its --seed

    def check(self) -> None:
        if not 0.0 <= self.mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in [0, 1], not {self.mask_prob}")
        if self.scd_heads < 1:
            raise ValueError(f"scd_heads must be >= 1, not {self.scd_heads}")
        if self.nde_learning_rate_ratio <= 0:
            raise ValueError("nde_learning_rate_ratio must be > 0")


def check_model(preset_name: str, towers, backbone: str, config: OrcaConfig) -> None:
    """ValueError unless ORCA, with `config`, can sit on a model of these towers and
    backbone."""
    if tuple(towers) != (CTR_TASK, DWELL_TASK) or not BACKBONES[backbone].supports_orca:
        able = ", ".join(name for name, b in BACKBONES.items() if b.supports_orca)
        raise ValueError(f"ORCA needs a {CTR_TASK} and a {DWELL_TASK} tower on a {able} "
                         f"backbone; {preset_name} has {', '.join(towers)} on {backbone}")
    if config.shared_representation != "stop" and not BACKBONES[backbone].trainable_shared:
        able = ", ".join(name for name, b in BACKBONES.items() if b.trainable_shared)
        raise ValueError(f"--shared_representation={config.shared_representation} needs a gate "
                         f"that mixes h_s ({able}); {preset_name} is on {backbone}")


def check_features(config: OrcaConfig, spec, preset_name: str) -> None:
    """InputError when counterfactual masking has no post-click feature to mask."""
    if config.mask_prob > 0 and not spec.post_click:
        raise InputError(f"{preset_name}: ORCA's counterfactual masking needs post-click "
                         "features (--post_click_features or post_click in the feature "
                         "config); or set --mask_prob=0")


def adapt_tasks(tasks: list[Task], config: OrcaConfig) -> list[Task]:
    """The model's tasks under ORCA: the dwell-bin task becomes the raw tower (`raw_*` outputs,
    loss weighed by alpha) and the `nde` task comes last."""
    adapted = []
    for task in tasks:
        if task.task == DWELL_TASK:
            task = DwellBinsTask(task.config, task.targets, prefix=RAW_PREFIX, weight=config.alpha)
        adapted.append(task)
    dwell = next(t for t in adapted if t.task == DWELL_TASK)
    return adapted + [NdeTask(dwell.config, dwell.targets, weight=config.beta, orca=config)]


def attach(config: OrcaConfig, tasks: list[Task], inputs, representations, outputs,
           masked_forward, tower_units, regularization, tower_output: str = "dense") -> dict:
    """ORCA's outputs for a network: the `nde` task's (debiased `dwell_*`) and `nde_logits`.
    `masked_forward(features, post_click_mask)` reruns the encoder and backbone (inference
    mode) on masked features; `tower_output` the towers' kind (`ranking.output_layers`)."""
    nde = tasks[-1]
    head = OrcaHead(nde.output_units, tower_units, config, masked_forward,
                    dropout=regularization.dropout, batch_norm=regularization.batch_norm,
                    tower_output=tower_output, name="orca")
    debiased = head(inputs, representations, outputs[f"{RAW_PREFIX}dwell_logits"])
    return {**nde.outputs(debiased["dwell_logits"]), "nde_logits": debiased["nde_logits"]}


class NdeTask(DwellBinsTask):
    """ORCA's debiased dwell distribution softmax(z), z = stopgrad(z_raw) - g z_nde (the NDE
    tower's logits come from `OrcaHead`, not from a tower of this task; the gate g is 1 but
    when --orca_serve=validated chose the raw head for serving).

    Loss: beta * sum_i w_i CE(z, bin)_i / N over clicked rows (or / clicks with
    `dt_denominator` "clicks": SPEC §4's mean_i), w_i ORCA's instance weights (`instance_weights`,
    from the ctr logit and the raw dwell logits, no gradient) or 1 without them. Outputs:
    `dwell_logits` (z), `dwell_probs`, `expected_dwell_seconds`, `expected_ndt` (what the model
    serves)."""

    name_ = "nde"
    has_tower = False

    def __init__(self, *args, orca: OrcaConfig = OrcaConfig(), **kwargs):
        super().__init__(*args, **kwargs)
        self.orca = orca

    def loss(self, labels, outputs):
        weights = None
        if self.orca.instance_weights:
            weights = instance_weights(
                labels["dwell_bin"], outputs[f"{CTR_TASK}_logit"],
                outputs[f"{RAW_PREFIX}dwell_logits"], self.orca.iw_a, self.orca.iw_b,
                self.orca.iw_c, per_bin=self.orca.iw_balance == "bin")
        return self.weight * losses.clicked_sparse_cross_entropy(
            labels["dwell_bin"], outputs["dwell_logits"], weights,
            denominator=self.config.dt_denominator)


def instance_weights(dwell_bin: tf.Tensor, ctr_logit: tf.Tensor, raw_logits: tf.Tensor,
                     a: float = -0.1, b: float = 0.8, c: float = -0.2,
                     per_bin: bool = False) -> tf.Tensor:
    """ORCA's inverse instance weights, float32 [batch], without gradient (SPEC §4).

    For a clicked row (dwell_bin >= 0): w = relu(l_ctr^a * l_dt^b + c), l_ctr its CTR
    cross-entropy -log sigmoid(ctr_logit) and l_dt its raw-dwell cross-entropy, both floored at
    1e-6 (a < 0 would make an exact CTR prediction infinite); unclicked rows weigh 0. The
    weights are rescaled to mean 1 over the global batch's clicked rows, or are all 1 there
    when they sum to about 0. a < 0: accurate CTR and poor DT weigh most.

    `per_bin`: rescaled to mean 1 over the clicked rows of each true bin instead (a bin whose
    weights sum to about 0 gets 1s), so that the weights move no loss from one bin to another
    (not the paper's; on the simulator it lost more than the paper's weights: docs/orca.md).
    """
    dwell_bin = tf.cast(dwell_bin, tf.int64)
    clicked = dwell_bin >= 0
    ctr_logit = tf.stop_gradient(tf.cast(ctr_logit, tf.float32))
    raw_logits = tf.stop_gradient(tf.cast(raw_logits, tf.float32))
    l_ctr = tf.maximum(tf.nn.softplus(-ctr_logit), 1e-6)
    safe_bin = tf.where(clicked, dwell_bin, tf.zeros_like(dwell_bin))
    l_dt = tf.maximum(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=safe_bin, logits=raw_logits), 1e-6)
    raw = tf.nn.relu(tf.pow(l_ctr, a) * tf.pow(l_dt, b) + c)
    raw = tf.where(clicked, raw, 0.0)
    ones = tf.cast(clicked, tf.float32)
    if per_bin:
        # [bins] clicks and weight sums of each true bin over the global batch.
        member = tf.one_hot(safe_bin, tf.shape(raw_logits)[-1]) * ones[:, None]
        clicks = tf.gather(global_sum(tf.reduce_sum(member, 0)), safe_bin)
        total = tf.gather(global_sum(tf.reduce_sum(member * raw[:, None], 0)), safe_bin)
    else:
        clicks = global_sum(tf.reduce_sum(ones))
        total = global_sum(tf.reduce_sum(raw))
    return tf.where(total > 1e-12, raw * tf.math.divide_no_nan(clicks, total), ones)


class CrossTaskAttention(StaticLayer):
    """SCD, this project's: tokens [h_ctr, h_dt] ([batch, d] each) -> [batch, 2 d]: one
    residual layer of multi-head self-attention over the two tokens, flattened."""

    def __init__(self, heads: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads
        self.attention = None

    def build(self, input_shape):
        width = int(input_shape[0][-1])
        self.attention = tf.keras.layers.MultiHeadAttention(
            num_heads=self.heads, key_dim=max(1, width // self.heads), name="attention")
        super().build(input_shape)

    def call(self, tokens):
        h_ctr, h_dt = tokens
        stacked = tf.stack([h_ctr, h_dt], axis=1)  # [batch, 2, d]
        mixed = stacked + self.attention(stacked, stacked)
        return tf.reshape(mixed, [-1, 2 * stacked.shape[-1]])


class _StatelessDropoutAttention(tf.keras.layers.MultiHeadAttention):
    """MultiHeadAttention whose dropout on the attention weights is `StatelessDropout` (its
    masks keyed by a checkpointed count: a resumed run draws what the uninterrupted run
    would); without dropout, Keras' own layer, which draws nothing."""

    def _build_attention(self, rank):
        super()._build_attention(rank)
        if self._dropout:
            self._dropout_layer = StatelessDropout(self._dropout, name="attention_dropout")


class ProjectedAttention(StaticLayer):
    """SCD as the authors' code has it (an AutoInt interacting layer): tokens [h_ctr, h_dt]
    ([batch, d] each) projected to `width`, multi-head self-attention (dropout on its weights)
    plus a learned linear residual of the unprojected tokens, ReLU, flattened, and a linear
    `width`-unit projection (their `attn_fc`) -> [batch, width]."""

    def __init__(self, heads: int = 2, width: int = AUTHORS_ATTENTION, dropout: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.projection = tf.keras.layers.Dense(width, use_bias=False, name="projection")
        self.attention = _StatelessDropoutAttention(
            num_heads=heads, key_dim=max(1, width // heads), dropout=dropout, name="attention")
        self.residual = tf.keras.layers.Dense(width, use_bias=False, name="residual")
        self.output_projection = tf.keras.layers.Dense(width, name="output")
        self.width = width

    def call(self, tokens, training=None):
        stacked = tf.stack(list(tokens), axis=1)  # [batch, 2, d]
        projected = self.projection(stacked)
        mixed = tf.nn.relu(self.attention(projected, projected, training=training)
                           + self.residual(stacked))
        return self.output_projection(tf.reshape(mixed, [-1, 2 * self.width]))


class OrcaHead(StaticLayer):
    """(features, representations, z_raw) -> {dwell logits z, nde_logits} (module docstring).

    `masked_forward(features, post_click_mask)` reruns the model's encoder and backbone on
    masked features in inference mode; it is held as a plain function (the layers it calls
    belong to the network already)."""

    def __init__(self, num_bins: int, tower_units, config: OrcaConfig, masked_forward=None,
                 dropout: float = 0.0, batch_norm: bool = False, tower_output: str = "dense",
                 **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.masked_forward = masked_forward
        if config.nde_head == "authors":
            self.scd = ProjectedAttention(config.scd_heads, dropout=dropout, name="scd")
            self.nde_tower = MLP(AUTHORS_UNITS[:1], dropout=dropout, batch_norm=batch_norm,
                                 name="nde_tower")
            self.nde_head = MLP(AUTHORS_UNITS[1:], output_units=num_bins, name="nde_head")
        else:
            self.scd = CrossTaskAttention(config.scd_heads, name="scd")
            self.nde_tower = make_tower(tower_output, tower_units, num_bins, dropout, batch_norm,
                                        name="nde_tower")
            self.nde_head = None
        # 1 serves the debiased logits z_raw - z_nde, 0 the raw ones (--orca_serve: set once
        # training ends, `set_served_head`); training runs with 1, so multiplying by it
        # changes no number of training.
        self.debias = self.add_weight(
            name="debias", shape=(), dtype=tf.float32, trainable=False, initializer="ones",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        # Training calls so far: with the seed, it keys the stateless row-mask draws.
        self.mask_draws = self.add_weight(
            name="mask_draws", shape=(), dtype=tf.int64, trainable=False,
            initializer="zeros", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    @property
    def nde_step_variables(self) -> list:
        """What the NDE-only step of --mask_scope=batch trains: the NDE tower and its output
        (not the attention, as in the authors' code)."""
        layers = [self.nde_tower] + ([self.nde_head] if self.nde_head is not None else [])
        return [v for layer in layers for v in layer.trainable_variables]

    def post_click_mask(self, rows: tf.Tensor) -> tf.Tensor:
        """bool [rows]: which examples the NDE path sees masked; advances the draw counter."""
        seed = stateless_seed(self.config.mask_seed, self.mask_draws.assign_add(1))
        noise = tf.random.stateless_uniform(tf.reshape(rows, [1]), seed=seed)
        return noise < self.config.mask_prob

    def call(self, features: Mapping[str, tf.Tensor], representations: Mapping[str, tf.Tensor],
             raw_logits: tf.Tensor, training=None):
        row_masks = self.config.mask_scope == "row" and self.config.mask_prob > 0
        if training and row_masks and self.masked_forward is not None:
            rows = tf.shape(raw_logits)[0]
            representations = self.masked_forward(features, self.post_click_mask(rows))
        h_ctr, h_dt = (tf.stop_gradient(representations[k])
                       for k in (CTR_TASK, DWELL_TASK))
        # h_s: stopped, or what the backbone made trainable by the NDE loss alone.
        h_s = representations.get("nde_shared")
        if h_s is None:
            h_s = tf.stop_gradient(representations["shared"])
        # The embeddings' first-order and FM terms, stopped, with --tower_output=fm_terms.
        terms = representations.get(WIDE)
        terms = None if terms is None else tf.stop_gradient(terms)
        if self.nde_head is not None:
            attended = self.scd([h_ctr, h_dt], training=training)
            hidden = self.nde_tower(tf.concat([attended, h_s], axis=1), training=training)
            if terms is not None:
                hidden = tf.concat([hidden, terms], axis=1)
            nde_logits = self.nde_head(hidden, training=training)
        else:
            joined = tf.concat([self.scd([h_ctr, h_dt]), h_s], axis=1)
            nde_logits = self.nde_tower(joined if terms is None else (joined, terms),
                                        training=training)
        return {"dwell_logits": tf.stop_gradient(raw_logits) - self.debias * nde_logits,
                "nde_logits": nde_logits}


# The served head (--orca_serve) ------------------------------------------------------------------
def choose_head(debiased_gain: float) -> str:
    """"debiased" or "raw": what --orca_serve=validated serves given `debiased_gain`, the mean DT
    gain in percent of the debiased head over the raw head on the validation window at the
    best validation (`ranking.metrics.dt_class_gain`). The raw head only when the debiased
    one is worse; a tie or no measure (NaN: no clicked validation row) keeps the paper's."""
    return "raw" if debiased_gain < 0 else "debiased"


def set_served_head(network, head: str) -> None:
    """Makes an ORCA network serve `head` ("debiased" or "raw") in every output that derives
    from the dwell distribution (`dwell_*`, the served score); checkpoints and exports keep it."""
    network.get_layer("orca").debias.assign(1.0 if head == "debiased" else 0.0)


def serving_head(network) -> str:
    """The head an ORCA network serves now ("debiased" or "raw")."""
    return "debiased" if float(network.get_layer("orca").debias.numpy()) == 1.0 else "raw"


# The authors' masked-batch step (--mask_scope=batch) --------------------------------------------
def batch_masked(config: OrcaConfig, step: int) -> bool:
    """Whether the batch of global `step` is masked (--mask_scope=batch): a uniform keyed by
    (seed, step), so a resumed run masks the batches an uninterrupted one would."""
    rng = np.random.default_rng([config.mask_seed, 0x0BCA, step])
    return bool(rng.random() < config.mask_prob)


def nde_step_loss(model, batch) -> tf.Tensor:
    """The NDE loss of the masked-batch step: the whole model reads the batch with its
    post-click features masked (encoder, backbone and towers in inference mode), so the raw
    logits being corrected and the instance weights come from the masked forward; the NDE
    tower runs in training mode. Only the NDE variables should be updated by its gradient."""
    features, labels = batch
    network = model.network
    head = network.get_layer("orca")
    inputs = {name: features[name] for name in model.feature_spec.names}
    rows = tf.shape(labels["click"])[0]
    # The network's own masked forward (encoder, backbone and, with fm_terms, the terms).
    representations = head.masked_forward(inputs, tf.ones([rows], tf.bool))
    outputs = {}
    for task in model.tasks:
        if task.has_tower:
            raw = network.get_layer(f"{task.task}_tower")(
                tower_input(representations, task.task), training=False)
            outputs.update(task.outputs(raw))
    debiased = head(inputs, representations, outputs[f"{RAW_PREFIX}dwell_logits"],
                    training=True)
    nde = model.tasks[-1]
    outputs.update(nde.outputs(debiased["dwell_logits"]))
    return nde(labels, outputs)
