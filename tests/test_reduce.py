"""reduce: Wilson bounds against known values, the generic frontier and Pareto helpers, the
luck fit, steps to a target, curve quantiles, t intervals, the anytime-valid confidence sequence
(coverage by simulation under the adaptive study's stopping rule and at every t, never narrower
than Wilson, endpoints against a direct integration of the mixture, closed forms at the edges)."""

import math

import numpy as np
import pytest

from parity_jax import reduce
from parity_jax.errors import ConfigError

pytestmark = pytest.mark.quick  # pure Python: make test-quick


@pytest.mark.parametrize("s,n,lo,hi", [
    # Newcombe (1998), Statistics in Medicine 17:857, Table II, method 3 (Wilson score)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_known_values(s, n, lo, hi):
    assert reduce.wilson(s, n) == pytest.approx((lo, hi), abs=6e-5)


def test_wilson_is_symmetric_and_contains_p():
    lo, hi = reduce.wilson(5, 10)
    assert lo == pytest.approx(1 - hi) and lo < 0.5 < hi
    assert reduce.wilson(10, 10)[1] == pytest.approx(1.0)


def test_wilson_no_trials_is_uninformative():
    assert reduce.wilson(0, 0) == (0.0, 1.0)


def test_smallest_reaching_groups_by_the_given_fields():
    recs = [{"w": 1, "m": 100, "p": 0.2}, {"w": 1, "m": 200, "p": 0.7}, {"w": 1, "m": 400,
             "p": 0.9}, {"w": 2, "m": 100, "p": 0.0}, {"w": 3, "m": None, "p": 1.0}]
    front = reduce.smallest_reaching(recs, ["w"], "m", target=0.5)
    assert front == [{"w": 1, "m": 200, "reached": True, "p_target": 0.5},
                     {"w": 2, "m": None, "reached": False, "p_target": 0.5},
                     {"w": 3, "m": None, "reached": True, "p_target": 0.5}]
    # a field a record lacks takes its default
    assert reduce.group([{"a": 1}, {"a": 1, "b": 2}], ["a", "b"], {"b": 2}) == {
        (1, 2): [{"a": 1}, {"a": 1, "b": 2}]}


def test_fit_q_recovers_the_per_neuron_probability_from_exact_tables():
    # p(r) = 1 - (1 - q)^r with q = 0.01: widths 10, 30, 100 give p = 0.096, 0.26, 0.634;
    # 1000 trials per cell with exactly those counts recover q within the grid's resolution
    widths, q = [10, 30, 100], 0.01
    trials = [1000] * 3
    successes = [round(1000 * (1 - (1 - q) ** r)) for r in widths]
    fit = reduce.fit_q(widths, successes, trials)
    assert fit["q"] == pytest.approx(q, rel=0.02)
    assert fit["q_low"] < q < fit["q_high"] and fit["q_high"] / fit["q_low"] < 1.3
    # fewer trials: a wider interval around the same estimate
    small = reduce.fit_q(widths, [round(s / 100) for s in successes], [10] * 3)
    assert small["q_high"] / small["q_low"] > fit["q_high"] / fit["q_low"]


def test_fit_q_edges():
    none = reduce.fit_q([10, 100], [0, 0], [16, 16])
    assert none["q"] == 0.0 and none["q_low"] == 0.0 and 0 < none["q_high"] < 0.01
    # one cell, s of n: the MLE solves 1 - (1-q)^r = s/n
    one = reduce.fit_q([20], [8], [16])
    assert 1 - (1 - one["q"]) ** 20 == pytest.approx(0.5, rel=0.01)


def test_steps_to_target_is_an_order_statistic_of_first_hits():
    hits = [300, 100, None, 200, None, None, 500, None]
    assert reduce.steps_to_target(hits, 8, 0.5) == 500  # 4 of 8 needed: the 4th smallest
    assert reduce.steps_to_target(hits, 8, 0.25) == 200
    assert reduce.steps_to_target(hits, 8, 0.75) is None
    assert reduce.steps_to_target([], 0, 0.5) is None


def test_pareto_keeps_the_non_dominated_points():
    pts = [{"m": 1000, "width": 100, "steps": 500}, {"m": 1000, "width": 300, "steps": 400},
           {"m": 2000, "width": 100, "steps": 600},  # dominated by the first
           {"m": 500, "width": 1000, "steps": 900}, {"m": 500, "width": 1000, "steps": None}]
    front = reduce.pareto(pts)
    assert front == [pts[0], pts[1], pts[3]]


def test_curve_summary_holds_stopped_curves_at_their_last_value():

    base = {"cell": 0, "width": 10}
    curves = [
        {**base, "seed": 0, "step": np.array([100, 200, 300]),
         "test_error": np.array([0.5, 0.2, 0.0]), "train_loss": np.array([1.0, 0.5, 0.1])},
        {**base, "seed": 1, "step": np.array([100]),  # stopped after its first evaluation
         "test_error": np.array([0.05]), "train_loss": np.array([0.2])},
        {**base, "seed": 2, "step": np.array([100, 200, 300]),
         "test_error": np.array([0.5, 0.5, 0.4]), "train_loss": np.array([1.0, 0.9, 0.8])},
        {"cell": 1, "width": 20, "seed": 0, "step": np.array([100]),
         "test_error": np.array([np.nan]), "train_loss": np.array([np.nan])},  # diverged
    ]
    s = reduce.curve_summary(curves)
    assert [r["cell"] for r in s] == [0, 1] and s[0]["trials"] == 3 and s[0]["width"] == 10
    assert s[0]["step"].tolist() == [100, 200, 300]
    # step 200: errors 0.2, 0.05 (held), 0.5 -> median 0.2; step 300: 0.0, 0.05, 0.4 -> 0.05
    assert s[0]["test_error_median"].tolist() == pytest.approx([0.5, 0.2, 0.05])
    assert s[0]["train_loss_median"].tolist() == pytest.approx([1.0, 0.5, 0.2])
    assert np.isnan(s[1]["test_error_median"][0])


def test_mean_interval():
    assert reduce.mean_interval([0.2]) == (0.2, 0.2, 0.2)
    mean, lo, hi = reduce.mean_interval([0.1, 0.2, None, float("nan"), 0.3])
    assert mean == pytest.approx(0.2) and lo < 0.2 < hi


# ---- the anytime-valid confidence sequence -------------------------------------------------

T_MAX = 200


@pytest.fixture(scope="module")
def cs_table():
    """low_TxS, high_TxS: the 95% sequence at every count t <= T_MAX, S <= t (NaN past t)."""
    low = np.full((T_MAX + 1, T_MAX + 1), np.nan)
    high = np.full((T_MAX + 1, T_MAX + 1), np.nan)
    for t in range(T_MAX + 1):
        for s in range(t + 1):
            low[t, s], high[t, s] = reduce.confidence_sequence(s, t, 0.05)
    return low, high


def _misses_at_most_alpha(missed: np.ndarray, alpha: float = 0.05) -> None:
    """At most alpha of the sequences missed, plus 3 binomial Monte-Carlo standard errors."""
    n = missed.size
    assert missed.mean() <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / n), missed.mean()


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.7, 0.95])
def test_cs_covers_p_when_stopped_by_the_adaptive_rule(p, cs_table):
    # the study's rule: look at 8, 16, 32, 64 seeds; stop at the first look that is not "open"
    low, high = cs_table
    looks = (8, 16, 32, 64)
    rng = np.random.default_rng(29)
    wins_NxT = rng.random((20_000, looks[-1])) < p
    s_NxL = np.cumsum(wins_NxT, axis=1)[:, np.array(looks) - 1]
    settled_LxS = np.zeros((len(looks), looks[-1] + 1), bool)
    for i, t in enumerate(looks):
        for s in range(t + 1):
            settled_LxS[i, s] = reduce.decide(s, t, target=0.5, alpha=0.05) != "open"
    settled_NxL = settled_LxS[np.arange(len(looks)), s_NxL]
    settled_NxL[:, -1] = True  # the maximum stops every sequence
    stop = np.argmax(settled_NxL, axis=1)
    t_stop = np.array(looks)[stop]
    s_stop = s_NxL[np.arange(len(stop)), stop]
    missed = (low[t_stop, s_stop] > p) | (high[t_stop, s_stop] < p)
    _misses_at_most_alpha(missed)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.7, 0.95])
