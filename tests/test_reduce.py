"""Reducer: Wilson bounds against known values; frontier on a hand-made table; tabular model
selection by median validation loss."""


import numpy as np
import pytest

from parity_jax import reduce


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


def _cell(i, width, m, init, s=None, lr=0.1):
    return {"cell": i, "n": 50, "k": 3, "width": width, "depth": 1, "m": m, "init": init,
            "s": s, "lr": lr, "wd": 0.01, "loss": "hinge", "steps": 1000, "n_test": 100,
            "noise": 0.0, "batch": 32, "eval_every": 100, "threshold": 0.1,
            "stop_on_success": True, "vary": "both", "data_seed": 0, "init_seed": 0}


def test_summarize_counts_successes_and_median_first_hit():
    cells = [_cell(0, 10, 100, "dense"), _cell(1, 10, 200, "dense")]
    trials = [
        {"cell": 0, "seed": 0, "success": True, "first_hit": 300, "diverged": False},
        {"cell": 0, "seed": 1, "success": False, "first_hit": None, "diverged": True},
        {"cell": 0, "seed": 2, "success": True, "first_hit": 500, "diverged": False},
        {"cell": 0, "seed": 3, "success": True, "first_hit": 900, "diverged": False},
    ]
    recs = reduce.summarize(cells, trials)
    assert recs[0]["trials"] == 4 and recs[0]["successes"] == 3 and recs[0]["p"] == 0.75
    assert recs[0]["median_first_hit"] == 500 and recs[0]["diverged"] == 1
    assert (recs[0]["ci_low"], recs[0]["ci_high"]) == pytest.approx(reduce.wilson(3, 4))
    assert recs[1]["trials"] == 0 and recs[1]["p"] is None and recs[1]["median_first_hit"] is None


def test_frontier_on_a_hand_made_table():
    table = [  # (width, init, m, p)
        (10, "dense", 100, 0.0), (10, "dense", 200, 0.2), (10, "dense", 400, 0.4),
        (100, "dense", 100, 0.1), (100, "dense", 200, 0.6), (100, "dense", 400, 0.4),
        (100, "sparse", 100, 0.5), (100, "sparse", 200, 0.9), (100, "sparse", 400, 1.0),
    ]
    recs = [{**_cell(i, w, m, init, s=2 if init == "sparse" else None), "p": p}
            for i, (w, init, m, p) in enumerate(table)]
    front = {(f["width"], f["init"]): f["m"] for f in reduce.frontier(recs, target=0.5)}
    # non-monotone p (double descent) still gives the smallest m that reaches the target
    assert front == {(10, "dense"): None, (100, "dense"): 200, (100, "sparse"): 100}
    front9 = {(f["width"], f["init"]): f["m"] for f in reduce.frontier(recs, target=0.9)}
    assert front9 == {(10, "dense"): None, (100, "dense"): None, (100, "sparse"): 200}
    # the frontier keeps other settings apart (lr here)
    recs.append({**_cell(99, 10, 400, "dense", lr=0.5), "p": 1.0})
    front = reduce.frontier(recs, target=0.5)
    assert {(f["width"], f["lr"]): f["m"] for f in front if f["init"] == "dense"} == {
        (10, 0.1): None, (100, 0.1): 200, (10, 0.5): 400}


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


def test_select_picks_the_lowest_median_validation_loss_per_family():
    def rec(init, lr, seed, val, test):
        return {"model": "mlp", "dataset": "d", "fraction": 0.1, "m": 10, "init": init,
                "s": None if init == "dense" else 2, "width": 10, "depth": 1,
                "optimizer": "sgd", "lr": lr, "seed": seed, "val_loss": val, "test_error": test}

    records = [rec("dense", 0.1, i, v, 0.3) for i, v in enumerate([0.5, 0.6, 9.0])]
    records += [rec("dense", 0.2, i, v, 0.2) for i, v in enumerate([0.55, 0.58, 0.59])]
    records += [rec("sparse", 0.1, i, None, 0.1) for i in range(3)]  # diverged: never best
    records += [rec("sparse", 0.2, i, 1.0, 0.4 + 0.1 * i) for i in range(3)]
    records += [{"model": "forest", "dataset": "d", "fraction": 0.1, "m": 10, "seed": i,
                 "val_loss": 0.3, "test_error": 0.25} for i in range(3)]
    best = {r["family"]: r for r in reduce.select(records)}
    assert best["dense"]["lr"] == 0.2 and best["dense"]["val_loss"] == 0.58
    assert best["sparse"]["lr"] == 0.2
    assert best["sparse"]["test_error"] == pytest.approx(0.5)
    assert best["sparse"]["ci_low"] < 0.5 < best["sparse"]["ci_high"]
    assert best["forest"]["test_error"] == 0.25 and best["forest"]["seeds"] == 3
    assert reduce.mean_interval([0.2]) == (0.2, 0.2, 0.2)
