#!/usr/bin/env bash
# docs/online.md's tables: vr_ndt and ple_orca against single_ctr and ctr_logdt (the paper's
# baseline), each at its stored (default) fusion and at the fusion tuned on other sessions,
# at the three strengths of the online consequences (none, chosen, strong).
#
#   make demo && [DEMO_DIR=demo_out] [OUT=bench_out/online] bash benchmarks/online_study.sh
#   (both are environment variables; those are their defaults)
#
# Uses the demo's world, stats and exports (single_ctr, vr_ndt, ple_orca), trains ctr_logdt
# with the demo's command, tunes each dwell-aware export's fusion with online.tune_fusion
# (sessions of seed 1, consequences chosen, floor: 98 % of single_ctr's clicks per user),
# exports the tuned weights as version 2, then runs online.ab_test on the sessions of seed 2
# (not the tuning sessions) at every strength, with single_ctr first and again with ctr_logdt
# first (changes paired against each). Nothing here changes the simulator.
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
DEMO_DIR=${DEMO_DIR:-demo_out}
OUT=${OUT:-bench_out/online}
SIM="${DEMO_DIR}/sim"
TRAIN="${SIM}/logs/day-0*.csv.gz,${SIM}/logs/day-10.csv.gz"
EVAL="${SIM}/logs/day-1[1-3].csv.gz"
SERVING="${OUT}/serving"
mkdir -p "${OUT}"

# Reused when finished, and trained as the demo trains (with a validation window: best.json).
if [ ! -f "${OUT}/models/ctr_logdt/eval_metrics.json" ] || [ ! -f "${OUT}/models/ctr_logdt/best.json" ]; then
  rm -rf "${OUT}/models/ctr_logdt"
  "$PYTHON" -m ranking.train --model=ctr_logdt --train="${TRAIN}" --eval="${EVAL}" \
    --stats="${DEMO_DIR}/stats" --validation_days=1 --model_dir="${OUT}/models/ctr_logdt"
fi
rm -rf "${SERVING}"
mkdir -p "${SERVING}"
"$PYTHON" -m export.saved_model --model_dir="${OUT}/models/ctr_logdt" \
  --export_base="${SERVING}/ctr_logdt"
for model in single_ctr vr_ndt ple_orca; do
  "$PYTHON" -m export.saved_model --model_dir="${DEMO_DIR}/models/${model}" \
    --export_base="${SERVING}/${model}" --version=1
done

for model in vr_ndt ple_orca; do
  rm -rf "${OUT}/tuning_${model}"
  "$PYTHON" -m online.tune_fusion --saved_model="${SERVING}/${model}/1" \
    --baseline="single_ctr=${SERVING}/single_ctr/1" --sim="${SIM}" --stats="${DEMO_DIR}/stats" \
    --output_dir="${OUT}/tuning_${model}" --days=2 --tune_seed=1 --report_seed=2 \
    | tee "${OUT}/tuning_${model}.log" | tail -1
  weights=$("$PYTHON" -c "import json,sys; f=json.load(open(sys.argv[1])); c=f['chosen']; \
print('' if c is None else ','.join(f'{n}={w:g}' for n, w in f['rows'][c]['fusion']['weights'].items()))" \
    "${OUT}/tuning_${model}/frontier.json")
  space=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['stored']['space'])" \
    "${OUT}/tuning_${model}/frontier.json")
  if [ -n "${weights}" ]; then
    "$PYTHON" -m export.saved_model --model_dir="${DEMO_DIR}/models/${model}" \
      --export_base="${SERVING}/${model}" --version=2 --score_weights="${weights}" \
      --score_space="${space}"
  fi
done

POLICIES="single_ctr=${SERVING}/single_ctr/1,ctr_logdt=${SERVING}/ctr_logdt/1"
for model in vr_ndt ple_orca; do
  POLICIES="${POLICIES},${model}=${SERVING}/${model}/1"
  if [ -d "${SERVING}/${model}/2" ]; then
    POLICIES="${POLICIES},${model}_tuned=${SERVING}/${model}/2"
  fi
done
for strength in none chosen strong; do
  rm -rf "${OUT}/ab_${strength}"
  "$PYTHON" -m online.ab_test --sim="${SIM}" --stats="${DEMO_DIR}/stats" --policies="${POLICIES}" \
    --days=2 --seed=2 --consequences="${strength}" --output_dir="${OUT}/ab_${strength}" \
    | tee "${OUT}/ab_${strength}.log" | tail -3
done
# The same sessions with ctr_logdt (the paper's baseline) first: changes paired against it.
LOGDT_FIRST="ctr_logdt=${SERVING}/ctr_logdt/1,single_ctr=${SERVING}/single_ctr/1${POLICIES#*ctr_logdt/1}"
for strength in none chosen strong; do
  rm -rf "${OUT}/ab_logdt_${strength}"
  "$PYTHON" -m online.ab_test --sim="${SIM}" --stats="${DEMO_DIR}/stats" \
    --policies="${LOGDT_FIRST}" --days=2 --seed=2 --consequences="${strength}" \
    --output_dir="${OUT}/ab_logdt_${strength}" | tee "${OUT}/ab_logdt_${strength}.log" | tail -3
done
echo "wrote ${OUT}: tuning_*/frontier.md, ab_{none,chosen,strong}/online.md, ab_logdt_*/online.md"
