"""export: a trained model directory as a versioned SavedModel for TF Serving (SPEC §7).

    python -m export.saved_model   exporter.py (versions, warmup requests, models.config),
                                   serving.py (the serving signatures, TensorFlow only)
"""
import core  # noqa: F401  (selects Keras 2 before TensorFlow loads)
