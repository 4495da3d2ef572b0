"""Initialisation rules (docs/DESIGN.md §1.2) and the forward pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parity_jax import models


def _init(key=0, n=20, W=64, depth=1, width=64, sparse=False, s=2):
    return models.init_params(jax.random.key(key), n, W, depth, jnp.int32(width),
                              jnp.bool_(sparse), jnp.int32(s))


@pytest.mark.parametrize("s", [1, 2, 5, 20])
def test_sparse_init_has_exactly_s_nonzeros_per_neuron(s):
    p = _init(n=20, W=200, width=200, sparse=True, s=s)
    w1 = np.asarray(p.w1)
    assert np.all((w1 != 0).sum(axis=1) == s)
    assert np.all(np.abs(w1) <= 1 / np.sqrt(s))
    # coordinates are spread over all inputs (uniform choice), not a fixed subset
    counts = (w1 != 0).sum(axis=0)
    assert counts.min() > 0
    expected = 200 * s / 20
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected) + 1)


def test_dense_init_within_fan_in_bounds():
    n, r = 20, 300
    p = _init(n=n, W=r, width=r)
    assert np.all(np.abs(p.w1) <= 1 / np.sqrt(n)) and np.all(np.abs(p.b1) <= 1 / np.sqrt(n))
    assert np.all(np.abs(p.a) <= 1 / np.sqrt(r)) and abs(float(p.c)) <= 1 / np.sqrt(r)
    # uniform, not concentrated: spread close to the bound
    assert np.abs(p.w1).max() > 0.95 / np.sqrt(n)
    assert abs(np.var(np.asarray(p.w1)) - 1 / (3 * n)) < 0.1 / (3 * n)


def test_sparse_biases_and_output_layer_are_dense():
    p = _init(n=20, W=100, width=100, sparse=True, s=2)
    assert np.all(np.abs(p.b1) <= 1 / np.sqrt(20)) and np.abs(p.b1).max() > 0.9 / np.sqrt(20)
    assert np.all(np.abs(p.a) <= 1 / np.sqrt(100)) and np.all(p.a != 0)


@pytest.mark.parametrize("sparse", [False, True])
def test_padded_trial_has_zero_extra_neurons_and_the_same_real_ones(sparse):
    alone = _init(W=24, width=24, sparse=sparse, depth=2)
    padded = _init(W=64, width=24, sparse=sparse, depth=2)
    np.testing.assert_array_equal(padded.w1[:24], alone.w1)
    np.testing.assert_array_equal(padded.a[:24], alone.a)
    np.testing.assert_array_equal(padded.wh[:, :24, :24], alone.wh)
    assert float(padded.c) == float(alone.c)
    assert np.all(padded.w1[24:] == 0) and np.all(padded.a[24:] == 0)
    assert np.all(padded.wh[:, 24:] == 0) and np.all(padded.wh[:, :, 24:] == 0)
    x = jax.random.rademacher(jax.random.key(9), (32, 20), dtype=jnp.float32)
    np.testing.assert_allclose(models.apply(padded, x), models.apply(alone, x), rtol=1e-5,
                               atol=1e-6)


def test_apply_matches_numpy_and_packed_matches_single():
    ps = [_init(key=i, W=16, width=16, depth=2, sparse=bool(i % 2)) for i in range(3)]
    x = np.asarray(jax.random.rademacher(jax.random.key(9), (8, 20), dtype=jnp.float32))
    for p in ps:
        h = np.maximum(x @ np.asarray(p.w1).T + np.asarray(p.b1), 0)
        h = np.maximum(h @ np.asarray(p.wh[0]).T + np.asarray(p.bh[0]), 0)
        ref = h @ np.asarray(p.a) + float(p.c)
        np.testing.assert_allclose(models.apply(p, jnp.asarray(x)), ref, rtol=1e-5, atol=1e-5)
    packed = jax.tree.map(lambda *xs: jnp.stack(xs), *ps)
    f = models.apply_packed(packed, jnp.asarray(x))
    for i, p in enumerate(ps):
        np.testing.assert_allclose(f[:, i], models.apply(p, jnp.asarray(x)), rtol=1e-5,
                                   atol=1e-6)


def test_losses_match_their_formulas():
    f = jnp.array([-2.0, -0.5, 0.0, 0.7, 3.0])
    y = jnp.array([1.0, -1.0, 1.0, 1.0, -1.0])
    fy = np.asarray(f * y)
    np.testing.assert_allclose(models.loss_fn("hinge", f, y), np.maximum(0, 1 - fy))
    np.testing.assert_allclose(models.loss_fn("logistic", f, y), np.log1p(np.exp(-fy)),
                               rtol=1e-6)
    np.testing.assert_allclose(models.loss_fn("square", f, y), (np.asarray(f - y)) ** 2)


def test_smallest_is_the_stable_sorts_first_s_including_ties():
    u = jax.random.uniform(jax.random.key(3), (200, 12))
    u = jnp.round(u * 4) / 4  # many ties
    for s in (0, 1, 2, 5, 12):
        want = jnp.argsort(jnp.argsort(u, axis=-1), axis=-1) < s
        np.testing.assert_array_equal(models.smallest(u, s), want)
    # a traced, per-row s (vmapped, as in a batch of trials)
    s = jnp.arange(200) % 4
    got = jax.vmap(models.smallest)(u, s)
    want = jnp.argsort(jnp.argsort(u, axis=-1), axis=-1) < s[:, None]
    np.testing.assert_array_equal(got, want)
