"""luck: with the data fixed, success probability against width, and the parallel-search fit.

    python experiments/luck.py [--full] [--config F] [--out DIR]

``vary = "init"``: every trial of a cell sees the same training set and minibatch order; only
the initialisation differs -- the pure lottery of the init. Per (init, m) the script fits
p(r) = 1 - (1 - q)^r (as if each of the r neurons independently found the secret with chance q)
and reports q with a 95% profile-likelihood interval. Writes p_vs_width.png and report.md.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from parity_jax import Study, experiment, plots, reduce, render, run

HERE = Path(__file__).resolve().parent


def fits(cells: list[dict]) -> list[dict]:
    """One record per (init, s, m): q, q_low, q_high and the cells' widths."""
    groups = defaultdict(list)
    for c in cells:
        groups[c["init"], c["s"], c["m"]].append(c)
    out = []
    for (init, s, m), cs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        cs.sort(key=lambda c: c["width"])
        q = reduce.fit_q([c["width"] for c in cs], [c["successes"] for c in cs],
                         [c["trials"] for c in cs])
        out.append({"init": init, "s": s, "m": m, **q,
                    "widths": [c["width"] for c in cs],
                    "p": [c["p"] for c in cs]})
    return out


def main(config: str | Path = HERE / "luck.toml", out: str | Path = "runs/luck",
         progress=sys.stderr) -> dict:
    out = Path(out)
    study = Study.from_toml(config)
    cells = run(study, out, progress=progress).cells()
    q = fits(cells)
    curves = {}
    for f in q:
        rs = np.geomspace(min(f["widths"]), max(f["widths"]), 50)
        curves[render.init_label(f, slug=True), f["m"]] = (rs, 1 - (1 - f["q"]) ** rs)
    png = plots.line_panels(cells, "width", "p", "m", out / "p_vs_width.png",
                            ylabel="p(success)", fits=curves,
                            title="data fixed, init varies: p vs width (dashed: fit)")
    lines = []
    by_m = defaultdict(dict)
    for f in q:
        by_m[f["m"]][f["init"]] = f
    for m, d in sorted(by_m.items()):
        if {"dense", "sparse"} <= set(d) and d["dense"]["q"] > 0:
            ratio = d["sparse"]["q"] / d["dense"]["q"]
            apart = d["sparse"]["q_low"] > d["dense"]["q_high"]
            lines.append(f"- m = {m}: q sparse / q dense = {ratio:.2f}"
                         + (" (intervals disjoint: sparse luckier)" if apart else
                            " (intervals overlap)"))
        elif {"dense", "sparse"} <= set(d):
            lines.append(f"- m = {m}: no dense trial succeeded (q dense = 0, "
                         f"< {d['dense']['q_high']:.2g}); q sparse = {d['sparse']['q']:.3g}")
    report = experiment.write_report(out, f"luck — the lottery of the init ({study.name})", [
        ("Setup", [f"`vary = \"init\"`, data seed {cells[0]['data_seed']}; {len(cells)} cells "
                   f"x {study.seeds} seeds; config `{Path(config).name}`."]),
        ("Per-neuron success probability q (fit of p(r) = 1 - (1 - q)^r)",
         render.markdown_table(q, ["init", "s", "m", "q", "q_low", "q_high"])),
        ("Sparse vs dense (paper: sparse init is luckier at large width)", lines or ["-"]),
        ("How well the fit describes the data", [
            "Dashed lines in the figure; p(r) = 1 - (1 - q)^r assumes neurons succeed "
            "independently. Where the measured p rises more slowly with width than the fit, "
            "neurons are not independent searchers (e.g. the output layer's 1/r scaling)."]),
        ("All cells", render.markdown_table(cells, ["init", "m", "width", "trials", "successes",
                                                    "p", "ci_low", "ci_high",
                                                    "median_first_hit"])),
    ], [png])
    print(report.read_text())
    return {"cells": cells, "fits": q, "pngs": [png], "report": report}


if __name__ == "__main__":
    sys.exit(experiment.main(__doc__, HERE, "luck", main))
