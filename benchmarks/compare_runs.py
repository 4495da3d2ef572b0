"""Two results directories of one study, cell by cell: trials, successes and median first hit
(``gpu_check.sh``: the kernel against the XLA step, and a warm run against the cold one).

    python benchmarks/compare_runs.py A B [--json F] [--identical]

Prints how many cells differ in each field and one line per differing cell. Exit 1 when a
cell's trial count differs or a cell is missing (a run did not finish), or, with
``--identical``, when anything differs; else 0 (the kernel sums in another order than the XLA
step, so after 10^4 chaotic steps a few successes and first hits may move).
"""

from __future__ import annotations

import argparse
import json
import sys

FIELDS = ("trials", "successes", "median_first_hit")


def compare(a: list[dict], b: list[dict]) -> dict:
    """Cell records (``Results.cells()``) of two runs of a study, compared field by field."""
    from parity_jax.kinds.parity.report import CELL_FIELDS

    def key(r: dict) -> tuple:
        return tuple(r[f] for f in CELL_FIELDS)

    ia, ib = {key(r): r for r in a}, {key(r): r for r in b}
    cells = sorted(set(ia) | set(ib), key=str)
    varying = [i for i, f in enumerate(CELL_FIELDS) if len({k[i] for k in cells}) > 1]
    differences, missing = [], []
    for k in cells:
        label = {CELL_FIELDS[i]: k[i] for i in varying}
        ra, rb = ia.get(k), ib.get(k)
        if ra is None or rb is None:
            missing.append({"cell": label, "missing_in": "a" if ra is None else "b"})
            continue
        changed = {f: [ra[f], rb[f]] for f in FIELDS if ra[f] != rb[f]}
        if changed:
            differences.append({"cell": label, **changed})
    return {"cells": len(cells), "missing": missing,
            "differ": {f: sum(f in d for d in differences) for f in FIELDS},
            "successes": [sum(r["successes"] for r in a), sum(r["successes"] for r in b)],
            "trials": [sum(r["trials"] for r in a), sum(r["trials"] for r in b)],
            "differences": differences}


def text(result: dict, names: tuple[str, str] = ("a", "b")) -> str:
    """The comparison as lines: a summary, then each differing or missing cell."""
    d = result["differ"]
    lines = [f"{names[0]} vs {names[1]}: {result['cells']} cells; trials "
             f"{result['trials'][0]} vs {result['trials'][1]}, successes "
             f"{result['successes'][0]} vs {result['successes'][1]}; cells differing in "
             f"trials: {d['trials']}, successes: {d['successes']}, median first hit: "
             f"{d['median_first_hit']}; missing: {len(result['missing'])}"]
    for m in result["missing"]:
        lines.append(f"  missing in {names[m['missing_in'] == 'b']}: {m['cell']}")
    for x in result["differences"]:
        lines.append("  " + " ".join(f"{k}={v}" for k, v in x["cell"].items()) + ": " + ", ".join(
            f"{f} {x[f][0]} -> {x[f][1]}" for f in FIELDS if f in x))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--json", help="write the comparison here")
    parser.add_argument("--identical", action="store_true",
                        help="exit 1 on any difference (a warm run against its cold run)")
    args = parser.parse_args(argv)
    from parity_jax.results import Results

    try:
        a, b = (Results(d).cells() for d in (args.a, args.b))
    except Exception as e:  # noqa: BLE001 -- a run that left no store (killed, failed)
        print(f"error: cannot read the stores: {type(e).__name__}: {e}".splitlines()[0])
        return 2
    result = compare(a, b)
    print(text(result, (args.a, args.b)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    broken = result["missing"] or result["differ"]["trials"]
    return 1 if broken or (args.identical and result["differences"]) else 0


if __name__ == "__main__":
    sys.exit(main())
