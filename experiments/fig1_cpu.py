"""fig1-cpu: success heatmaps over (m, width), dense vs sparse s=2, on a 2-core CPU.

    python experiments/fig1_cpu.py [--config experiments/fig1_cpu.toml] [--out runs/fig1-cpu]

Runs (or resumes) the study, then writes report.csv, report.json, report.txt and one heatmap
per init into the output directory, and prints the table and the wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from parity_jax import ConfigError, Study, cli, plots, run

HERE = Path(__file__).resolve().parent


def main(config: str | Path = HERE / "fig1_cpu.toml", out: str | Path = "runs/fig1-cpu",
         progress=sys.stderr) -> dict:
    """Runs the study and writes its reports; returns {"wall_s", "cells", "pngs"}."""
    out = Path(out)
    start = time.perf_counter()
    results = run(Study.from_toml(config), out, progress=progress)
    wall = time.perf_counter() - start
    cells = results.cells()
    text = cli.table(cells)
    (out / "report.txt").write_text(text + "\n")
    (out / "report.json").write_text(json.dumps(cells, indent=1) + "\n")
    (out / "report.csv").write_text(cli.to_csv(cells))
    pngs = plots.heatmaps(cells, out)
    print(text)
    print(f"\nwall time {wall:.1f} s (this invocation; a resumed run counts only its own part)")
    return {"wall_s": wall, "cells": cells, "pngs": pngs}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=HERE / "fig1_cpu.toml")
    parser.add_argument("--out", default="runs/fig1-cpu")
    args = parser.parse_args()
    try:
        main(args.config, args.out)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