def test_cs_covers_p_at_every_t_at_once(p, cs_table):
    low, high = cs_table
    rng = np.random.default_rng(1970)
    s_NxT = np.cumsum(rng.random((5_000, T_MAX)) < p, axis=1)
    t = np.arange(1, T_MAX + 1)
    missed_NxT = (low[t, s_NxT] > p) | (high[t, s_NxT] < p)
    _misses_at_most_alpha(missed_NxT.any(axis=1))


def test_cs_is_never_narrower_than_wilson(cs_table):
    low, high = cs_table
    for t in range(1, T_MAX + 1):
        for s in range(t + 1):
            w_low, w_high = reduce.wilson(s, t, z=1.959963984540054)  # 95%, two-sided
            assert low[t, s] <= w_low + 1e-12 and high[t, s] >= w_high - 1e-12, (s, t)


def _log_mixture(s: int, f: int, p0: np.ndarray) -> np.ndarray:
    """log M_t(p0) by integrating q^S (1-q)^F over [0, 1] on a trapezoid grid (no beta
    function): the integrand is scaled by its maximum, at the mode, to stay in range."""
    q = np.linspace(0.0, 1.0, 2_000_001)
    mode = s / (s + f)

    def log_lik(x):
        with np.errstate(divide="ignore"):
            return (s * np.log(x) if s else 0.0) + (f * np.log1p(-x) if f else 0.0)

    scaled = np.exp(log_lik(q) - log_lik(mode))
    integral = np.sum((scaled[1:] + scaled[:-1]) / 2) * (q[1] - q[0])
    return math.log(integral) + log_lik(mode) - log_lik(np.asarray(p0, float))


