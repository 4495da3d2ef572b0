#!/usr/bin/env bash
# The GPU check, in one invocation and at most 8 minutes: every stage has its own time limit
# (they sum to 435 s; 449 s with the 2 s each is given to exit after it), and after every
# stage everything so far is archived again as $OUT/all.tgz -- the only file ever in $OUT --
# so a run killed at any point still carries back what it did. Work files (logs, stores,
# compile cache) live in a temporary directory.
#
#   OUT=/tmp/out bash benchmarks/gpu_check.sh          # on the GPU machine
#   QUICK=1 OUT=/tmp/out bash benchmarks/gpu_check.sh  # a small dry run of every stage (CPU)
#
# Needs no install: the repository on PYTHONPATH, $PYTHON (default python3) with jax.
# Stages: nvidia-smi; `parity-jax doctor` (device, float32 exactness, batch invariance, the
# kernel against the XLA step at the default study's geometries, compile cold and warm,
# XLA step / naive jit(vmap) throughput, the engine race at those geometries); the study's
# plan; the study cold in auto mode (its log has one "engine race" line per program: every
# candidate's rate and the choice), cold with PARITY_JAX_KERNEL=off, and warm (same compile
# cache and race verdicts: no race); then a comparison
# per cell of trials, successes and median first hit (kernel vs XLA step; warm vs cold, which
# must be identical). QUICK=1: the kernel in Pallas' interpret mode on a tiny study.
# OUT is made absolute (relative to where the script is called from) and created before any
# stage runs: one it cannot create or write is refused at once (exit 2). The exit status is 1
# when any stage failed or ran out of time, or the archive could not be written; 0 otherwise.
set -u
OUT="${OUT:?set OUT to a directory}"
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
if ! mkdir -p "$OUT" 2> /dev/null || [ ! -d "$OUT" ] || [ ! -w "$OUT" ]; then
  echo "error: OUT = $OUT: cannot create or write that directory" >&2
  exit 2
fi
if ! touch "$OUT/.gpu_check_probe" 2> /dev/null; then  # a read-only mount, say
  echo "error: OUT = $OUT: cannot write into that directory" >&2
  exit 2
fi
rm -f "$OUT/.gpu_check_probe"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
FAILED=0
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
LOGS="$WORK/gpu_check"
mkdir -p "$LOGS"
PY="${PYTHON:-python3}"
PJ=("$PY" -c "import sys; from parity_jax.cli import main; sys.exit(main(sys.argv[1:]))")

archive() {  # the whole of $LOGS as $OUT/all.tgz, replaced in one rename where it can be
  # the kernel's self-check verdicts, kept beside the compile cache (kernel_check.VERDICTS_FILE)
  [ -f "$WORK/kernel_checks.json" ] && cp -f "$WORK/kernel_checks.json" "$LOGS/"
  if ! { tar czf "$WORK/all.tgz" -C "$WORK" gpu_check && mv -f "$WORK/all.tgz" "$OUT/all.tgz"; }
  then
    echo "error: could not write $OUT/all.tgz" >&2
    FAILED=1
  fi
}
now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "${t#0}"; }  # bash >= 5, no bc or awk
stage() {  # stage NAME SECONDS COMMAND...: runs it with a limit, logs output, time and status
  local name=$1 limit=$2; shift 2
  local start; start=$(now_us)
  timeout -k 2 "$limit" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  local us=$(( $(now_us) - start ))
  echo "$name rc=$rc seconds=$((us / 1000000)).$((us / 100000 % 10)) limit=$limit" \
    | tee -a "$LOGS/stages.txt"
  [ "$rc" -eq 0 ] || FAILED=1
  archive
}
date -u +%FT%TZ > "$LOGS/started.txt"

if [ -n "${QUICK:-}" ]; then
  # a study where the kernel is selected (depth 1, fused step), run in interpret mode
  STUDY="$WORK/quick_study.toml"
  printf '%s\n' 'name = "quick"' 'seeds = 2' '[task]' 'n = 10' 'k = 2' 'm = [40, 80]' \
    'n_test = 100' '[model]' 'width = 8' 'init = ["dense", "sparse"]' '[train]' \
    'steps = 400' 'batch = 8' > "$STUDY"
  export PARITY_JAX_KERNEL=interpret
  KERNEL=interpret
else
  STUDY=experiments/fig1_cpu.toml
  KERNEL="${PARITY_JAX_KERNEL:-auto}"
fi
cp "$STUDY" "$LOGS/study.toml"
export PARITY_JAX_CACHE="$WORK/cache"

stage device 10 bash -c 'if command -v nvidia-smi > /dev/null; then nvidia-smi; else
  echo "no nvidia-smi here"; fi'
stage doctor 170 "${PJ[@]}" doctor --budget 155 --json "$LOGS/doctor.json"
stage plan 10 "${PJ[@]}" plan "$STUDY"
PARITY_JAX_KERNEL=$KERNEL stage study_kernel 150 "${PJ[@]}" run "$STUDY" \
  --out "$LOGS/study_kernel"
PARITY_JAX_KERNEL=off stage study_xla 55 "${PJ[@]}" run "$STUDY" --out "$LOGS/study_xla"
PARITY_JAX_KERNEL=$KERNEL stage study_warm 25 "${PJ[@]}" run "$STUDY" --out "$LOGS/study_warm"
stage compare 15 bash -c 'cd "$2" && "$0" "$1" study_kernel study_xla \
    --json compare_kernel_xla.json; a=$?
  "$0" "$1" study_kernel study_warm --identical --json compare_cold_warm.json; b=$?
  echo "programs of the kernel run that fell back to the XLA step (warning lines naming" \
    "PARITY_JAX_KERNEL=off): $(grep -c PARITY_JAX_KERNEL=off study_kernel.log)"
  grep "engine race" study_kernel.log
  exit $((a || b))' "$PY" "$PWD/benchmarks/compare_runs.py" "$LOGS"
cat "$LOGS/compare.log"
date -u +%FT%TZ > "$LOGS/finished.txt"
archive
cat "$LOGS/stages.txt"
echo "archive: $OUT/all.tgz; $([ "$FAILED" -eq 0 ] && echo "every stage passed" ||
  echo "a stage failed (rc != 0 above)")"
exit "$FAILED"
