"""ranking: the models and their training.

Commands and the modules behind them:

    python -m ranking.train   training.train_and_evaluate: model_dir (config.json, resume
                              checks), data (labelled batches), models
                              (presets, network; tasks, backbones/, orca, layers, features),
                              optimizers, metabalance, loops (synchronous and parameter-server
                              loops), distribute (strategies, TF_CONFIG, input sharding),
                              evaluation + metrics (eval_metrics.json)
    python -m ranking.report  report (tables and pictures of trained models)
"""
import os

# tensorflow-recommenders needs Keras 2: select tf-keras before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