@pytest.mark.parametrize("s,t,alpha", [
    (1, 1, 0.05), (3, 10, 0.05), (7, 14, 0.05), (50, 150, 0.05), (1, 200, 0.01),
    (20, 25, 0.2), (0, 30, 0.05),
])
def test_cs_endpoints_are_where_the_integrated_mixture_reaches_one_over_alpha(s, t, alpha):
    low, high = reduce.confidence_sequence(s, t, alpha)
    f = t - s
    for end, inward in ((low, high), (high, low)):
        if end in (0.0, 1.0):  # the closed ends (S = 0, F = 0): checked below
            continue
        assert _log_mixture(s, f, end) == pytest.approx(math.log(1 / alpha), abs=1e-6)
        just_inside = end + 1e-6 * (inward - end)
        assert _log_mixture(s, f, just_inside) < math.log(1 / alpha)
    # the whole interval is the set where M_t < 1/alpha: inside below, outside at or above
    p0 = np.linspace(0.0, 1.0, 1001)[1:-1]
    p0 = p0[(abs(p0 - low) > 1e-9) & (abs(p0 - high) > 1e-9)]  # off the ends (a tie there)
    m = _log_mixture(s, f, p0)
    inside = (p0 > low) & (p0 < high)
    assert np.all(m[inside] < math.log(1 / alpha)) and np.all(m[~inside] >= math.log(1 / alpha))


def test_cs_edges_and_closed_forms():
    for alpha in (0.01, 0.05, 0.3):
        assert reduce.confidence_sequence(0, 0, alpha) == (0.0, 1.0)
        for t in (1, 2, 8, 64, 1000):
            # S = 0: M_t(p0) = 1 / ((t + 1) (1 - p0)^t), so the upper end is
            # 1 - (alpha / (t + 1))^(1/t); S = t mirrors it
            edge = (alpha / (t + 1)) ** (1 / t)
            low, high = reduce.confidence_sequence(0, t, alpha)
            assert low == 0.0 and high == pytest.approx(1 - edge, abs=2e-12)
            low, high = reduce.confidence_sequence(t, t, alpha)
            assert high == 1.0 and low == pytest.approx(edge, abs=2e-12)
    assert reduce.confidence_sequence(0, 1, 0.05)[1] == pytest.approx(0.975, abs=2e-12)


def test_decide_settles_all_fail_and_all_succeed_cells_at_eight_seeds():
    # (0.05 / (t + 1))^(1/t) first passes 0.5 at t = 8: the study's first round settles them
    assert [reduce.decide(t, t, 0.5, 0.05) for t in (0, 7, 8, 64)] == [
        "open", "open", "above", "above"]
    assert [reduce.decide(0, t, 0.5, 0.05) for t in (0, 7, 8, 64)] == [
        "open", "open", "below", "below"]
    assert reduce.decide(32, 64, 0.5, 0.05) == "open"
    assert reduce.decide(32, 64, 0.2, 0.05) == "above"
    assert reduce.decide(32, 64, 0.8, 0.05) == "below"


@pytest.mark.parametrize("call,field", [
    (lambda: reduce.confidence_sequence(0, -1), "trials"),
    (lambda: reduce.confidence_sequence(-1, 3), "successes"),
    (lambda: reduce.confidence_sequence(4, 3), "successes"),
    (lambda: reduce.confidence_sequence(1.0, 3), "successes"),
    (lambda: reduce.confidence_sequence(True, 3), "successes"),
    (lambda: reduce.confidence_sequence(1, "3"), "trials"),
    (lambda: reduce.confidence_sequence(1, 3, 0.0), "alpha"),
    (lambda: reduce.confidence_sequence(1, 3, 1.0), "alpha"),
    (lambda: reduce.confidence_sequence(1, 3, float("nan")), "alpha"),
    (lambda: reduce.confidence_sequence(1, 3, "0.05"), "alpha"),
    (lambda: reduce.decide(1, 3, 1.5, 0.05), "target"),
    (lambda: reduce.decide(1, 3, 0.5, -0.1), "alpha"),
])
def test_cs_bad_arguments_are_one_line_config_errors(call, field):
    with pytest.raises(ConfigError, match=rf"^{field} = ") as e:
        call()
    assert "\n" not in str(e.value)
