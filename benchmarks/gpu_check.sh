#!/usr/bin/env bash
# The GPU check, in one invocation: every stage has its own time limit, and everything it
# writes goes into one archive ($OUT/all.tgz), so that one file carries the whole result back.
#
#   OUT=/tmp/out bash benchmarks/gpu_check.sh          # on the GPU machine (PYTHONPATH=repo)
#   QUICK=1 OUT=/tmp/out bash benchmarks/gpu_check.sh  # a small dry run of every stage (CPU)
#
# Stages: the core/plan tests on the device; the default study cold then warm (persistent
# compile cache in $OUT/cache); one trial at width 10^5 with m 10^6; a bench subset with its
# baselines (naive jit(vmap), PyTorch on CUDA when there).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:?set OUT to a directory}"
LOGS="$OUT/gpu_check"
mkdir -p "$LOGS"
PY="${PYTHON:-python3}"
PJ=("$PY" -c "import sys; from parity_jax.cli import main; sys.exit(main(sys.argv[1:]))")
stage() {  # stage NAME SECONDS COMMAND...: runs it with a limit, logs output, time and status
  local name=$1 limit=$2; shift 2
  local start=$(date +%s.%N)
  timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc seconds=$(echo "$(date +%s.%N) - $start" | bc)" | tee -a "$LOGS/stages.txt"
}
{ nvidia-smi || true; "$PY" -c "import jax; print(jax.__version__, jax.devices())"; } \
  > "$LOGS/device.txt" 2>&1
date -u +%FT%TZ >> "$LOGS/device.txt"

if [ -n "${QUICK:-}" ]; then
  TESTS="tests/test_core.py::test_batch_equals_trials_run_one_at_a_time"
  BIG=benchmarks/scale/width_100k.toml; BENCH="--widths 100 --trials 10 --repeats 1"
  STUDY=tests/quick_study.toml
  printf 'name = "quick"\nseeds = 2\n[task]\nm = [200, 1000]\n[model]\nwidth = [10, 100]\n[train]\nsteps = 500\n' > "$STUDY"
else
  TESTS="tests/test_core.py tests/test_plan.py"
  BIG=benchmarks/gpu/width_100k_m1m.toml; BENCH="--widths 100,1000 --trials 1000 --repeats 3"
  STUDY=experiments/fig1_cpu.toml
fi

export PARITY_JAX_CACHE="$OUT/cache"
# Limits sum to under 9 minutes (a device call may take 10).
stage tests 120 "$PY" -m pytest -q -x $TESTS
stage study_cold 80 "${PJ[@]}" run "$STUDY" --out "$OUT/study_cold"
stage study_warm 40 "${PJ[@]}" run "$STUDY" --out "$OUT/study_warm"
"${PJ[@]}" report "$OUT/study_cold" --format json > "$LOGS/study_cold.json" 2>> "$LOGS/report.log"
"${PJ[@]}" report "$OUT/study_warm" --format json > "$LOGS/study_warm.json" 2>> "$LOGS/report.log"
stage plan_big 20 "${PJ[@]}" plan "$BIG"
stage big_trial 120 "${PJ[@]}" run "$BIG" --out "$OUT/big"
# JAX and PyTorch share the GPU here: no preallocation of 75% of it by JAX
XLA_PYTHON_CLIENT_PREALLOCATE=false stage bench 150 "${PJ[@]}" bench $BENCH --vary init \
  --json "$LOGS/bench.json" --markdown "$LOGS/bench.md"
[ -n "${QUICK:-}" ] && rm -f "$STUDY"
tar czf "$OUT/all.tgz" -C "$OUT" gpu_check
cat "$LOGS/stages.txt"
