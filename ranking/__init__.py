"""ranking: the models and their training.

    python -m ranking.train   training.train_and_evaluate (TrainConfig: every flag, defined once
                              with the config it belongs to), behind it:
        model_dir.py          config.json, resume checks
        data.py               logs -> labelled (features, labels) batches
        input_notes.py        what training says about its input (the held-out window, notes)
        train_cache.py        the labelled training rows in memory, drawn in each epoch's order
        presets.py            the registered presets (towers, backbone, serving score)
        models.py             ModelConfig; the network (encoder -> backbone -> towers) and
                              RankingModel (tfrs.Model)
        features.py, layers.py  the feature spec; the feature encoder and MLPs
        backbones/            BACKBONES registry and BackboneConfig; one module per backbone
        tasks.py, losses.py   TowerConfig; each task's label, outputs, loss, metrics
        orca.py               ORCA: OrcaConfig, its task, its head; attaches itself to a model
        optimizers.py         OptimizerConfig, make_optimizer, LazyAdam
        metabalance.py        MetaBalanceConfig, gradient balancing
        loops.py, distribute.py  the synchronous and parameter-server loops; strategies
        preemption.py         SIGTERM, Ctrl-C: a checkpoint at the step in flight (clusters too)
        variable_memory.py    a model past the memory available, refused before it is made
        selection.py          model selection: the validation window, early stopping, refit
        selection_files.py    best/, final/, history.json: what a model directory serves
        evaluation.py, metrics.py  eval_metrics.json (SPEC §6), defined once
"""
import core  # noqa: F401  (selects Keras 2 before TensorFlow loads)
