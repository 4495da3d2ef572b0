"""Fault test: SIGKILL a study at random moments, resume each time, compare with a clean run.

    python tests/faults.py [CONFIG] [--kills 10] [--seed 0] [--memory-budget 40K]

Runs CONFIG once uninterrupted (the reference), then into a second directory: start, SIGKILL
after a random delay, restart, ... ``--kills`` times, then once to completion. Passes when the
second store holds every trial exactly once, with outcomes equal to the reference row by row,
and ``parity-jax check`` finds no problem. The test suite runs a short version
(tests/test_runner.py).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

SMALL = """
name = "faults"
seeds = 3
[task]
n = 10
k = 2
m = [40, 80]
n_test = 100
[model]
width = [16, 32]
init = ["dense", "sparse"]
[train]
steps = 3000
batch = 8
stop_on_success = false
"""


# The script's default: the same grid with more seeds, long enough for 10 kills mid-study.
LONGER = SMALL.replace("seeds = 3", "seeds = 40")


def rows(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "results.sqlite") as conn:
        return conn.execute("SELECT * FROM trials ORDER BY cell, seed").fetchall()


def count(out: Path) -> int:
    """Trials stored so far (0 while there is no store yet)."""
    if not (out / "results.sqlite").exists():
        return 0
    try:
        with sqlite3.connect(out / "results.sqlite", timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return 0


def command(config: Path, out: Path, budget: str) -> list[str]:
    return [sys.executable, "-m", "parity_jax.cli", "run", str(config), "--out", str(out),
            "--memory-budget", budget]


def kill_and_resume(config: Path, work: Path, kills: int = 10, seed: int = 0,
                    budget: str = "40K", log=print) -> dict:
    """The whole fault test; returns what it saw (raises AssertionError on a failure)."""
    rng = random.Random(seed)
    start = time.perf_counter()
    subprocess.run(command(config, work / "reference", budget), check=True,
                   capture_output=True)
    reference_wall = time.perf_counter() - start
    reference = rows(work / "reference")
    out = work / "killed"
    seen = []
    for i in range(kills):
        before = count(out)
        proc = subprocess.Popen(command(config, out, budget), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if i % 2 == 0:  # any moment: start-up, compiling, training, writing
            delay = rng.uniform(0.02, 0.3) * reference_wall
        else:  # once this run has stored something, somewhere in its next batches
            deadline = time.perf_counter() + 5 * reference_wall
            while (count(out) == before and proc.poll() is None
                   and time.perf_counter() < deadline):
                time.sleep(0.01)
            delay = rng.uniform(0.0, 0.05) * reference_wall
        try:
            proc.wait(timeout=delay)
            seen.append(("finished before the kill", count(out)))
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            seen.append((f"killed after {delay:.1f} s", count(out)))
        log(f"run {i + 1}/{kills}: {seen[-1][0]}; {seen[-1][1]}/{len(reference)} trials stored")
    subprocess.run(command(config, out, budget), check=True, capture_output=True)
    final = rows(out)
    assert len(final) == len({r[:2] for r in final}) == len(reference), "trial count"
    assert final == reference, "outcomes differ from the uninterrupted run"
    check = subprocess.run([sys.executable, "-m", "parity_jax.cli", "check", str(out)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log(check.stdout.strip())
    return {"runs": seen, "trials": len(final), "reference_wall_s": reference_wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", help="study TOML (default: a built-in one, 320 trials)")
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-budget", default="40K")
    ap.add_argument("--work", help="working directory (default: a new temporary one)")
    args = ap.parse_args()
    import tempfile

    work = Path(args.work or tempfile.mkdtemp(prefix="parity-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    config = Path(args.config) if args.config else work / "faults.toml"
    if not args.config:
        config.write_text(LONGER)
    result = kill_and_resume(config, work, args.kills, args.seed, args.memory_budget)
    killed = sum(1 for what, _ in result["runs"] if what.startswith("killed"))
    print(f"passed: {killed} kills, {result['trials']} trials each stored once, equal to the "
          f"uninterrupted run; check passed ({work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
