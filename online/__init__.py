"""online: A/B tests of exported ranking policies on the simulator's users (SPEC §10).

    python -m online.ab_test      simulation.py: sessions, candidates, common random numbers,
                                  policies (SavedModels through serving_default), metrics and
                                  the dwell-migration heat maps
"""
import core  # noqa: F401  (selects Keras 2 before TensorFlow loads)
