"""reduce: Wilson bounds against known values, the generic frontier and Pareto helpers, the
luck fit, steps to a target, curve quantiles, t intervals."""


import numpy as np
import pytest

from parity_jax import reduce

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
