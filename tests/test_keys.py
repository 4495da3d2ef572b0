"""keys: a trial's keys are the documented fold-ins of its stable ids; seeds JAX keeps apart."""

import jax
import numpy as np
import pytest

from parity_jax import ConfigError, Study, keys
from parity_jax import config as cfg


def test_the_largest_seed_is_a_seed_jax_keeps_apart_from_the_others():
    # jax.random.key keeps 32 bits (without x64): 2**32 would be seed 0 again
    data = [tuple(np.asarray(jax.random.key_data(jax.random.key(s)))) for s in
            (0, cfg.SEED_MAX, cfg.SEED_MAX - 1)]
    assert len(set(data)) == 3
    assert tuple(np.asarray(jax.random.key_data(jax.random.key(cfg.SEED_MAX + 1)))) == data[0]
    Study(seed=cfg.SEED_MAX).validate()
    with pytest.raises(ConfigError, match="seed = 4294967296"):
        Study(seed=cfg.SEED_MAX + 1).validate()


def test_parity_keys_are_the_documented_fold_ins_of_stable_ids():
    ids = np.array([keys.data_id(50, 3), keys.data_id(50, 4), keys.init_id(50)])
    indices = np.array([0, 7, 3])
    for make, tag in ((keys.parity_data_keys, keys.DATA_TAG),
                      (keys.parity_init_keys, keys.INIT_TAG)):
        got = jax.random.key_data(make(11, ids, indices))
        for i, (id_, index) in enumerate(zip(ids, indices, strict=True)):
            want = jax.random.fold_in(jax.random.fold_in(
                jax.random.fold_in(jax.random.key(11), tag), int(id_)), int(index))
            np.testing.assert_array_equal(got[i], jax.random.key_data(want))
    # the ids are numbers of the cell's settings alone: the same every time, apart for others
    assert keys.data_id(50, 3) == keys.data_id(50, 3) != keys.data_id(50, 4)
    assert keys.init_id(50) == keys.init_id(50) != keys.init_id(51)
    assert keys.data_id(50, 3) != keys.init_id(50)
    assert all(0 <= int(i) < 2**31 for i in ids)  # fold_in takes them as int32
