#!/usr/bin/env bash
# The main job on the built-in simulator. Today: simulate -> stats -> label -> read back.
# (validate, train, export, score and report join as their issues land.)
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
DEMO_DIR=${DEMO_DIR:-demo_out}
SIM="${DEMO_DIR}/sim"

echo "== simulate: ${SIM} (14 days)"
"$PYTHON" -m pipelines.simulate --output_dir="${SIM}"

echo
echo "== statistics of the training window (days 0-10), Apache Beam on the DirectRunner"
"$PYTHON" -m pipelines.stats --input="${SIM}/logs/day-0*.csv.gz,${SIM}/logs/day-10.csv.gz" \
  --output_dir="${DEMO_DIR}/stats"

echo
echo "== label the evaluation days (11-13) with the training window's statistics"
"$PYTHON" -m pipelines.label --input="${SIM}/logs/day-1[1-3].csv.gz" --stats="${DEMO_DIR}/stats" \
  --output_dir="${DEMO_DIR}/labelled"

echo
echo "== read the labelled TFRecords back"
"$PYTHON" -m pipelines.describe --input="${DEMO_DIR}/labelled/*.tfrecord.gz"

echo
echo "demo done: logs in ${SIM}/logs, latent truth in ${SIM}/ground_truth, statistics in"
echo "${DEMO_DIR}/stats, labelled logs and labels.png in ${DEMO_DIR}/labelled"
