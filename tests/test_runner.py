"""Runner: the Python API (resume after kills: test_faults.py)."""

import parity_jax
from parity_jax import Model, Study, Task, Train


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
