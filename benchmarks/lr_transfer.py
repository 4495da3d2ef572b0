"""Learning-rate transfer across widths: the best lr of a sweep at each width, under each
parametrization (model.param = standard | mup | mean_field; parity_jax.models.scalings).

    python benchmarks/lr_transfer.py [--widths 32,128,512,1024] [--lrs 2^-7..2^0]
                                     [--seeds 3] [--steps 3000] [--n 30] [--k 3] [--wd 0]
                                     [--json F]

One study: an online sparse parity (n 30, k 3: a fresh minibatch every step, so nothing is
memorised), square loss (hinge's bounded gradient hides the instability a too large lr causes),
weight decay ``--wd`` (default 0), mup's base width 32, the width x lr x param grid, ``seeds``
trials per cell.
A trial's time is its first hit (the first evaluation, every 50 steps, with test error at most
0.1; ``steps`` + 1 when it never hits); the best lr of (param, width) is the lr of the smallest
median time (ties: the smaller lr). The property: under mup and mean_field the best lr stays
put as the width grows; under standard it shifts. Prints the table and writes JSON (default
benchmarks/lr_transfer.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from parity_jax import ConfigError, Model, Study, Task, Train, run

PARAMS = ("standard", "mup", "mean_field")
BASE_WIDTH = 32


def study(widths, lrs, seeds: int, steps: int, n: int = 30, k: int = 3,
          loss: str = "square", wd: float = 0.0) -> Study:
    """The sweep as one parity study."""
    return Study(
        name="lr-transfer", seeds=seeds,
        task=Task(n=n, k=k, n_test=1000, online=True),
        model=Model(width=list(widths), param=list(PARAMS), base_width=BASE_WIDTH),
        train=Train(lr=list(lrs), wd=wd, batch=32, loss=loss, steps=steps, eval_every=50,
                    threshold=0.1, stop_on_success=True))


def best_lrs(trials: list[dict], steps: int) -> list[dict]:
    """Per (param, width): every lr's median time to the first hit and the best lr."""
    times: dict[tuple, list] = {}
    for t in trials:
        hit = t["first_hit"] if t["success"] else steps + 1
        times.setdefault((t["param"], t["width"], t["lr"]), []).append(hit)
    rows = []
    for param in PARAMS:
        for width in sorted({w for p, w, _ in times if p == param}):
            medians = {lr: float(np.median(v)) for (p, w, lr), v in sorted(times.items())
                       if p == param and w == width}
            best = min(medians, key=lambda lr: (medians[lr], lr))
            rows.append({"param": param, "width": width, "best_lr": best,
                         "median_first_hit": medians[best],
                         "hit": medians[best] <= steps, "medians": medians})
    return rows


def table(rows: list[dict], steps: int) -> str:
    """Markdown: one row per param, one column per width: best lr (its median first hit)."""
    widths = sorted({r["width"] for r in rows})
    lines = ["| param | " + " | ".join(f"width {w}" for w in widths) + " |",
             "|---|" + "---|" * len(widths)]
    for param in PARAMS:
        cells = []
        for w in widths:
            r = next(r for r in rows if r["param"] == param and r["width"] == w)
            hit = f"{r['median_first_hit']:.0f}" if r["hit"] else f"none in {steps}"
            cells.append(f"{r['best_lr']:g} ({hit})")
        lines.append(f"| {param} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measure(widths, lrs, seeds: int, steps: int, n: int = 30, k: int = 3,
            out: str | None = None, wd: float = 0.0) -> dict:
    """Runs the sweep (in a temporary store unless ``out``) and returns its result."""
    s = study(widths, lrs, seeds, steps, n, k, wd=wd)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = run(s, out or tmp, progress=None)
    rows = best_lrs(results.trials(), steps)
    return {"study": s.to_dict(), "seconds": time.perf_counter() - t0, "rows": rows,
            "table": table(rows, steps)}


def _floats(text: str) -> list[float]:
    if ".." in text:  # 2^-6..2^3: powers of two
        lo, hi = (int(t.split("^")[1]) for t in text.split(".."))
        return [2.0 ** e for e in range(lo, hi + 1)]
    return [float(v) for v in text.split(",")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="32,128,512,1024")
    p.add_argument("--lrs", default="2^-7..2^0", help="comma list, or 2^a..2^b")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--wd", type=float, default=0.0, help="weight decay (coupled)")
    p.add_argument("--json", default=str(Path(__file__).resolve().parent / "lr_transfer.json"))
    a = p.parse_args(argv)
    try:
        result = measure([int(w) for w in a.widths.split(",")], _floats(a.lrs), a.seeds,
                         a.steps, a.n, a.k, wd=a.wd)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result["table"])
    print(f"{result['seconds']:.0f} s")
    Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
