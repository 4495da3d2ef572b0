#!/usr/bin/env bash
# The GPU check, in one invocation: every stage has its own time limit, and everything it
# writes goes into one archive ($OUT/all.tgz), so that one file carries the whole result back.
#
#   OUT=/tmp/out bash benchmarks/gpu_check.sh          # on the GPU machine (PYTHONPATH=repo)
#   QUICK=1 OUT=/tmp/out bash benchmarks/gpu_check.sh  # a small dry run of every stage (CPU)
#
# Stages: the kernel's tests (the compiled Pallas kernel against the XLA step, 3xTF32 too) and
# a few core tests on the device; the default study cold with the kernel, then with the XLA
# step (PARITY_JAX_KERNEL=off) and their outcomes compared cell by cell, then warm (persistent
# compile cache in $OUT/cache); one trial at width 10^5 with m 10^6; a bench subset with its
# kernel column and baselines (naive jit(vmap), PyTorch on CUDA when there); an Nsight Compute
# profile of the kernel when `ncu` is there.
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
  TESTS="tests/test_core.py -k bits"
  KTESTS="tests/test_kernel.py::test_the_kernel_is_selected_on_gpus_for_depth_1"
  BIG=benchmarks/scale/width_100k.toml; BENCH="--widths 100 --trials 10 --repeats 1"
  STUDY=tests/quick_study.toml
  printf 'name = "quick"\nseeds = 2\n[task]\nm = [200, 1000]\n[model]\nwidth = [10, 100]\n[train]\nsteps = 500\n' > "$STUDY"
else
  TESTS="tests/test_core.py -k bits"
  KTESTS="tests/test_kernel.py"
  BIG=benchmarks/gpu/width_100k_m1m.toml; BENCH="--widths 100,1000 --trials 1000 --repeats 2"
  STUDY=experiments/fig1_cpu.toml
fi

export PARITY_JAX_CACHE="$OUT/cache"
# Limits sum to 9 minutes (a device call may take 10).
stage tests_kernel 150 "$PY" -m pytest -v -rs $KTESTS
stage tests 40 "$PY" -m pytest -q -x $TESTS
stage plan_study 15 "${PJ[@]}" plan "$STUDY"
stage study_cold 60 "${PJ[@]}" run "$STUDY" --out "$OUT/study_cold"
PARITY_JAX_KERNEL=off stage study_xla 45 "${PJ[@]}" run "$STUDY" --out "$OUT/study_xla"
stage study_warm 25 "${PJ[@]}" run "$STUDY" --out "$OUT/study_warm"
for s in study_cold study_xla study_warm; do
  "${PJ[@]}" report "$OUT/$s" --format json > "$LOGS/$s.json" 2>> "$LOGS/report.log"
done
"$PY" - "$LOGS/study_cold.json" "$LOGS/study_xla.json" > "$LOGS/study_compare.txt" 2>&1 <<'PYEOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
rows = lambda r: r["cells"] if isinstance(r, dict) and "cells" in r else r
diff = [(x, y) for x, y in zip(rows(a), rows(b)) if x.get("successes") != y.get("successes")]
print(f"kernel vs XLA step: {len(rows(a))} cells, {len(diff)} with other success counts")
for x, y in diff:
    print(" ", {k: x[k] for k in ("width", "m", "init") if k in x}, x.get("successes"), y.get("successes"))
PYEOF
stage plan_big 15 "${PJ[@]}" plan "$BIG"
stage big_trial 50 "${PJ[@]}" run "$BIG" --out "$OUT/big"
# JAX and PyTorch share the GPU here: no preallocation of 75% of it by JAX
XLA_PYTHON_CLIENT_PREALLOCATE=false stage bench 100 "${PJ[@]}" bench $BENCH --vary init \
  --json "$LOGS/bench.json" --markdown "$LOGS/bench.md"
if command -v ncu > /dev/null; then  # where the kernel's time goes (width 1000, 1000 trials)
  stage ncu 45 ncu --target-processes all -k regex:parity_jax_fused -c 1 --set full \
    -o "$LOGS/kernel" "${PJ[@]}" run benchmarks/gpu/kernel_profile.toml --out "$OUT/profile"
fi
[ -n "${QUICK:-}" ] && rm -f "$STUDY"
tar czf "$OUT/all.tgz" -C "$OUT" gpu_check
cat "$LOGS/stages.txt"
