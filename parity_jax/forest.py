"""The random-forest baseline: scikit-learn's RandomForestClassifier tuned by random search.

The search space is Grinsztajn et al.'s for random forests (``SPACE``): n_estimators
log-uniform on [10, 3000], criterion gini / entropy, max_features in {sqrt, log2, None, 0.1,
..., 0.9}, max_depth in {None, 2, 3, 4} (None with probability 0.7, as in their space),
min_samples_leaf log-uniform on [2, 50], bootstrap on / off. Each configuration is fit on the
training rows and scored on the validation split; the one with the lowest validation error
(ties: lower log loss) is reported with its test error.

A forest's probabilities are its trees' summed in their fixed order (``predict_proba``), not
scikit-learn's sum in thread order, so a search's numbers never depend on thread timing: the
same study stores the same bits in every run, and runs of it merge.
"""

from __future__ import annotations

import math

import numpy as np

MAX_FEATURES = ("sqrt", "log2", None, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MAX_DEPTH, MAX_DEPTH_P = (None, 2, 3, 4), (0.7, 0.1, 0.1, 0.1)
SPACE = {
    "n_estimators": "log-uniform integer on [10, 3000] (capped by n_estimators_max)",
    "criterion": ("gini", "entropy"),
    "max_features": MAX_FEATURES,
    "max_depth": MAX_DEPTH,
    "min_samples_leaf": "log-uniform integer on [2, 50]",
    "bootstrap": (True, False),
}


def _log_uniform_int(rng: np.random.Generator, lo: float, hi: float) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def sample(rng: np.random.Generator, n_estimators_max: int = 3000) -> dict:
    """One configuration drawn from ``SPACE``."""
    return {
        "n_estimators": _log_uniform_int(rng, 10, max(10, min(3000, n_estimators_max))),
        "criterion": str(rng.choice(["gini", "entropy"])),
        "max_features": MAX_FEATURES[rng.integers(len(MAX_FEATURES))],
        "max_depth": MAX_DEPTH[rng.choice(len(MAX_DEPTH), p=MAX_DEPTH_P)],
        "min_samples_leaf": _log_uniform_int(rng, 2, 50),
        "bootstrap": bool(rng.integers(2)),
    }


def tune(x_train, y_train, x_val, y_val, x_test, y_test, *, iterations: int = 10,
         seed: int = 0, n_estimators_max: int = 3000, n_jobs: int | None = None) -> dict:
    """Random search: ``iterations`` configurations from ``SPACE`` (the first is scikit-learn's
    default forest, capped like the rest), each fit on the training rows with
    ``random_state=seed``; returns the best by validation error with its test error.

    Returns {"val_error", "val_loss", "test_error", "params", "iterations"}.
    """
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng([seed, 0xF0E5])
    default = {"n_estimators": min(100, n_estimators_max), "criterion": "gini",
               "max_features": "sqrt", "max_depth": None, "min_samples_leaf": 1,
               "bootstrap": True}
    configs = [default] + [sample(rng, n_estimators_max) for _ in range(iterations - 1)]
    best = None
    for params in configs:
        rf = RandomForestClassifier(**params, random_state=seed, n_jobs=n_jobs)
        rf.fit(x_train, y_train)  # trees drawn from random_state: the same in every thread
        proba = predict_proba(rf, x_val, n_jobs)
        val_error = float(np.mean(_predict(rf, proba) != y_val))
        val_loss = _log_loss(rf, proba, y_val)
        if best is None or (val_error, val_loss) < (best["val_error"], best["val_loss"]):
            best = {"val_error": val_error, "val_loss": val_loss, "params": params, "rf": rf}
    rf = best.pop("rf")
    best["test_error"] = float(np.mean(_predict(rf, predict_proba(rf, x_test, n_jobs))
                                       != y_test))
    best["iterations"] = len(configs)
    return best


def predict_proba(rf, x, n_jobs: int | None = None) -> np.ndarray:
    """``rf.predict_proba(x)`` with its trees' probabilities summed in the order of
    ``rf.estimators_`` for every row (scikit-learn adds them in whatever order its threads
    finish: values a few ulp apart from one call to the next). Threads share out the rows, so
    a row's sum is the same however many there are."""
    from joblib import Parallel, delayed, effective_n_jobs

    x = np.ascontiguousarray(x, np.float32)  # what the trees read (scikit-learn's DTYPE)
    blocks = [b for b in np.array_split(np.arange(len(x)), effective_n_jobs(n_jobs)) if len(b)]

    def block_sum(rows):
        xb = x[rows]
        total = np.zeros((len(rows), len(rf.classes_)))
        for tree in rf.estimators_:
            total += tree.predict_proba(xb)
        return total

    parts = Parallel(n_jobs=len(blocks) or 1, prefer="threads")(
        delayed(block_sum)(b) for b in blocks)
    proba = np.concatenate(parts) if parts else np.zeros((0, len(rf.classes_)))
    return proba / len(rf.estimators_)


def _predict(rf, proba: np.ndarray) -> np.ndarray:
    """The class of highest probability per row (scikit-learn's ``predict``)."""
    return rf.classes_.take(np.argmax(proba, axis=1))


def _log_loss(rf, proba: np.ndarray, y) -> float:
    """Mean log loss of ``proba`` (``predict_proba``), probabilities clipped to
    [1e-7, 1 - 1e-7] (a forest trained on one class predicts only that class)."""
    cols = list(rf.classes_)
    p1 = proba[:, cols.index(1)] if 1 in cols else np.zeros(len(y))
    p = np.clip(p1, 1e-7, 1 - 1e-7)
    return float(-np.mean(np.where(y == 1, np.log(p), np.log(1 - p))))
