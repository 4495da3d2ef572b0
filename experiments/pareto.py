"""pareto: the three-way frontier over data m, width r and time (steps) at a target p.

    python experiments/pareto.py [--full] [--config F] [--out DIR]

Per (init, m, width) cell: the steps by which half (``target``) of the trials had
succeeded (from the first-hit steps; a cell that never reaches the target is off the frontier).
The frontier is the set of (m, width, steps) points no other point beats on all three; beside
it, the data-compute frontier: (m, training FLOPs to reach the target, ``flops.flops_to_step``
of those steps), the paper's "data vs compute". Writes pareto.png (each frontier point at
(m, width), labelled with its steps) and report.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from parity_jax import Study, experiment, files, flops, reduce, render, run  # noqa: E402

HERE = Path(__file__).resolve().parent


def main(config: str | Path = HERE / "pareto.toml", out: str | Path = "runs/pareto",
         progress=sys.stderr, target: float = 0.5) -> dict:
    out = Path(out)
    study = Study.from_toml(config)
    cells = experiment.with_time(run(study, out, progress=progress), target)
    points = [{**c, "steps": c["steps_to_target"],
               "tflop": None if c["steps_to_target"] is None else
               flops.flops_to_step(c["steps_to_target"], **c) / 1e12} for c in cells]
    inits = sorted({render.init_label(c) for c in cells})
    fronts = {i: reduce.pareto([p for p in points if render.init_label(p) == i])
              for i in inits}
    compute = {i: sorted(reduce.pareto([p for p in points if render.init_label(p) == i],
                                       ("m", "tflop")), key=lambda p: p["m"]) for i in inits}
    fig, axes = plt.subplots(1, len(inits), figsize=(4.6 * len(inits), 3.8), squeeze=False,
                             sharey=True)
    for ax, init in zip(axes[0], inits, strict=True):
        every = [p for p in points if render.init_label(p) == init]
        ax.scatter([p["m"] for p in every], [p["width"] for p in every], c="lightgray", s=20)
        front = fronts[init]
        sc = ax.scatter([p["m"] for p in front], [p["width"] for p in front],
                        c=[p["steps"] for p in front], cmap="viridis_r", s=60)
        for p in front:
            ax.annotate(str(p["steps"]), (p["m"], p["width"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.minorticks_off()
        ms, ws = sorted({p["m"] for p in every}), sorted({p["width"] for p in every})
        ax.set_xticks(ms, [str(m) for m in ms], fontsize=7)
        ax.set_yticks(ws, [str(w) for w in ws], fontsize=7)
        ax.set_xlabel("m")
        ax.set_title(f"{init}: frontier at p >= {target:g}", fontsize=9)
        fig.colorbar(sc, ax=ax, label="steps")
    axes[0][0].set_ylabel("width")
    fig.tight_layout()
    png = out / "pareto.png"
    try:
        files.save_figure(fig, png, dpi=110)
    finally:
        plt.close(fig)
    sections = [("Setup", [f"{len(cells)} cells x {study.seeds} seeds; config "
                           f"`{Path(config).name}`; target p >= {target:g}. A point is on the "
                           "frontier when no other cell of the same init needs at most as "
                           "much data, width and time, and less of one."])]
    for init in inits:
        sections.append((f"Frontier, {init}", render.markdown_table(
            sorted(fronts[init], key=lambda p: (p["m"], p["width"])),
            ["m", "width", "steps", "p"])))
    for init in inits:
        sections.append((f"Data-compute frontier, {init} (TFLOP to reach p >= {target:g})",
                         render.markdown_table(compute[init], ["m", "tflop", "width", "steps",
                                                               "p"])))
    lines = ["The paper's claim: data, width and time trade off -- more width buys less data "
             "or less time -- and sparse init moves the frontier inward."]
    if {"dense", "sparse s=2"} <= set(inits):
        d = {(p["m"], p["width"]): p["steps"] for p in points
             if render.init_label(p) == "dense" and p["steps"]}
        s = {(p["m"], p["width"]): p["steps"] for p in points
             if render.init_label(p) == "sparse s=2" and p["steps"]}
        both = set(d) & set(s)
        lines.append(f"Cells where both reach p >= {target:g}: {len(both)}; sparse faster in "
                     f"{sum(s[k] < d[k] for k in both)}, dense faster in "
                     f"{sum(s[k] > d[k] for k in both)}; only sparse reaches it in "
                     f"{len(set(s) - set(d))}, only dense in {len(set(d) - set(s))}.")
    sections.append(("Measured against the paper", lines))
    report = experiment.write_report(out, f"pareto — data x width x time ({study.name})",
                                     sections, [png])
    print(report.read_text())
    return {"cells": cells, "fronts": fronts, "compute": compute, "pngs": [png],
            "report": report}


if __name__ == "__main__":
    sys.exit(experiment.main(__doc__, HERE, "pareto", main))
