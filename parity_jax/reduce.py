"""Reduction of trial outcomes: per-cell success probability, intervals, medians, frontiers."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections import defaultdict

import numpy as np

from parity_jax import flops
from parity_jax.config import LATER_DEFAULTS, Cell

Z95 = 1.959963984540054

# Every cell setting, in report order (docs/DESIGN.md §4.4 fields first).
CELL_FIELDS = tuple(
    ["n", "k", "width", "depth", "m", "init", "s", "lr", "wd", "loss", "steps"]
    + [f.name for f in dataclasses.fields(Cell) if f.name not in
       ("n", "k", "width", "depth", "m", "init", "s", "lr", "wd", "loss", "steps")]
)


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
    """One record per cell: settings, trials, successes, p, ci_low, ci_high, median_first_hit,
    diverged, ``metric`` (what success measured: "error", the test error, or "nmse", the
    normalized test MSE of a real-valued target) and ``median_compute`` (the median training
    FLOPs to the first hit over the successful trials, ``flops.flops_to_step``).

    cells: store cell records (with key "cell"); trials: store trial records.
    """
    from parity_jax.tasks import targets

    by_cell: dict[int, list[dict]] = defaultdict(list)
    for t in trials:
        by_cell[t["cell"]].append(t)
    records = []
    for c in cells:
        ts = by_cell.get(c["cell"], [])
        hits = [t["first_hit"] for t in ts if t["success"]]
        lo, hi = wilson(len(hits), len(ts))
        rec = {"cell": c["cell"], **{f: c.get(f, LATER_DEFAULTS.get(f)) for f in CELL_FIELDS}}
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
        groups[tuple(r.get(f, LATER_DEFAULTS.get(f)) for f in keep)].append(r)
    out = []
    for key, rs in groups.items():
        reached = [r[over] for r in rs if r["p"] is not None and r["p"] >= target]
        out.append({**dict(zip(keep, key, strict=True)), over: min(reached) if reached else None,
                    "p_target": target})
    return out


# ---- luck: the parallel-search fit p(r) = 1 - (1 - q)^r ---------------------------------------

CHI2_1_95 = 3.841458820694124  # 95% quantile of chi-square with 1 degree of freedom


def fit_q(widths, successes, trials) -> dict:
    """Maximum-likelihood q of p(r) = 1 - (1 - q)^r from cells (width r_i, s_i of n_i trials):
    the per-neuron chance of a "lottery ticket" if every neuron searched independently.

    Returns {"q", "q_low", "q_high"} (95% profile-likelihood interval), evaluated on a grid of
    q log-spaced over [1e-9, 1) (relative resolution about 0.1%); q = 0 when no trial succeeded.
    """
    r = np.asarray(widths, float)[:, None]
    s = np.asarray(successes, float)[:, None]
    n = np.asarray(trials, float)[:, None]
    q = np.concatenate([[0.0], np.logspace(-9, np.log10(1 - 1e-12), 20000)])[None, :]
    log_miss = r * np.log1p(-np.minimum(q, 1 - 1e-12))  # log (1-q)^r
    with np.errstate(divide="ignore", invalid="ignore"):
        log_hit = np.log(-np.expm1(log_miss))  # log (1 - (1-q)^r)
        ll = np.where(s > 0, s * log_hit, 0.0) + (n - s) * log_miss
    ll = np.nansum(np.where(np.isfinite(ll), ll, -np.inf), axis=0)
    best = int(np.argmax(ll))
    inside = np.nonzero(2 * (ll[best] - ll) <= CHI2_1_95)[0]
    return {"q": float(q[0, best]), "q_low": float(q[0, inside.min()]),
            "q_high": float(q[0, inside.max()])}


# ---- time: steps to reach a target success probability ---------------------------------------

def steps_to_target(first_hits: list, trials: int, target: float = 0.5) -> int | None:
    """Smallest step T with P(first hit <= T) >= target over ``trials`` trials (first_hits:
    those of the successful ones); None when fewer than target * trials succeeded."""
    need = math.ceil(target * trials - 1e-9)
    hits = sorted(h for h in first_hits if h is not None)
    if trials == 0 or need > len(hits):
        return None
    return int(hits[max(need, 1) - 1])


def compute_frontier(records: list[dict], target: float = 0.5) -> list[dict]:
    """The data-compute frontier: among cells whose p reaches ``target``, those not dominated
    in (m, median_compute) -- less data needs more compute, or not (offline cells only)."""
    reached = [r for r in records if r["p"] is not None and r["p"] >= target
               and r["m"] is not None and r.get("median_compute") is not None]
    return sorted(pareto(reached, ("m", "median_compute")), key=lambda r: r["m"])


def pareto(points: list[dict], axes: tuple[str, ...] = ("m", "width", "steps")) -> list[dict]:
    """The points not dominated on ``axes`` (smaller is better on each; None = unreachable):
    no other point is <= on every axis and < on one."""
    ok = [p for p in points if all(p[a] is not None for a in axes)]

    def dominates(a, b):
        return (all(a[x] <= b[x] for x in axes) and any(a[x] < b[x] for x in axes))

    return [p for p in ok if not any(dominates(o, p) for o in ok if o is not p)]


# ---- curves: per-cell aggregation of recorded training curves ---------------------------------

def curve_summary(curves: list[dict]) -> list[dict]:
    """Per cell: the evaluation steps and, at each, the median and quartiles of the test error
    and the median train loss over the cell's trials (a trial that stopped early counts with
    its last value: it stays at that error; a diverged point is left out).

    curves: records as ``Results.curves()`` returns them (cell settings, seed, step,
    test_error, train_loss).
    """
    by_cell: dict[int, list[dict]] = defaultdict(list)
    for c in curves:
        by_cell[c["cell"]].append(c)
    out = []
    for _, cs in sorted(by_cell.items()):
        steps = max((c["step"] for c in cs), key=len)
        n = len(steps)

        def held(values, n=n):  # (trials, n): each curve carried forward from its last point
            rows = []
            for v in values:
                v = np.asarray(v, float)
                rows.append(np.concatenate([v, np.full(n - len(v), v[-1] if len(v) else np.nan)]))
            return np.array(rows)

        err = held([c["test_error"] for c in cs])
        loss = held([c["train_loss"] for c in cs])
        with warnings.catch_warnings():  # an all-diverged step is NaN, and says so
            warnings.simplefilter("ignore", RuntimeWarning)
            q1, med, q3 = np.nanpercentile(err, [25, 50, 75], axis=0)
            loss_med = np.nanmedian(loss, axis=0)
        rec = {k: v for k, v in cs[0].items()
               if k not in ("seed", "step", "test_error", "train_loss")}
        out.append({**rec, "trials": len(cs), "step": np.asarray(steps),
                    "test_error_median": med, "test_error_q1": q1, "test_error_q3": q3,
                    "train_loss_median": loss_med})
    return out


# ---- tabular benchmark: model selection and error intervals ---------------------------------


def mean_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` with a Student-t interval (half-width 0 for a single value)."""
    from scipy import stats  # the t quantile (an inverse incomplete beta); imported when used

    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) == 1:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, mean - half, mean + half


