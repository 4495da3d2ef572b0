"""devices: four JAX devices give the same outcomes as one, trial by trial."""

import sqlite3

import pytest

import parity_jax
from parity_jax import Model, Study, Task, Train, kinds

STUDY = Study(name="scale", seeds=3, task=Task(n=10, k=2, m=[40, 80], n_test=100),
              model=Model(width=[8, 16, 32], init=["dense", "sparse"]),
              train=Train(steps=400, batch=8, eval_every=50))


def _rows(out):
    with sqlite3.connect(out / "results.sqlite") as conn:
        return conn.execute("SELECT * FROM trials ORDER BY cell, seed").fetchall()


@pytest.mark.slow
def test_four_devices_give_the_same_outcomes_as_one_trial_by_trial(tmp_path):
    one = parity_jax.run(STUDY, tmp_path / "one", devices=1, progress=None)
    parity_jax.run(STUDY, tmp_path / "four", devices=4, progress=None)
    assert len(one.trials()) == 36
    assert _rows(tmp_path / "one") == _rows(tmp_path / "four")
    # the plan really spread the batches over the 4 devices
    p = kinds.parity.make_plan(STUDY, devices=4)
    assert all(b.shape.G % 4 == 0 for b in p.batches if b.shape.G >= 4)
    assert any(b.shape.G >= 4 for b in p.batches)
