#!/usr/bin/env bash
# The main job on the built-in simulator. Today: simulate -> read back and describe.
# (validate, label, train, export, score and report join as their issues land.)
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
DEMO_DIR=${DEMO_DIR:-demo_out}

echo "== simulate: ${DEMO_DIR}/sim"
"$PYTHON" -m pipelines.simulate --output_dir="${DEMO_DIR}/sim"

echo
echo "== read every row back with the log reader"
"$PYTHON" -m pipelines.describe --input="${DEMO_DIR}/sim/logs/*.csv.gz"

echo
echo "demo done: logs in ${DEMO_DIR}/sim/logs, latent truth in ${DEMO_DIR}/sim/ground_truth,"
echo "ln(dwell) histogram in ${DEMO_DIR}/sim/ln_dwell_hist.png"
