"""Statistics of trial outcomes, whatever kind of study they come from: Wilson and Student-t
intervals, the smallest setting reaching a success probability, Pareto sets, the parallel-search
fit, steps to a target, p against the step budget, cross-fitted selection, curve quantiles,
anytime-valid confidence sequences. Records are plain dicts; the fields to group or compare on
are arguments (each kind's report names its own). Imports nothing of the package but its
errors, and no JAX."""

from __future__ import annotations

import math
import numbers
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from parity_jax.errors import bad

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


# ---- p against the step budget: P(first hit <= t) from the stored first hits -----------------

def eval_steps(steps: int, eval_every: int) -> np.ndarray:
    """The steps a trial is evaluated at: eval_every, 2 eval_every, ..., and ``steps`` (the
    last evaluation, where steps is no multiple of eval_every)."""
    return np.minimum(np.arange(1, -(-steps // eval_every) + 1) * eval_every, steps)


def hit_curve(first_hits: Sequence, trials: int, steps: int, eval_every: int) -> dict:
    """P(first hit <= t) of a cell for t up to ``steps``: a step function on its evaluation grid
    (``eval_steps``), given where it can change -- the first evaluation, each distinct first
    hit, and ``steps`` (the grid itself may hold 10^9 points) -- as ``step`` (sorted; the value
    at a step holds until the next, and is 0 before the first), ``successes`` (trials whose
    first hit is at most that step), ``p`` and pointwise 95% Wilson ``ci_low`` / ``ci_high``
    (each step's interval alone, not a band for all t at once).

    first_hits: those of the successful trials (a diverged or never-hitting trial counts as
    not hit, at every t); trials: all of the cell's stored trials."""
    hits = np.sort(np.asarray([h for h in first_hits if h is not None], float))
    step = np.unique(np.concatenate([[min(eval_every, steps), steps],
                                     hits[hits <= steps]])).astype(np.int64)
    successes = np.searchsorted(hits, step, side="right")
    ci = np.array([wilson(int(s), trials) for s in successes]).reshape(-1, 2)
    return {"step": step, "successes": successes,
            "p": successes / trials if trials else np.full(len(step), np.nan),
            "ci_low": ci[:, 0], "ci_high": ci[:, 1]}


def p_at(first_hits: Sequence, trials: int, t: float) -> float | None:
    """P(first hit <= t) over ``trials`` trials (first_hits: the successful ones'); None for
    no trials."""
    return sum(h is not None and h <= t for h in first_hits) / trials if trials else None


# ---- selection without the winner's curse: cross-fitting --------------------------------------
#
# Choosing, per group, the setting (an lr) with the most successes and reporting its p reports
# the largest of several noisy estimates: biased upward even when every setting is equally good
# (the winner's curse; in model selection, Cawley & Talbot 2010, "On over-fitting in model
# selection and subsequent selection bias in performance evaluation", JMLR 11:2079). Cross-
# fitting (Chernozhukov et al. 2018, "Double/debiased machine learning for treatment and
# structural parameters", Econometrics Journal 21:C1) splits the trials into two halves fixed
# in advance (even / odd seed index), chooses on one half, measures the choice on the other,
# then swaps. Seeds are independent, so the held-out half's successes are, given the choice
# made on the other half, Binomial(its trials, p(choice)): the pooled held-out rate
#     (S_odd(c_even) + S_even(c_odd)) / (n_odd(c_even) + n_even(c_odd))
# is an unbiased estimate (for halves of equal size, as a study with an even number of seeds
# stores) of E[p(c)]: the expected true success probability of the setting that the selection
# rule picks from half the seeds. Every trial is held out once. The two held-out counts X, Y are
# each binomial given the choice made on the other half, but they are not independent: each
# choice saw the other's held-out trials (when both halves pick the same value, both held-out
# counts are that value's, each the largest of its half; where every value is equally good
# this inflates the pooled count's variance by about a third, and a Wilson interval on the
# pooled counts covered p = 0.3 only 91% of the time in tests/kinds/test_parity_select.py).
# Whatever their correlation, Var(X + Y) <= (sd X + sd Y)^2 <= 2 (Var X + Var Y): at most twice
# that of independent halves. So the interval is Wilson's with that design effect of 2 -- on
# the pooled rate with half the held-out trials (successes / 2 of trials / 2) -- conservative
# where the correlation is weaker (98-99% there), never too narrow from it.

def choose(arms: Sequence[Mapping], half: int):
    """The value of the arm the rule picks on ``half`` (0: even seeds, 1: odd): the highest
    success rate on that half, ties to the smaller median first hit there (None: none, last),
    then the smaller value; None when no arm has a trial on that half."""
    ok = [a for a in arms if a["trials"][half]]
    if not ok:
        return None
    best = min(ok, key=lambda a: (-a["successes"][half] / a["trials"][half],
                                  math.inf if a["median_first_hit"][half] is None
                                  else a["median_first_hit"][half], a["value"]))
    return best["value"]


def cross_fit(arms: Sequence[Mapping]) -> dict:
    """The cross-fitted selection of one group (derivation above).

    Args:
        arms: one per value of the tuned setting: ``value``, and per half (even, odd seed
          indices) 2-tuples ``successes``, ``trials``, ``median_first_hit`` (None: no hit).

    Returns:
        ``chosen``: (the value chosen on the even half, on the odd half); ``successes`` and
        ``trials``: the held-out counts pooled (each chosen value's on the other half); ``p``
        (None without held-out trials), ``ci_low``, ``ci_high`` (Wilson 95% with a design
        effect of 2, see above); ``best_p``: the
        naive estimate, the largest p of any arm over all its trials (biased upward).
    """
    by_value = {a["value"]: a for a in arms}
    chosen = (choose(arms, 0), choose(arms, 1))
    s = n = 0
    for half, value in enumerate(chosen):
        if value is not None:
            s += by_value[value]["successes"][1 - half]
            n += by_value[value]["trials"][1 - half]
    lo, hi = wilson(s / 2, n / 2)  # design effect 2: the halves' counts are correlated
    full = [sum(a["successes"]) / sum(a["trials"]) for a in arms if sum(a["trials"])]
    return {"chosen": chosen, "successes": s, "trials": n, "p": s / n if n else None,
            "ci_low": lo, "ci_high": hi, "best_p": max(full) if full else None}


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


# ---- anytime-valid confidence sequence for a Bernoulli p -------------------------------------
#
# Robbins' beta-binomial mixture (Robbins 1970, "Statistical methods related to the law of the
# iterated logarithm", Ann. Math. Statist. 41:1397; Howard, Ramdas, McAuliffe & Sekhon 2021,
# "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49:1055,
# sec. 3 and Prop. 5). After t Bernoulli trials with S successes and F = t - S failures, the
# likelihood ratio of "p ~ Beta(1, 1)" against "p = p0" is
#     M_t(p0) = int_0^1 q^S (1-q)^F dq / B(1, 1) / (p0^S (1-p0)^F)
#             = B(S+1, F+1) / (p0^S (1-p0)^F)                       (B(1, 1) = 1),
# a nonnegative martingale with M_0 = 1 under p = p0 (a mixture of likelihood ratios, each one).
# Ville's inequality gives P(exists t: M_t(p) >= 1/alpha) <= alpha at the true p, so the sets
#     C_t = {p0 : M_t(p0) < 1/alpha}
# hold p for every t at once with probability >= 1 - alpha: they stay valid at any stopping time,
# one that depends on the outcomes (an adaptive study) included. log M_t is convex in p0
# (-S log p0 - F log(1-p0) plus a constant) with its minimum at S/t, where M_t <= 1 (the
# integral is at most the integrand's maximum), so C_t is an interval around S/t; each endpoint
# is where log M_t = log(1/alpha), found by bisection on its side of S/t (log M_t is monotone
# there). S = 0: M_t falls on [0, 1), so the lower end is 0; F = 0: the upper end is 1.

def _check_counts(successes, trials, alpha) -> None:
    """ConfigError (one line, naming the argument) unless 0 <= successes <= trials are ints and
    0 < alpha < 1."""
    for name, v in (("trials", trials), ("successes", successes)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 0:
            raise bad(name, v, "an integer >= 0")
    if successes > trials:
        raise bad("successes", successes, f"at most trials ({trials})")
    if (not isinstance(alpha, numbers.Real) or isinstance(alpha, bool)
            or not 0 < alpha < 1):
        raise bad("alpha", alpha, "a number in (0, 1)")


def _bisect(f, inside: float, outside: float, tol: float = 1e-12) -> float:
    """The point where ``f`` turns from < 0 (at ``inside``) to >= 0 (at ``outside``), within
    ``tol``; returns the outside end, so the interval it bounds is never too narrow."""
    while abs(outside - inside) > tol:
        mid = 0.5 * (inside + outside)
        if mid in (inside, outside):
            break
        if f(mid) < 0:
            inside = mid
        else:
            outside = mid
    return outside


def confidence_sequence(successes: int, trials: int, alpha: float = 0.05) -> tuple[float, float]:
    """Anytime-valid (1 - alpha) interval for a Bernoulli p: Robbins' beta-binomial mixture
    confidence sequence with a Beta(1, 1) prior (derivation above).

    Args:
        successes: successes S among the trials so far.
        trials: trials t so far (any number, chosen after seeing earlier outcomes or not).
        alpha: error level: the intervals of all t together miss p with probability <= alpha.

    Returns:
        (low, high): the endpoints of {p0 : M_t(p0) < 1/alpha}, each within 1e-12 (rounded
        outward); (0, 1) for no trials.
    """
    _check_counts(successes, trials, alpha)
    s, f = int(successes), int(trials) - int(successes)
    if s + f == 0:
        return 0.0, 1.0
    # log B(S+1, F+1) - log(1/alpha): log M_t(p0) - log(1/alpha) without the p0 terms
    level = math.lgamma(s + 1) + math.lgamma(f + 1) - math.lgamma(s + f + 2) + math.log(alpha)

    def excess(p0: float) -> float:  # log M_t(p0) - log(1/alpha)
        return level - (s * math.log(p0) if s else 0.0) - (f * math.log1p(-p0) if f else 0.0)

    mode = s / (s + f)
    low = 0.0 if s == 0 else _bisect(excess, mode, 0.0)
    high = 1.0 if f == 0 else _bisect(excess, mode, 1.0)
    return low, high


def decide(successes: int, trials: int, target: float, alpha: float) -> str:
    """Where p lies against ``target`` by the confidence sequence at level ``alpha``: "above"
    when its low end is above the target, "below" when its high end is below, else "open"."""
    if (not isinstance(target, numbers.Real) or isinstance(target, bool)
            or not 0 < target < 1):
        raise bad("target", target, "a number in (0, 1)")
    low, high = confidence_sequence(successes, trials, alpha)
    if low > target:
        return "above"
    if high < target:
        return "below"
    return "open"
