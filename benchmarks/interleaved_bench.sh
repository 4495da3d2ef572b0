#!/usr/bin/env bash
# Issue 22's throughput check: `parity-jax bench` of two checkouts, interleaved on one machine.
#
#   bash benchmarks/interleaved_bench.sh OLD NEW OUTDIR [ROUNDS]
#
# Each round runs, each in its own process with PYTHONPATH set to the checkout:
#   OLD w100, NEW w100, OLD w1000, NEW w1000
# of `bench --widths W --trials 100 --vary init --repeats 3 --no-baselines --json ...`
# (ROUNDS rounds, default 3), then prints per width the median over rounds of the engine's
# trial-steps/s (the bench JSON's rows[0].rate, a marginal rate from S and 2S steps) for old and
# new, their ratio new/old, and each round's numbers. PYTHON overrides the interpreter
# (default /work/main/.venv/bin/python). Every PARITY_JAX_* variable but PARITY_JAX_CACHE=off is
# unset for the runs.
set -euo pipefail

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
    echo "usage: bash benchmarks/interleaved_bench.sh OLD NEW OUTDIR [ROUNDS]" >&2
    exit 2
fi
OLD=$(realpath "$1")
NEW=$(realpath "$2")
OUT=$3
ROUNDS=${4:-3}
PYTHON=${PYTHON:-/work/main/.venv/bin/python}
WIDTHS="100 1000"
CLI='import sys; from parity_jax.cli import main; sys.exit(main(sys.argv[1:]))'

for d in "$OLD" "$NEW"; do
    if [ ! -f "$d/parity_jax/cli.py" ]; then
        echo "error: $d: no parity_jax/cli.py there (OLD and NEW must be source trees)" >&2
        exit 2
    fi
done
case $ROUNDS in
    '' | *[!0-9]* | 0) echo "error: ROUNDS = '$ROUNDS': must be an integer >= 1" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
{
    echo "old $OLD $(git -C "$OLD" rev-parse HEAD 2>/dev/null || echo '?')"
    echo "new $NEW $(git -C "$NEW" rev-parse HEAD 2>/dev/null || echo '?')"
    echo "rounds $ROUNDS, started $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores"
} | tee "$OUT/info.txt"

# the environment of every run: no PARITY_JAX_* setting but the compile cache off
clean_env=()
while IFS='=' read -r name _; do
    case $name in PARITY_JAX_*) clean_env+=(-u "$name") ;; esac
done < <(env)

for r in $(seq 1 "$ROUNDS"); do
    for w in $WIDTHS; do
        for side in old new; do
            if [ "$side" = old ]; then src=$OLD; else src=$NEW; fi
            json="$OUT/r${r}_w${w}_${side}.json"
            start=$(date +%s.%N)
            env "${clean_env[@]}" PARITY_JAX_CACHE=off PYTHONPATH="$src" "$PYTHON" -c "$CLI" \
                bench --widths "$w" --trials 100 --vary init --repeats 3 --no-baselines \
                --json "$json" > "$OUT/r${r}_w${w}_${side}.log" 2>&1
            end=$(date +%s.%N)
            rate=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["rows"][0]["rate"])' "$json")
            printf 'round %d  w%-5s %-3s  engine %.0f trial-steps/s  (%.0f s)\n' \
                "$r" "$w" "$side" "$rate" "$(echo "$end - $start" | bc)"
        done
    done
done | tee "$OUT/rounds.txt"

"$PYTHON" - "$OUT" "$ROUNDS" "$WIDTHS" <<'EOF' | tee "$OUT/summary.txt"
import json
import statistics
import sys
from pathlib import Path

out, rounds, widths = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split()
print(f"\nengine trial-steps/s (bench rows[0].rate), trials 100, vary init, repeats 3; "
      f"median of {rounds} round(s)")
print(f"{'width':>6} {'old':>10} {'new':>10} {'new/old':>8}   old rounds / new rounds")
for w in widths:
    rates = {side: [json.loads((out / f"r{r}_w{w}_{side}.json").read_text())["rows"][0]["rate"]
                    for r in range(1, rounds + 1)] for side in ("old", "new")}
    old, new = (statistics.median(rates[s]) for s in ("old", "new"))
    each = " / ".join(" ".join(f"{x:.0f}" for x in rates[s]) for s in ("old", "new"))
    print(f"{w:>6} {old:>10.0f} {new:>10.0f} {new / old:>8.3f}   {each}")
EOF
