"""devices: four JAX devices give the same outcomes as one, trial by trial."""


import pytest
from conftest import SCALE_STUDY, stored_trials

import parity_jax
from parity_jax import kinds


@pytest.mark.slow
def test_four_devices_give_the_same_outcomes_as_one_trial_by_trial(tmp_path):
    one = parity_jax.run(SCALE_STUDY, tmp_path / "one", n_devices=1, progress=None)
    parity_jax.run(SCALE_STUDY, tmp_path / "four", n_devices=4, progress=None)
    assert len(one.trials()) == 36
    assert stored_trials(tmp_path / "one") == stored_trials(tmp_path / "four")
    # the plan really spread the batches over the 4 devices
    p = kinds.parity.make_plan(SCALE_STUDY, n_devices=4)
    assert all(b.shape.G % 4 == 0 for b in p.batches if b.shape.G >= 4)
    assert any(b.shape.G >= 4 for b in p.batches)
