"""adaptive: an adaptive luck study against the same study with every seed.

    python experiments/adaptive.py [--config F] [--out DIR]

The config's grid runs twice: with every seed (``[adaptive]`` dropped; its store in
``OUT/full`` is reused when it is there) and adaptive (``OUT/adaptive``: seeds in rounds, a cell
stopping once its anytime-valid interval lies above or below the target). Reported: whether the
two runs' decisions agree wherever the full run's own anytime-valid interval settles the cell
(the full run read with the same rule at its seed count), the trial-steps and wall time of both,
and a figure of where the adaptive run's seeds went (trials per cell, per init). Writes
seeds.png and report.md.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from parity_jax import Study, experiment, files, plots, reduce, render, run
from parity_jax.errors import ConfigError

HERE = Path(__file__).resolve().parent


def _timed(study, out: Path, progress) -> tuple[list[dict], float | None]:
    """The study's cells, and the wall time of the run that trained it (a store reused whole
    compiles nothing: it keeps the time recorded in OUT/../walls.json when it ran)."""
    walls_path = out.parent / "walls.json"
    walls = json.loads(walls_path.read_text()) if walls_path.exists() else {}
    start = time.perf_counter()
    results = run(study, out, progress=progress)
    if results.compiled["programs"] or out.name not in walls:
        walls[out.name] = time.perf_counter() - start
        files.write_text(walls_path, json.dumps(walls, indent=1) + "\n")
    return results.cells(), walls[out.name]


def agreement(full: list[dict], adaptive: list[dict], target: float, alpha: float) -> dict:
    """Per cell: the full run's decision by its own anytime-valid interval (at every seed),
    the adaptive run's; counts of agreeing, disagreeing and unsettled (full run open)."""
    out = {"agree": 0, "disagree": 0, "full_open": 0, "cells": []}
    by_cell = {c["cell"]: c for c in adaptive}
    for f in full:
        decided = reduce.decide(f["successes"], f["trials"], target, alpha)
        a = by_cell[f["cell"]]
        out["cells"].append({**{k: f[k] for k in ("init", "s", "m", "width")},
                             "full_p": f["p"], "full": decided, "adaptive": a["decision"],
                             "adaptive_trials": a["trials"], "adaptive_p": a["p"]})
        if decided == "open":
            out["full_open"] += 1
        elif decided == a["decision"]:
            out["agree"] += 1
        else:
            out["disagree"] += 1
    return out


def seeds_figure(cells: list[dict], seeds: int, path: Path) -> list[Path]:
    """Trials run per cell over (m, width), one heatmap per init: where the seeds went."""
    pngs = []
    for init in sorted({render.init_label(c) for c in cells}):
        mine = [c for c in cells if render.init_label(c) == init]
        ms = sorted({c["m"] for c in mine})
        ws = sorted({c["width"] for c in mine})
        grid = np.full((len(ws), len(ms)), np.nan)
        for c in mine:
            grid[ws.index(c["width"]), ms.index(c["m"])] = c["trials"] / seeds
        slug = render.init_label(mine[0], slug=True)
        pngs.append(plots.heatmap(grid, [str(m) for m in ms], [str(w) for w in ws],
                                  path.with_name(f"{path.stem}_{slug}.png"), target=2.0,
                                  xlabel="m", ylabel="width",
                                  title=f"where the seeds went: seeds run / {seeds}, {init}",
                                  value="fraction of the seeds run"))
    return pngs


def main(config: str | Path = HERE / "adaptive.toml", out: str | Path = "runs/adaptive",
         progress=sys.stderr) -> dict:
    out = Path(out)
    study = Study.from_toml(config)
    if study.adaptive is None:
        raise ConfigError(f"config: {config} has no [adaptive] table")
    ad = study.adaptive
    full_cells, full_wall = _timed(dataclasses.replace(study, adaptive=None), out / "full",
                                   progress)
    cells, wall = _timed(study, out / "adaptive", progress)
    steps = {"full": sum(c["trial_steps"] for c in full_cells),
             "adaptive": sum(c["trial_steps"] for c in cells)}
    agree = agreement(full_cells, cells, ad.target, ad.alpha)
    pngs = seeds_figure(cells, study.seeds, out / "seeds.png")
    trials = {"full": sum(c["trials"] for c in full_cells),
              "adaptive": sum(c["trials"] for c in cells)}
    ratio = steps["adaptive"] / max(steps["full"], 1)
    summary = [
        f"- trials: adaptive {trials['adaptive']}, full {trials['full']}",
        f"- trial-steps: adaptive {steps['adaptive']:,}, full {steps['full']:,} "
        f"(adaptive/full = {ratio:.3f})",
        f"- wall time: adaptive {wall:.1f} s, full {full_wall:.1f} s (each as it first ran; "
        "the adaptive run after the full one finds its programs compiled)",
        f"- decisions: {agree['agree']} cells agree with the full run's own anytime-valid "
        f"interval, {agree['disagree']} disagree, {agree['full_open']} are open in the full run "
        "(its interval at every seed contains the target)",
    ]
    report = experiment.write_report(out, f"adaptive — seeds where the answer is open "
                                          f"({study.name})", [
        ("Setup", [f"{len(cells)} cells x at most {study.seeds} seeds; target p = {ad.target}, "
                   f"alpha = {ad.alpha}, first round {ad.first} seeds, then doubling; config "
                   f"`{Path(config).name}`."]),
        ("Summary", summary),
        ("Per cell", render.markdown_table(agree["cells"], [
            "init", "m", "width", "full_p", "full", "adaptive_trials", "adaptive_p",
            "adaptive"])),
    ], pngs)
    print(report.read_text())
    return {"cells": cells, "full_cells": full_cells, "steps": steps, "trials": trials,
            "agreement": agree, "walls": {"adaptive": wall, "full": full_wall},
            "pngs": pngs, "report": report}


if __name__ == "__main__":
    sys.exit(experiment.main(__doc__, HERE, "adaptive", main))
