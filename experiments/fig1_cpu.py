"""fig1: success heatmaps over (m, width), dense vs sparse s=2, plus a few training curves.

    python experiments/fig1_cpu.py [--full] [--config F] [--out runs/fig1-cpu]

Runs (or resumes) the study -- by default the built-in fig1-cpu study, sized for a 2-core CPU
-- and a small curves study (``fig1_curves.toml``: test error at every evaluation of a few
trials, into OUT/curves). Writes report.csv, report.json, report.txt, one heatmap per init with
the frontier, curves.png and report.md into OUT, and prints the table and the wall time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from parity_jax import Study, experiment, files, plots, reduce, render, run
from parity_jax.kinds.parity import report as parity_report

HERE = Path(__file__).resolve().parent


def claims(cells: list[dict]) -> list[tuple[str, list[str]]]:
    n_w, down = experiment.decreases(cells, "width", ("init", "s", "m"))
    sig = [d for d in down if d[5]]
    front = {(f["init"], f["width"]): f["m"] for f in parity_report.frontier(cells, 0.5)}
    widths = sorted({w for _, w in front})
    rows = [[w, front.get(("dense", w)) or "-", front.get(("sparse", w)) or "-"]
            for w in widths]
    better = sum(1 for w in widths if front.get(("sparse", w)) and (
        not front.get(("dense", w)) or front["sparse", w] < front["dense", w]))
    worse = sum(1 for w in widths if front.get(("dense", w)) and (
        not front.get(("sparse", w)) or front["dense", w] < front["sparse", w]))
    return [
        ("Width helps (paper: monotonically)", [
            f"Of {n_w} steps to the next larger width (same init and m), p went down in "
            f"{len(down)}, significantly (disjoint 95% intervals) in {len(sig)}."]),
        ("Sparse init moves the data frontier (paper: to smaller m at large width)", [
            "Smallest m with p >= 0.5:", "",
            *render.markdown_table(rows, ["width", "dense", "sparse"]), "",
            f"Sparse needs less data at {better} widths, more at {worse}, the same at the "
            "rest."]),
    ]


def main(config: str | Path = HERE / "fig1_cpu.toml", out: str | Path = "runs/fig1-cpu",
         progress=sys.stderr, curves_config: str | Path | None = HERE / "fig1_curves.toml"
         ) -> dict:
    """Runs the studies and writes the reports; returns {"wall_s", "cells", "pngs"}."""
    out = Path(out)
    start = time.perf_counter()
    study = Study.from_toml(config)
    results = run(study, out, progress=progress)
    wall = time.perf_counter() - start
    cells = results.cells()
    text = parity_report.cells_table(cells)
    files.write_text(out / "report.txt", text + "\n")
    files.write_text(out / "report.json", json.dumps(cells, indent=1) + "\n")
    files.write_text(out / "report.csv", render.csv_text(cells))
    pngs = parity_report.heatmaps(cells, out)
    curve_lines = []
    if curves_config:
        curves = run(Study.from_toml(curves_config), out / "curves", progress=progress)
        pngs.append(plots.curves(curves.curves(), out / "curves.png"))
        for r in reduce.curve_summary(curves.curves()):
            below = r["step"][r["test_error_median"] <= r["threshold"]]
            curve_lines.append(
                f"- {render.init_label(r)}, width {r['width']}, m {r['m']}: the median "
                f"test error of {r['trials']} trials falls to {r['threshold']:g} at step "
                f"{below[0] if len(below) else '(never)'}")
    experiment.write_report(out, f"fig1 — success over data and width ({study.name})", [
        ("Setup", [f"{len(cells)} cells x {study.seeds} seeds; config `{Path(config).name}`; "
                   f"main study wall time {wall:.0f} s (this invocation). Training curves: "
                   f"`{Path(curves_config).name if curves_config else '-'}` (the drop from "
                   "chance to zero test error is sudden, after a long plateau)."]),
        *claims(cells), ("Training curves (median over the curve study's trials)",
                         curve_lines or ["-"]),
        ("Table", ["```", text, "```"])], pngs)
    print(text)
    print(f"\nwall time {wall:.1f} s (this invocation; a resumed run counts only its own part)")
    return {"wall_s": wall, "cells": cells, "pngs": pngs}


if __name__ == "__main__":
    sys.exit(experiment.main(__doc__, HERE, "fig1_cpu", main))
