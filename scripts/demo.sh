#!/usr/bin/env bash
# The main job on the built-in simulator:
# simulate -> validate -> stats -> label -> train -> export -> score -> online A/B -> report.
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
echo "== train: single_ctr (the baseline), vr_ndt (click reweighting), ple_orca (ORCA);"
echo "   raw logs, labels on the fly; model selection: day 10 held out for validation, early"
echo "   stopping, the best checkpoint refitted on day 10 (ranking/selection.py)"
rm -rf "${DEMO_DIR}/models"
"$PYTHON" -m ranking.train --model=single_ctr --train="${TRAIN}" --eval="${EVAL}" \
  --stats="${DEMO_DIR}/stats" --validation_days=1 --model_dir="${DEMO_DIR}/models/single_ctr"
"$PYTHON" -m ranking.train --model=vr_ndt --train="${TRAIN}" --eval="${EVAL}" \
  --stats="${DEMO_DIR}/stats" --validation_days=1 --model_dir="${DEMO_DIR}/models/vr_ndt" \
  --baseline_metrics="${DEMO_DIR}/models/single_ctr/eval_metrics.json"
"$PYTHON" -m ranking.train --model=ple_orca --train="${TRAIN}" --eval="${EVAL}" \
  --stats="${DEMO_DIR}/stats" --validation_days=1 --model_dir="${DEMO_DIR}/models/ple_orca" \
  --post_click_features=category,item_length,publish_age_hours \
  --baseline_metrics="${DEMO_DIR}/models/single_ctr/eval_metrics.json"

echo
echo "== export the three models for TF Serving"
rm -rf "${DEMO_DIR}/serving"
for model in single_ctr vr_ndt ple_orca; do
  "$PYTHON" -m export.saved_model --model_dir="${DEMO_DIR}/models/${model}" \
    --export_base="${DEMO_DIR}/serving/${model}"
done

echo
echo "== score the evaluation days with the export (in-process engine; --engine=beam runs RunInference on Beam)"
"$PYTHON" -m pipelines.score --saved_model="${DEMO_DIR}/serving/vr_ndt" --input="${EVAL}" \
  --output="${DEMO_DIR}/scores" --engine=local

echo
echo "== online A/B test on the simulator: the exports rank the same sessions' candidates"
"$PYTHON" -m online.ab_test --sim="${SIM}" --stats="${DEMO_DIR}/stats" \
  --policies="single_ctr=${DEMO_DIR}/serving/single_ctr,vr_ndt=${DEMO_DIR}/serving/vr_ndt,ple_orca=${DEMO_DIR}/serving/ple_orca" \
  --days=2 --output_dir="${DEMO_DIR}/online"

echo
echo "== report"
"$PYTHON" -m report \
  --model_dirs="${DEMO_DIR}/models/single_ctr,${DEMO_DIR}/models/vr_ndt,${DEMO_DIR}/models/ple_orca" \
  --scores="${DEMO_DIR}/scores" --labelled="${DEMO_DIR}/labelled" --online="${DEMO_DIR}/online" \
  --output_dir="${DEMO_DIR}/report"

echo
echo "demo done:"
echo "  logs                 ${SIM}/logs"
echo "  validation reports   ${DEMO_DIR}/validation/report.md, ${DEMO_DIR}/validation_eval/report.md"
echo "  statistics           ${DEMO_DIR}/stats"
echo "  labelled logs        ${DEMO_DIR}/labelled (labels.png: the paper's Fig. 2)"
echo "  models               ${DEMO_DIR}/models (.venv/bin/tensorboard --logdir ${DEMO_DIR}/models)"
echo "  SavedModels          ${DEMO_DIR}/serving"
echo "  scores               ${DEMO_DIR}/scores"
echo "  online A/B test      ${DEMO_DIR}/online"
echo "  report               ${DEMO_DIR}/report/report.md (with its pictures)"
