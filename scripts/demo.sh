#!/usr/bin/env bash
# The main job on the built-in simulator. Today: simulate -> validate -> stats -> label -> read back.
# (train, export, score and report join as their issues land.)
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
DEMO_DIR=${DEMO_DIR:-demo_out}
SIM="${DEMO_DIR}/sim"

echo "== simulate: ${SIM} (14 days)"
"$PYTHON" -m pipelines.simulate --output_dir="${SIM}"

echo
echo "== validate the training window (schema inferred and curated), then the evaluation days against it"
"$PYTHON" -m pipelines.validate --input="${SIM}/logs/day-0*.csv.gz,${SIM}/logs/day-10.csv.gz" \
  --output_dir="${DEMO_DIR}/validation"
"$PYTHON" -m pipelines.validate --input="${SIM}/logs/day-1[1-3].csv.gz" \
  --output_dir="${DEMO_DIR}/validation_eval" --schema="${DEMO_DIR}/validation/schema.pbtxt" \
  --baseline_stats="${DEMO_DIR}/validation/stats.pb"

echo
echo "== statistics of the training window (days 0-10), Apache Beam on the DirectRunner"
"$PYTHON" -m pipelines.stats --input="${SIM}/logs/day-0*.csv.gz,${SIM}/logs/day-10.csv.gz" \
  --output_dir="${DEMO_DIR}/stats" --schema="${DEMO_DIR}/validation/schema.pbtxt"

echo
echo "== label the evaluation days (11-13) with the training window's statistics"
"$PYTHON" -m pipelines.label --input="${SIM}/logs/day-1[1-3].csv.gz" --stats="${DEMO_DIR}/stats" \
  --output_dir="${DEMO_DIR}/labelled"

echo
echo "== read the labelled TFRecords back"
"$PYTHON" -m pipelines.describe --input="${DEMO_DIR}/labelled/*.tfrecord.gz"

echo
echo "demo done: logs in ${SIM}/logs, latent truth in ${SIM}/ground_truth, validation reports in"
echo "${DEMO_DIR}/validation*/report.md, statistics in ${DEMO_DIR}/stats, labelled logs and"
echo "labels.png in ${DEMO_DIR}/labelled"
