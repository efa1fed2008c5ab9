"""dwellrank: a TensorFlow ranking model for article feeds that learns from dwell time."""
from setuptools import find_packages, setup

setup(
    name="dwellrank",
    version="0.1.0",
    description="Dwell-time ranking for article feeds: click reweighting and ORCA on TensorFlow.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["core", "core.*", "pipelines", "pipelines.*", "ranking",
                                    "ranking.*", "export", "export.*", "online", "online.*",
                                    "report", "report.*"]),
    # Pins live in requirements/lock.txt (installed with --no-deps); these are the loose bounds.
    install_requires=[
        "tensorflow>=2.16,<2.17",
        "tf-keras>=2.16,<2.17",
        "tensorflow-recommenders>=0.7.3",
        "tensorflow-data-validation==1.16.1",
        "tensorflow-serving-api>=2.16,<2.17",
        "apache-beam[gcp]>=2.53,<2.62",
        "absl-py<2",
        "numpy<2",
        "pandas<2",
        "matplotlib",
    ],
    extras_require={"test": ["pytest", "pytest-timeout", "scikit-learn"]},
)
