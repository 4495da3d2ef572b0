"""Statistics of trial outcomes, whatever kind of study they come from: Wilson and Student-t
intervals, the smallest setting reaching a success probability, Pareto sets, the parallel-search
fit, steps to a target, curve quantiles. Records are plain dicts; the fields to group or compare
on are arguments (each kind's report names its own). Imports nothing of the package."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1.0 + z * z / trials
    center = (p + z * z / (2 * trials)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, center - half), min(1.0, center + half)


def group(records: Sequence[Mapping], by: Sequence[str],
          defaults: Mapping | None = None) -> dict[tuple, list]:
    """The records grouped by their values of the fields ``by`` (a missing field: its value in
    ``defaults``, else None), groups in order of first appearance."""
    defaults = defaults or {}
    groups: dict[tuple, list] = defaultdict(list)
    for r in records:
        groups[tuple(r.get(f, defaults.get(f)) for f in by)].append(r)
    return groups


def smallest_reaching(records: Sequence[Mapping], by: Sequence[str], over: str,
                      target: float = 0.5, defaults: Mapping | None = None) -> list[dict]:
    """Per setting of the fields ``by``: the smallest value of ``over`` whose p >= ``target``.

    Returns one record per group: its settings, ``over`` = that value (None when no value
    reaches the target, or when the one that does is None), ``reached`` (whether some record
    of the group reaches the target: a None ``over`` that reached it -- an online cell's m --
    is told apart from one that never did) and ``p_target``.
    """
    out = []
    for key, rs in group(records, by, defaults).items():
        reached = [r[over] for r in rs if r["p"] is not None and r["p"] >= target]
        values = [v for v in reached if v is not None]
        out.append({**dict(zip(by, key, strict=True)), over: min(values) if values else None,
                    "reached": bool(reached), "p_target": target})
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


# ---- error intervals ---------------------------------------------------------------------


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