def family(r: dict) -> str:
    """'dense', 'sparse' (any s) or 'forest': what one line of the tabular table compares."""
    return "forest" if r["model"] == "forest" else r["init"]


def select(records: list[dict],
           config: tuple[str, ...] = ("width", "depth", "s", "optimizer", "lr"),
           within: tuple[str, ...] = ("dataset", "fraction")) -> list[dict]:
    """Model selection as in the paper: per ``within`` group and family (dense MLP, sparse MLP,
    forest), the ``config`` setting with the lowest median validation loss over its seeds
    (forests: already tuned per seed, so all of them). Returns one record per group and family:
    the settings, ``seeds``, ``diverged`` (seeds without a test error, left out of the mean),
    ``test_error`` (mean) with a 95% t-interval ``ci_low``/``ci_high`` (clipped to [0, 1]),
    ``val_loss`` (median) and ``m``."""
    groups: dict[tuple, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        fam = family(r)
        cfg = () if fam == "forest" else tuple(r.get(c) for c in config)
        groups[tuple(r[w] for w in within) + (fam,)][cfg].append(r)
    out = []
    for key, configs in sorted(groups.items(), key=lambda kv: str(kv[0])):

        def median_val(rs):
            v = [r["val_loss"] if r["val_loss"] is not None else math.inf for r in rs]
            return float(np.median(v))

        cfg, rs = min(configs.items(), key=lambda kv: (median_val(kv[1]), str(kv[0])))
        mean, lo, hi = mean_interval([r["test_error"] for r in rs])
        lo, hi = max(lo, 0.0), min(hi, 1.0)  # an error rate's interval stays in [0, 1]
        rec = dict(zip(within + ("family",), key, strict=True))
        rec.update(dict(zip(config, cfg, strict=False)) if cfg else {})
        # diverged trials (no test error) are left out of the mean and counted apart
        diverged = sum(r["test_error"] is None for r in rs)
        rec.update(m=rs[0]["m"], seeds=len(rs), diverged=diverged, val_loss=median_val(rs),
                   test_error=mean, ci_low=lo, ci_high=hi, configs=len(configs))
        out.append(rec)
    return out
