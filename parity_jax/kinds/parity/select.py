"""Tuning one [train] axis per group of cells, honestly (``[select]``, issue 30): the cells that
differ only in ``over`` (lr, or wd) are one group; each cell's trials are split by seed index
into an even and an odd half (fixed before any outcome is seen); the value is chosen on one half
and its p measured on the other, both ways, and the held-out counts pooled
(``reduce.cross_fit``, where the estimate and its interval are derived). ``report`` shows per
group the value chosen on each half, the held-out p with its interval, and every value's p.

A study may not have both ``[select]`` and ``[adaptive]`` (``Study.validate``): an adaptive
cell stops on its outcomes, so its halves' sizes would depend on them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np

from parity_jax import reduce, render

HALVES = ("even", "odd")  # seed index % 2


def half_fields(trials: Sequence[Mapping]) -> dict:
    """A cell's per-half statistics: ``successes_even``, ``trials_even``,
    ``median_first_hit_even`` (None: no hit), the same for ``odd``."""
    out: dict = {}
    for h, name in enumerate(HALVES):
        ts = [t for t in trials if t["seed"] % 2 == h]
        hits = [t["first_hit"] for t in ts if t["success"]]
        out.update({f"successes_{name}": len(hits), f"trials_{name}": len(ts),
                    f"median_first_hit_{name}": float(np.median(hits)) if hits else None})
    return out


def arm(record: Mapping, over: str) -> dict:
    """A cell record as ``reduce.cross_fit`` reads an arm."""
    return {"value": record[over],
            **{k: tuple(record[f"{k}_{h}"] for h in HALVES)
               for k in ("successes", "trials", "median_first_hit")}}


def selections(records: Sequence[Mapping], over: str, fields: Sequence[str],
               defaults: Mapping | None = None) -> list[dict]:
    """Per group (the records equal on every one of ``fields`` but ``over``): its settings,
    ``arms`` (its records, by value of ``over``) and ``reduce.cross_fit``'s result."""
    by = [f for f in fields if f != over]
    out = []
    for key, rs in reduce.group(records, by, defaults).items():
        rs = sorted(rs, key=lambda r: r[over])
        out.append({**dict(zip(by, key, strict=True)), "arms": rs,
                    **reduce.cross_fit([arm(r, over) for r in rs])})
    return out


def lines(records: Sequence[Mapping], fields: Sequence[str], keys: Sequence[str],
          defaults: Mapping | None = None) -> list[str]:
    """The report's selection section: per group (labelled by the varying ``keys``), the value
    chosen on each half, the held-out p with its Wilson interval and counts, the naive
    best-of p, and every value's p."""
    over = records[0]["select_over"]
    fmt = render.format_value
    out = textwrap.wrap(
        f"{over} tuned per group, cross-fitted: chosen on the even seeds and on the odd ones "
        f"(highest success rate, then smaller median first hit, then smaller {over}); held-out "
        f"p: the chosen {over}'s p on the other half, pooled (95% Wilson, design effect 2); "
        f"best-of p: the best {over}'s p on all seeds (biased upward)", 96,
        subsequent_indent="  ")
    for g in selections(records, over, fields, defaults):
        label = "  ".join(f"{k}={fmt(g[k])}" for k in keys if k != over)
        even, odd = (fmt(v) for v in g["chosen"])
        held = "-" if g["p"] is None else (
            f"{g['p']:.2f} [{g['ci_low']:.2f}, {g['ci_high']:.2f}] "
            f"({g['successes']}/{g['trials']})")
        best = "-" if g["best_p"] is None else f"{g['best_p']:.2f}"
        out.append(f"  {label + ':  ' if label else ''}{over} = {even} (even), {odd} (odd);  "
                   f"held-out p = {held};  best-of p = {best}")
        out.append("    p per " + over + ": " + ",  ".join(
            f"{fmt(r[over])}: " + ("-" if r["p"] is None else f"{r['p']:.2f}")
            for r in g["arms"]))
    return out
