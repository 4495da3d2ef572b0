"""forest: the search space, tuning on a tiny grid, and the same bits in every call."""


import numpy as np
import pytest

from parity_jax import datasets, forest


def test_forest_search_space_and_tuning_on_a_tiny_grid():
    rng = np.random.default_rng(0)
    draws = [forest.sample(rng) for _ in range(300)]
    assert all(10 <= d["n_estimators"] <= 3000 for d in draws)
    assert all(2 <= d["min_samples_leaf"] <= 50 for d in draws)
    assert {d["criterion"] for d in draws} == {"gini", "entropy"}
    assert {d["max_depth"] for d in draws} == {None, 2, 3, 4}
    assert {d["bootstrap"] for d in draws} == {True, False}
    assert set(map(str, (d["max_features"] for d in draws))) == set(map(str,
                                                                         forest.MAX_FEATURES))
    assert max(d["n_estimators"] for d in draws) > 1000  # log-uniform reaches the top decade
    assert max(forest.sample(rng, n_estimators_max=50)["n_estimators"] for _ in range(50)) <= 50

    s = datasets.split(datasets.load("sklearn:breast_cancer"), seed=0)
    best = forest.tune(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test,
                       iterations=3, seed=0, n_estimators_max=30)
    assert best["iterations"] == 3 and best["test_error"] < 0.15
    assert 0 <= best["val_error"] <= 1 and best["val_loss"] > 0
    again = forest.tune(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test,
                        iterations=3, seed=0, n_estimators_max=30)
    assert again == best  # seeded


@pytest.mark.slow
def test_a_forest_search_gives_the_same_bits_in_every_call():
    """scikit-learn sums a forest's tree probabilities in thread order (values 1 ulp apart
    from one call to the next); the search's own sum runs in the trees' order."""
    from sklearn.ensemble import RandomForestClassifier

    s = datasets.split(datasets.load("sklearn:breast_cancer"), seed=0)
    rf = RandomForestClassifier(n_estimators=300, min_samples_leaf=3, random_state=0,
                                n_jobs=8).fit(s.x_train, s.y_train)
    in_order = sum(tree.predict_proba(s.x_test) for tree in rf.estimators_) / 300
    for n_jobs in (None, 1, 3, 8, -1):
        assert forest.predict_proba(rf, s.x_test, n_jobs).tobytes() == in_order.tobytes()
    for seed in range(3):  # best configurations of 11 to 96 trees with impure leaves
        runs = {repr(forest.tune(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test,
                                 iterations=4, seed=seed, n_estimators_max=300, n_jobs=8))
                for _ in range(5)}  # repr: a float's shortest round-trip text, its bits
        assert len(runs) == 1, seed
    best = forest.tune(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test,
                       iterations=4, seed=1, n_estimators_max=300, n_jobs=8)
    again = forest.tune(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test,
                        iterations=4, seed=1, n_estimators_max=300, n_jobs=1)
    assert best["val_loss"].hex() == again["val_loss"].hex() and best == again
