"""The tabular kind's report: model selection by median validation loss, per family."""

import pytest

from parity_jax.kinds.tabular import report

pytestmark = pytest.mark.quick  # pure Python: make test-quick


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
    best = {r["family"]: r for r in report.select(records)}
    assert best["dense"]["lr"] == 0.2 and best["dense"]["val_loss"] == 0.58
    assert best["sparse"]["lr"] == 0.2
    assert best["sparse"]["test_error"] == pytest.approx(0.5)
    assert best["sparse"]["ci_low"] < 0.5 < best["sparse"]["ci_high"]
    assert best["forest"]["test_error"] == 0.25 and best["forest"]["seeds"] == 3
