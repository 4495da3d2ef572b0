"""Data generator against plain-numpy references."""

import jax
import jax.numpy as jnp
import numpy as np

from parity_jax.tasks import sparse


def _data(key=0, n=16, k=3, m=64, noise=0.0, M=128, n_test=200):
    return sparse.make_data(jax.random.key(key), n, jnp.int32(k), jnp.int32(m),
                           jnp.float32(noise), M, n_test)


def test_labels_are_the_parity_of_the_secret_set():
    d = _data()
    secret = np.asarray(d.secret)
    assert secret.sum() == 3
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        x = np.asarray(x)
        assert set(np.unique(x)) == {-1.0, 1.0}
        ref = np.prod(x[:, secret], axis=1)  # plain numpy parity over S
        np.testing.assert_array_equal(np.asarray(y), ref)


def test_inputs_are_uniform_signs():
    x = np.asarray(_data(n=20, M=4000, n_test=10).x_train)
    # each coordinate is +-1 with probability 1/2: mean within 5 standard errors
    assert np.all(np.abs(x.mean(axis=0)) < 5 / np.sqrt(4000))
    # coordinates uncorrelated
    corr = (x.T @ x) / 4000 - np.eye(20)
    assert np.max(np.abs(corr)) < 5 / np.sqrt(4000)


def test_secret_is_k_distinct_coordinates_and_varies_with_the_key():
    secrets = {tuple(np.flatnonzero(_data(key=i, k=4).secret)) for i in range(20)}
    assert all(len(s) == 4 for s in secrets)
    assert len(secrets) > 10


def test_label_noise_flips_the_expected_fraction():
    d = _data(n=10, m=20000, M=20000, noise=0.2, n_test=10)
    clean = np.prod(np.asarray(d.x_train)[:, np.asarray(d.secret)], axis=1)
    flipped = np.mean(np.asarray(d.y_train) != clean)
    assert abs(flipped - 0.2) < 5 * np.sqrt(0.2 * 0.8 / 20000)
    # the test set is never noisy
    assert np.all(np.asarray(d.y_test) == np.prod(
        np.asarray(d.x_test)[:, np.asarray(d.secret)], axis=1))


def test_padding_does_not_change_the_trial_data():
    small, big = _data(M=64), _data(M=256)
    np.testing.assert_array_equal(small.x_train, big.x_train[:64])
    np.testing.assert_array_equal(small.y_train, big.y_train[:64])
    np.testing.assert_array_equal(small.x_test, big.x_test)


def test_minibatches_draw_from_the_first_m_rows_with_replacement():
    key = jax.random.key(3)
    idx = np.concatenate([np.asarray(sparse.minibatch_indices(key, jnp.int32(t), jnp.int32(10), 32))
                          for t in range(50)])
    assert idx.min() == 0 and idx.max() == 9
    counts = np.bincount(idx, minlength=10)
    assert np.all(np.abs(counts - 160) < 5 * np.sqrt(160))
    # with replacement: repeats inside one minibatch of 32 from 10 rows
    assert len(set(np.asarray(sparse.minibatch_indices(key, jnp.int32(0), jnp.int32(10), 32)))) < 32
    # the stream depends on the step
    a = sparse.minibatch_indices(key, jnp.int32(0), jnp.int32(1000), 32)
    b = sparse.minibatch_indices(key, jnp.int32(1), jnp.int32(1000), 32)
    assert not np.array_equal(a, b)
