"""sparsity: how many non-zero input weights per neuron -- s in {1, 2, 3, 4, 8} and dense.

    python experiments/sparsity.py [--full] [--config F] [--out DIR]

At fixed width and m: success probability and median time against s (dense plotted at s = n).
Writes p_vs_s.png, steps_vs_s.png and report.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from parity_jax import Study, experiment, plots, render, run

HERE = Path(__file__).resolve().parent


def main(config: str | Path = HERE / "sparsity.toml", out: str | Path = "runs/sparsity",
         progress=sys.stderr) -> dict:
    out = Path(out)
    study = Study.from_toml(config)
    cells = run(study, out, progress=progress).cells()
    for c in cells:
        c["nonzeros"] = c["s"] if c["init"] == "sparse" else c["n"]

    def panel(c):
        return f"width {c['width']}"

    pngs = [plots.line_panels(cells, "nonzeros", "p", "m", out / "p_vs_s.png",
                              panel=panel, ylabel="p(success)",
                              title="non-zero input weights per neuron (dense = n)"),
            plots.line_panels(cells, "nonzeros", "median_first_hit", "m",
                              out / "steps_vs_s.png", panel=panel, band=None,
                              ylabel="median first-hit step")]
    lines = []
    for key in sorted({(c["width"], c["m"]) for c in cells}):
        cs = [c for c in cells if (c["width"], c["m"]) == key]
        best = max(cs, key=lambda c: (c["p"], -(c["median_first_hit"] or 1e18)))
        lines.append(f"- width {key[0]}, m {key[1]}: highest p at "
                     f"{render.init_label(best)} (p = {best['p']:.2f}, median first hit "
                     f"{best['median_first_hit']}); " + ", ".join(
                         f"{render.init_label(c)}: {c['p']:.2f}"
                         for c in sorted(cs, key=lambda c: c["nonzeros"])))
    report = experiment.write_report(out, f"sparsity — s non-zeros per neuron ({study.name})", [
        ("Setup", [f"{len(cells)} cells x {study.seeds} seeds; config "
                   f"`{Path(config).name}`."]),
        ("Which s works best (paper: s = 2 for k = 3; small s beats dense at large width)",
         lines),
        ("All cells", render.markdown_table(cells, ["init", "s", "width", "m", "trials",
                                                    "successes", "p", "ci_low", "ci_high",
                                                    "median_first_hit"])),
    ], pngs)
    print(report.read_text())
    return {"cells": cells, "pngs": pngs, "report": report}


if __name__ == "__main__":
    sys.exit(experiment.main(__doc__, HERE, "sparsity", main))
