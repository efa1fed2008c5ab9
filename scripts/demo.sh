#!/usr/bin/env bash
# The main job on the built-in simulator:
# simulate -> validate -> stats -> label -> train -> export -> score -> report.
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
DEMO_DIR=${DEMO_DIR:-demo_out}
SIM="${DEMO_DIR}/sim"
TRAIN="${SIM}/logs/day-0*.csv.gz,${SIM}/logs/day-10.csv.gz"
EVAL="${SIM}/logs/day-1[1-3].csv.gz"

echo "== simulate: ${SIM} (14 days)"
"$PYTHON" -m pipelines.simulate --output_dir="${SIM}"

echo
echo "== validate the training window (schema inferred and curated), then the evaluation days against it"
"$PYTHON" -m pipelines.validate --input="${TRAIN}" --output_dir="${DEMO_DIR}/validation"
"$PYTHON" -m pipelines.validate --input="${EVAL}" \
  --output_dir="${DEMO_DIR}/validation_eval" --schema="${DEMO_DIR}/validation/schema.pbtxt" \
  --baseline_stats="${DEMO_DIR}/validation/stats.pb"

echo
echo "== statistics of the training window (days 0-10), Apache Beam on the DirectRunner"
"$PYTHON" -m pipelines.stats --input="${TRAIN}" \
  --output_dir="${DEMO_DIR}/stats" --schema="${DEMO_DIR}/validation/schema.pbtxt"

echo
echo "== label the evaluation days (11-13) with the training window's statistics"
"$PYTHON" -m pipelines.label --input="${EVAL}" --stats="${DEMO_DIR}/stats" \
  --output_dir="${DEMO_DIR}/labelled"

echo
echo "== train: single_ctr (the baseline), then vr_ndt (click reweighting); raw logs, labels on the fly"
rm -rf "${DEMO_DIR}/models"
"$PYTHON" -m ranking.train --model=single_ctr --train="${TRAIN}" --eval="${EVAL}" \
  --stats="${DEMO_DIR}/stats" --model_dir="${DEMO_DIR}/models/single_ctr"
"$PYTHON" -m ranking.train --model=vr_ndt --train="${TRAIN}" --eval="${EVAL}" \
  --stats="${DEMO_DIR}/stats" --model_dir="${DEMO_DIR}/models/vr_ndt" \
  --baseline_metrics="${DEMO_DIR}/models/single_ctr/eval_metrics.json"

echo
echo "== export vr_ndt for TF Serving"
rm -rf "${DEMO_DIR}/serving"
"$PYTHON" -m export.saved_model --model_dir="${DEMO_DIR}/models/vr_ndt" \
  --export_base="${DEMO_DIR}/serving/vr_ndt"

echo
echo "== score the evaluation days with the export (in-process engine; --engine=beam runs RunInference on Beam)"
"$PYTHON" -m pipelines.score --saved_model="${DEMO_DIR}/serving/vr_ndt" --input="${EVAL}" \
  --output="${DEMO_DIR}/scores" --engine=local

echo
echo "== report"
"$PYTHON" -m ranking.report --model_dirs="${DEMO_DIR}/models/single_ctr,${DEMO_DIR}/models/vr_ndt" \
  --scores="${DEMO_DIR}/scores" --output="${DEMO_DIR}/report.md"

echo "demo done: logs in ${SIM}/logs, validation reports in ${DEMO_DIR}/validation*/report.md,"
echo "statistics in ${DEMO_DIR}/stats, labelled logs in ${DEMO_DIR}/labelled, models in"
echo "${DEMO_DIR}/models (tensorboard --logdir ${DEMO_DIR}/models), the SavedModel in"
echo "${DEMO_DIR}/serving, scores in ${DEMO_DIR}/scores, the report in ${DEMO_DIR}/report.md"
