"""Reduction of trial outcomes: per-cell success probability, intervals, medians, frontiers."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import numpy as np

from parity_jax.config import Cell

Z95 = 1.959963984540054

# Every cell setting, in report order (DESIGN §4 fields first).
CELL_FIELDS = tuple(
    ["n", "k", "width", "depth", "m", "init", "s", "lr", "wd", "loss", "steps"]
    + [f.name for f in dataclasses.fields(Cell) if f.name not in
       ("n", "k", "width", "depth", "m", "init", "s", "lr", "wd", "loss", "steps")]
)
STAT_FIELDS = ("trials", "successes", "p", "ci_low", "ci_high", "median_first_hit", "diverged")


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1.0 + z * z / trials
    center = (p + z * z / (2 * trials)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, center - half), min(1.0, center + half)


def summarize(cells: list[dict], trials: list[dict]) -> list[dict]:
    """One record per cell: settings, trials, successes, p, ci_low, ci_high, median_first_hit.

    cells: store cell records (with key "cell"); trials: store trial records.
    """
    by_cell: dict[int, list[dict]] = defaultdict(list)
    for t in trials:
        by_cell[t["cell"]].append(t)
    records = []
    for c in cells:
        ts = by_cell.get(c["cell"], [])
        hits = [t["first_hit"] for t in ts if t["success"]]
        lo, hi = wilson(len(hits), len(ts))
        rec = {"cell": c["cell"], **{f: c[f] for f in CELL_FIELDS}}
        rec.update(
            trials=len(ts),
            successes=len(hits),
            p=len(hits) / len(ts) if ts else None,
            ci_low=lo,
            ci_high=hi,
            median_first_hit=float(np.median(hits)) if hits else None,
            diverged=sum(bool(t["diverged"]) for t in ts),
        )
        records.append(rec)
    return records


def frontier(records: list[dict], target: float = 0.5, over: str = "m") -> list[dict]:
    """Per setting of every other field: the smallest value of ``over`` whose p >= target.

    Returns one record per group with the group's settings and ``over`` = that value, or None
    when no value reaches the target.
    """
    keep = [f for f in CELL_FIELDS if f != over]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[tuple(r[f] for f in keep)].append(r)
    out = []
    for key, rs in groups.items():
        reached = [r[over] for r in rs if r["p"] is not None and r["p"] >= target]
        out.append({**dict(zip(keep, key, strict=True)), over: min(reached) if reached else None,
                    "target": target})
    return out
