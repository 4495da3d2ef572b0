"""Runner: the Python API (resume after kills: test_faults.py)."""

import numpy as np
import pytest

import parity_jax
import parity_jax.cli
from parity_jax import Model, Study, Task, Train


@pytest.mark.slow
def test_python_api_returns_cell_and_trial_records(tmp_path):
    study = Study(name="api", seeds=2, task=Task(n=10, k=2, m=[60], n_test=100),
                  model=Model(width=[8, 16], init="sparse"),
                  train=Train(steps=300, batch=8))
    results = parity_jax.run(study, out=tmp_path / "o", progress=None)
    cells = results.cells()
    assert [c["width"] for c in cells] == [8, 16]
    assert all(c["trials"] == 2 for c in cells)
    trials = results.trials()
    assert len(trials) == 4
    assert {"width", "m", "seed", "success", "first_hit", "steps_run"} <= set(trials[0])
    for t in trials:
        assert (t["first_hit"] is None) != t["success"]
        assert t["steps_run"] <= 300
    # reading back later gives the same records
    again = parity_jax.Results(tmp_path / "o")
    assert again.cells() == cells and again.study.fingerprint() == study.fingerprint()


@pytest.mark.slow
def test_curves_are_stored_for_record_curves_cells_and_online_trials_learn(tmp_path):
    study = Study(name="curves", seeds=2, task=Task(n=8, k=2, m=200, n_test=200,
                                                    online=[False, True]),
                  model=Model(width=32, init="sparse"),
                  train=Train(steps=1000, batch=16, eval_every=100, record_curves=True))
    results = parity_jax.run(study, out=tmp_path / "o", progress=None)
    trials = {(t["online"], t["seed"]): t for t in results.trials()}
    curves = results.curves()
    assert len(curves) == 4
    for c in curves:
        t = trials[c["online"], c["seed"]]
        assert len(c["step"]) == len(c["test_error"]) == -(-t["steps_run"] // 100)
        assert c["step"][-1] == t["steps_run"]
        assert c["test_error"][-1] == pytest.approx(t["test_error"])
        if t["success"]:
            first = c["step"][np.argmax(c["test_error"] <= 0.1)]
            assert first == t["first_hit"]
    # (8, 2) parity is easy: online trials (fresh samples every step) learn it too
    assert all(t["success"] for t in results.trials() if t["online"])
    assert parity_jax.cli.main(["check", str(tmp_path / "o")]) == 0
