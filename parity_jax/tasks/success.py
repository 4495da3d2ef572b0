"""How a real-valued sparse target's success is measured (``parity_jax.terms``): the variance
its test MSE is divided by (``success_moments``), and per-term recovery (``train.recover``):
for a target sum_i c_i phi_i(z) with orthonormal terms phi_i, the fraction of coefficient i a
trained net f holds, measured on the test set: r_i = beta_i / c_i, beta the least-squares
coefficients of f on the test set's design [1, phi_1, ..., phi_T] (the projection of f on the
terms and a constant). The plain correlation mean_test(f phi_i) / c_i equals it only where
the test set's Gram matrix is the identity: for a net equal to the target it is
mean_test(phi_i^2) plus cross terms, 0.64-1.58 (5-95%) for He_3 over 1000 Gaussian points --
the test-set noise the population variance removes from the NMSE. The projection gives exactly
1 for any f in the span, and the same as the correlation up to O(1/sqrt(N)) for ±1 monomials
(whose Gram matrix is N I in expectation). Each sum is a float32 reduction over rows (not a
dot: exact whatever the matmul precision), over row chunks as the other evaluations are; the
(T + 1) x (T + 1) system is solved by a pseudo-inverse (a term that is constant or repeats
another on a small test set gets the minimum-norm share).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from parity_jax import models
from parity_jax.models import Params


def success_moments(task, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The variance a real-valued target's success divides its test MSE by, and the labels'
    mean square (float32 scalars) for ``task`` (a ``sparse.SparseTask``): the population's
    (``task.population``, train.nmse = "population") or those of the test labels ``y``
    ("test"). One function for the program and the check (``terms.check_variance``
    refuses what this returns)."""
    if task.population:
        return jnp.float32(task.population[0]), jnp.float32(task.population[1])
    return jnp.mean(jnp.square(y - jnp.mean(y))), jnp.mean(jnp.square(y))


def term_values(terms: tuple, z: jax.Array, y: jax.Array) -> jax.Array:
    """(rows, T): each term phi_i at z = x_S (rows, k); a term of positions None is the
    target itself (its labels ``y``: hermite's normalized He_p)."""
    return jnp.stack([y if pos is None else jnp.prod(z[:, list(pos)], axis=-1)
                      for pos, _ in terms], axis=-1)


def recovery(params: Params, x: jax.Array, y: jax.Array, coords: jax.Array, terms: tuple,
             chunk: int = 0) -> jax.Array:
    """(P, T) per-term recovery r_i of each of the P trials of ``params`` on the test set
    (x (N, n), labels y (N,), S = ``coords``), ``chunk`` rows at a time (0: all at once)."""
    phi = term_values(terms, x[:, coords], y)
    phi = jnp.concatenate([jnp.ones((phi.shape[0], 1), phi.dtype), phi], axis=1)  # (N, 1 + T)
    coef = jnp.asarray([c for _, c in terms], jnp.float32)
    N, T = x.shape[0], phi.shape[1]

    def sums(f, ph, live):  # (P, T): sum over rows of f * phi_t, live rows only
        return jnp.stack([jnp.sum(f * (ph[:, t] * live)[:, None], axis=0) for t in range(T)],
                         axis=-1)

    if not chunk or chunk >= N:
        total = sums(models.apply_packed(params, x), phi, jnp.ones((N,), jnp.float32))
    else:
        chunks = -(-N // chunk)
        pad = chunks * chunk - N
        xc = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)]).reshape(
            chunks, chunk, -1)
        pc = jnp.concatenate([phi, jnp.zeros((pad, T), phi.dtype)]).reshape(chunks, chunk, T)

        def body(acc, xs):
            xb, pb, s = xs
            live = ((s + jnp.arange(chunk)) < N).astype(jnp.float32)
            return acc + sums(models.apply_packed(params, xb), pb, live), None

        P = params.c.shape[0]
        total = jax.lax.scan(body, jnp.zeros((P, T), jnp.float32),
                             (xc, pc, jnp.arange(chunks) * chunk))[0]
    gram = jnp.stack([jnp.sum(phi * phi[:, t:t + 1], axis=0) for t in range(T)])  # (T, T)
    beta = total @ jnp.linalg.pinv(gram, hermitian=True)  # the Gram matrix is symmetric
    return beta[:, 1:] / coef[None, :]
