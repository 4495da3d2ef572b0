"""The parity kind's report: per-cell summaries (``Results.cells``), per-trial records, the
m-frontier and the data-compute frontier, the summary table ``run`` and ``report`` print, and
the success heatmaps ``plot`` writes (matplotlib imported only then).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from parity_jax import errors, files, flops, reduce, render, targets
from parity_jax.errors import ConfigError
from parity_jax.kinds.parity import adaptive as kind_adaptive
from parity_jax.kinds.parity import budget, select
from parity_jax.kinds.parity.config import Cell, later_defaults

_FIRST = ("n", "k", "width", "depth", "m", "init", "s", "lr", "wd", "loss", "steps")


def cell_fields() -> tuple[str, ...]:
    """Every cell setting, in report order (docs/DESIGN.md §4.4 fields first), each target
    parameter a field of its own (the registered targets' too)."""
    return tuple([*_FIRST, *(f.name for f in dataclasses.fields(Cell)
                             if f.name not in _FIRST and f.name != "params"),
                  *targets.param_names()])


CELL_FIELDS = cell_fields()  # the built-in targets' (``cell_fields()``: the registered ones too)
# What the data-compute frontier trades off (m against compute) or lets vary inside a group
# (the width and the step budget that reach it); every other setting is one group.
COMPUTE_FREE = ("m", "width", "steps")


def summarize(cells: list[dict], trials: list[dict], adaptive=None,
              seeds: int | None = None, selects=None) -> list[dict]:
    """One record per cell: settings, trials, successes, p, ci_low, ci_high, median_first_hit,
    diverged, ``metric`` (what success measured: "error", the test error, or "nmse", the
    normalized test MSE of a real-valued target), ``median_compute`` (the median training
    FLOPs to the first hit over the successful trials, ``flops.flops_to_step``) and
    ``trial_steps`` (SGD steps summed over its trials); a cell with ``recover`` adds
    ``recovery_end`` and ``recovery_hit``: per term of its target, the median recovery over
    its trials at their last evaluation and over its successes at their first hit. An adaptive
    study's cells (``adaptive``: its ``[adaptive]``, ``seeds`` the most per cell) add
    ``cs_low``, ``cs_high`` (the anytime-valid interval at level alpha,
    ``reduce.confidence_sequence``), ``decision`` ("above" / "below" the target, "open" at the
    most seeds, None while running) and
    ``full_trial_steps`` (an estimate of the cell run with every seed: its mean steps per
    trial times ``seeds``).

    cells: store cell records (with key "cell"); trials: store trial records.
    """
    by_cell = reduce.group(trials, ["cell"])
    fields, defaults = cell_fields(), later_defaults()
    records = []
    for c in cells:
        ts = by_cell.get((c["cell"],), [])
        hits = [t["first_hit"] for t in ts if t["success"]]
        lo, hi = reduce.wilson(len(hits), len(ts))
        rec = {"cell": c["cell"], **{f: c.get(f, defaults.get(f)) for f in fields}}
        rec.update(
            trials=len(ts),
            successes=len(hits),
            p=len(hits) / len(ts) if ts else None,
            ci_low=lo,
            ci_high=hi,
            median_first_hit=float(np.median(hits)) if hits else None,
            diverged=sum(bool(t["diverged"]) for t in ts),
            metric=targets.metric(rec["target"]),
            median_compute=float(np.median([flops.flops_to_step(h, **c) for h in hits]))
            if hits else None,
            trial_steps=sum(t["steps_run"] for t in ts),
            first_hits=sorted(hits),
        )
        if selects is not None:
            rec.update(select_over=selects.over, **select.half_fields(ts))
        if rec.get("recover") is not None:
            rec["recovery_end"] = _median_terms(t.get("recovery_end") for t in ts)
            rec["recovery_hit"] = _median_terms(t.get("recovery_hit") for t in ts)
        if adaptive is not None:
            success = {(c["cell"], t["seed"]): t["success"] for t in ts}
            _, decision = kind_adaptive.cell_state(adaptive, seeds, c["cell"], success)
            rec["cs_low"], rec["cs_high"] = reduce.confidence_sequence(len(hits), len(ts),
                                                                       adaptive.alpha)
            rec["decision"] = decision
            rec["full_trial_steps"] = rec["trial_steps"] / len(ts) * seeds if ts else None
        records.append(rec)
    return records


def _median_terms(lists) -> list | None:
    """Per term, the median of the finite recoveries of ``lists`` (None: none measured)."""
    rows = [r for r in lists if r is not None]
    if not rows:
        return None
    cols = [[v for v in col if v is not None] for col in zip(*rows, strict=True)]
    return [float(np.median(c)) if c else None for c in cols]


def trial_records(cells: Mapping[int, dict], trials: list[dict]) -> list[dict]:
    """``Results.trials``: each trial with its cell's settings and ``compute``, its training
    FLOPs to its first hit (None if it never hit)."""
    return [{**cells[t["cell"]], **t, "compute": None if t["first_hit"] is None else
             flops.flops_to_step(t["first_hit"], **cells[t["cell"]])} for t in trials]


def frontier(records: list[dict], target: float = 0.5, over: str = "m") -> list[dict]:
    """Per setting of every other field: the smallest value of ``over`` whose p >= target.

    Returns one record per group with the group's settings, ``over`` = that value (None when
    none reaches the target), ``reached`` and ``p_target``. ``reached`` tells the two kinds of
    None m apart: an online cell (no m: fresh samples every step) that reaches the target has
    m = None and ``reached`` True; a setting that never reaches it has ``reached`` False.
    """
    keep = [f for f in cell_fields() if f != over]
    return reduce.smallest_reaching(records, keep, over, target, later_defaults())


def checked_frontier(records: list[dict], target: float, over: str) -> list[dict]:
    """``Results.frontier``: ``frontier`` after checking the caller's ``target`` and ``over``."""
    if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target <= 1:
        raise ConfigError(f"target = {target!r}: must be a number in (0, 1]")
    if over not in cell_fields():
        raise ConfigError(f"over = {over!r}: must be one of {', '.join(cell_fields())}")
    return frontier(records, target, over)


def compute_key(record: Mapping) -> tuple:
    """The data-compute frontier's group of a cell: its target, metric, n, k and every other
    setting but m, width and steps."""
    return tuple(record.get(f, later_defaults().get(f))
                 for f in (*_compute_fields(), "metric"))


def _compute_fields() -> list[str]:
    return [f for f in cell_fields() if f not in COMPUTE_FREE]


def compute_frontier(records: list[dict], target: float = 0.5) -> list[dict]:
    """The data-compute frontier: per group (``compute_key``: target, metric, n, k and every
    setting but m, width and steps), the cells whose p reaches ``target`` that no cell of the
    group dominates in (m, median_compute) -- less data needs more compute, or not (offline
    cells only). Groups in the order of the records, each sorted by m."""
    out = []
    for rs in reduce.group(records, [*_compute_fields(), "metric"], later_defaults()).values():
        reached = [r for r in rs if r["p"] is not None and r["p"] >= target
                   and r["m"] is not None and r.get("median_compute") is not None]
        out += sorted(reduce.pareto(reached, ("m", "median_compute")), key=lambda r: r["m"])
    return out


def cells_table(records: Sequence[Mapping], target: float = 0.5) -> str:
    """Cell records (``Results.cells()``) as a plain-text table -- the settings that vary, then
    trials, successes, p, the 95% interval, p at 1/4 and 1/2 of the steps (``budget``; records
    with ``first_hits``) and the median first hit -- then, for a study with ``[select]``, the
    cross-fitted selection per group (``select.lines``), then the
    frontier: per setting of the other varying fields, the smallest m with p >= ``target``
    ("online" where an online cell reaches it: it has no m), and the data-compute frontier
    per setting of the varying fields other than m, width and steps."""
    fmt = render.format_value
    varying = [f for f in cell_fields() if len({r[f] for r in records}) > 1]
    keys = varying or ["width", "m", "init"]
    # what success measured, where a real-valued target's normalized MSE is among it
    metric = ["metric"] if any(r.get("metric", "error") != "error" for r in records) else []
    recovery = any(r.get("recovery_end") is not None for r in records)
    adaptive = any("decision" in r for r in records)
    # p against the step budget: records from ``summarize`` hold the first hits
    by_step = [budget.COLUMN] if all("first_hits" in r for r in records) else []
    cols = keys + metric + ["trials", "successes", "p", "95% CI", *by_step, "median_first_hit",
                            "TFLOP to hit"] + (["CS (anytime)", "decision"] if adaptive else []) \
        + (["recovery (median per term, end)"] if recovery else [])
    rows = [[*(r[k] for k in keys + metric), str(r["trials"]), str(r["successes"]),
             "-" if r["p"] is None else f"{r['p']:.2f}",
             f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
             *([budget.checkpoints(r)] if by_step else []), r["median_first_hit"],
             _tflop(r.get("median_compute"))]
            + ([f"[{r['cs_low']:.2f}, {r['cs_high']:.2f}]", r["decision"] or "running"]
               if adaptive else [])
            + ([_terms_text(r.get("recovery_end"))] if recovery else [])
            for r in records]
    lines = render.text_table(rows, cols)
    if adaptive:
        lines += [""] + adaptive_summary(records, keys)
    if records and records[0].get("select_over"):
        lines += [""] + select.lines(records, cell_fields(), keys, later_defaults())
    fkeys = [k for k in keys if k != "m"]
    if fkeys and "m" in keys:
        lines += ["", f"frontier: smallest m with p >= {target:g}"]
        for f in frontier(list(records), target):
            label = "  ".join(f"{k}={fmt(f[k])}" for k in fkeys)
            m = "online" if f["reached"] and f["m"] is None else fmt(f["m"])
            lines.append(f"  {label}:  m = {m}")
    front = compute_frontier(list(records), target) if "m" in keys else []
    if front:
        lines += ["", f"data-compute frontier (p >= {target:g}): no other cell of its setting "
                      "has less m and fewer TFLOP to hit"]
        gkeys = [k for k in keys + metric if k not in COMPUTE_FREE]
        free = [k for k in keys if k in COMPUTE_FREE and k != "m"]
        shown = None
        for r in front:
            if gkeys and compute_key(r) != shown:
                shown = compute_key(r)
                lines.append("  " + "  ".join(f"{k}={fmt(r[k])}" for k in gkeys) + ":")
            label = "  ".join(f"{k}={fmt(r[k])}" for k in free)
            lines.append(f"{'    ' if gkeys else '  '}m = {fmt(r['m'])}:  "
                         f"{_tflop(r['median_compute'])} TFLOP" + (f"  ({label})" if label else ""))
    return "\n".join(lines)


def adaptive_summary(records: Sequence[Mapping], keys: Sequence[str]) -> list[str]:
    """An adaptive study's summary lines: trials and trial-steps spent against the same study
    with every seed (estimated from each cell's mean steps), the decisions, and the frontier
    from them: per setting of the other varying fields, the smallest m decided above."""
    spent = sum(r["trial_steps"] for r in records)
    full = sum(r["full_trial_steps"] or 0 for r in records)
    counts = {d: sum(r["decision"] == d for r in records)
              for d in ("above", "below", "open", None)}
    lines = [f"adaptive: {sum(r['trials'] for r in records)} trials run, {spent:,} "
             f"trial-steps, {spent / full:.0%} of the about {full:,.0f} the study would spend "
             "with every seed" if full else "adaptive: nothing run yet",
             f"decisions: {counts['above']} above, {counts['below']} below, {counts['open']} "
             f"open at the most seeds" + (f", {counts[None]} running" if counts[None] else "")]
    fkeys = [k for k in keys if k != "m"]
    if "m" in keys and fkeys:
        lines.append("frontier from the decisions: smallest m decided above the adaptive "
                     "target (the study's [adaptive] target, not report's --target)")
        best: dict = {}
        for r in records:
            label = "  ".join(f"{k}={render.format_value(r[k])}" for k in fkeys)
            best.setdefault(label, None)
            if r["decision"] == "above" and r["m"] is not None \
                    and (best[label] is None or r["m"] < best[label]):
                best[label] = r["m"]
        lines += [f"  {label}:  m = {render.format_value(m)}" for label, m in best.items()]
    return lines


def _terms_text(values: list | None) -> str:
    """Per-term recoveries in a table cell: "0.98 0.95 0.41" ("-": none measured)."""
    return "-" if values is None else " ".join("-" if v is None else f"{v:.2f}" for v in values)


def _tflop(flops: float | None) -> str:
    """FLOPs as TFLOP, three significant digits ("-": none)."""
    return "-" if flops is None else f"{flops / 1e12:.3g}"


# ---- figures -----------------------------------------------------------------------------------

# A settings suffix of a figure's name (``_n50_lr0.1``) stays readable when it is short and
# made of these characters; otherwise figures are numbered and heatmaps.txt lists the settings.
_SAFE = re.compile(r"[A-Za-z0-9_.+-]+")
_MAX_SUFFIX = 100


def _short(value) -> str:
    """A setting in a title: as it is, or shortened (``errors.show``) when long."""
    text = str(value)
    return text if len(text) <= 40 else errors.show(value)


def task_title(record: Mapping) -> str:
    """A cell's task as a figure title says it: ``(50,3)-parity``, ``(20,3)-hermite degree=2
    (gaussian)``, ``(20,3)-polynomial (2 terms) (2 coefs)`` (``targets.label``)."""
    target = record.get("target") or targets.DEFAULT
    params = targets.get(target).params if target in targets.registered() else ()
    name = targets.label(target, {p.name: record.get(p.name) for p in params})
    inputs = record.get("inputs") or "boolean"
    if inputs != "boolean":
        name += f" ({inputs})"
    return f"({record['n']},{record['k']})-{name}"


def figures(records: list[dict], out_dir: str | Path, target: float = 0.5) -> list[Path]:
    """What ``plot`` writes: the heatmaps, then p against the step budget (p_vs_steps.png,
    ``budget.figure``; records with ``first_hits``)."""
    paths = heatmaps(records, out_dir, target)
    if records and all("first_hits" in r for r in records):
        varying = [f for f in cell_fields() if len({r[f] for r in records}) > 1]
        paths += budget.figure(records, varying, out_dir,
                               title=f"P(first hit <= t), {task_title(records[0])}")
    return paths


def heatmaps(records: list[dict], out_dir: str | Path, target: float = 0.5) -> list[Path]:
    """Success heatmaps over (m, width) with the m-frontier drawn: one per init and per setting
    of the other varying fields, titled with the cell's task and those settings.

    Named heatmap_<init>.png, or heatmap_<init>_<settings>.png (``_n50_lr0.1``) where other
    fields vary and every such suffix is short and plain; else heatmap_<init>_<i>.png, i
    numbering the settings, with heatmaps.txt listing each file's settings (also returned,
    last). Every name is chosen before the first figure is written."""
    from parity_jax import plots  # matplotlib: only when figures are made

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    others = [f for f in cell_fields() if f not in ("m", "width", "init", "s")
              and len({r[f] for r in records}) > 1]
    panels: dict[tuple, list[dict]] = {}
    for r in records:
        panels.setdefault((render.init_label(r, slug=True), *(r[f] for f in others)),
                          []).append(r)
    settings = sorted({key[1:] for key in panels}, key=str)
    suffixes = ["".join(f"_{k}{v}" for k, v in zip(others, s, strict=True)) for s in settings]
    numbered = len(set(suffixes)) < len(suffixes) or not all(
        _SAFE.fullmatch(x) and len(x) <= _MAX_SUFFIX for x in suffixes if x)
    if numbered:
        suffixes = [f"_{i}" for i in range(1, len(settings) + 1)]
    named = {key: f"heatmap_{key[0]}{suffixes[settings.index(key[1:])]}.png" for key in panels}
    paths = []
    for key, rs in sorted(panels.items(), key=lambda kv: str(kv[0])):
        label, rest = key[0], dict(zip(others, key[1:], strict=True))
        ms = sorted({r["m"] for r in rs}, key=lambda m: -1 if m is None else m)
        widths = sorted({r["width"] for r in rs})
        grid = np.full((len(widths), len(ms)), np.nan)
        for r in rs:
            if r["p"] is not None:
                grid[widths.index(r["width"]), ms.index(r["m"])] = r["p"]
        extra = ", ".join(f"{k}={_short(v)}" for k, v in rest.items())
        paths.append(plots.heatmap(
            grid, [str(m) for m in ms], [str(w) for w in widths], out_dir / named[key],
            target=target, xlabel="training samples m", ylabel="width r",
            title=f"success probability, {task_title(rs[0])}, {label}"
            + (f"\n{extra}" if extra else "")))
    if numbered:
        lines = sorted(f"{name}: " + ", ".join(f"{k}={v!r}" for k, v in zip(
            others, key[1:], strict=True)) for key, name in named.items())
        paths.append(files.write_text(out_dir / "heatmaps.txt",
                                      "\n".join(errors.one_line(x) for x in lines) + "\n"))
    return paths
