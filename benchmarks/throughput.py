"""Throughput benchmark, as `parity-jax bench` (see parity_jax/bench.py for what is measured).

    pip install -e '.[bench]'    # PyTorch, for the side-by-side baselines
    python benchmarks/throughput.py [--widths 10,100 --trials 1,100 ...]

Writes benchmarks/results.json and benchmarks/table.md unless --json / --markdown say otherwise.
"""

import sys
from pathlib import Path

from parity_jax import cli

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    argv = sys.argv[1:]
    if "--json" not in argv:
        argv += ["--json", str(here / "results.json")]
    if "--markdown" not in argv:
        argv += ["--markdown", str(here / "table.md")]
    sys.exit(cli.main(["bench", *argv]))
