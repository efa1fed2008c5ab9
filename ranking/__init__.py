"""ranking package."""
import os

# tensorflow-recommenders needs Keras 2: select tf-keras before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
