"""The MLP: parameters, dense / sparse initialisation, forward pass and losses.

A trial of width r lives in a bucket of padded width W >= r: neurons r..W-1 have zero weights,
so they output zero, receive zero gradient and stay zero. Neuron j's draws come from
``fold_in(key, j)``, so the first r neurons are the same whatever W is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

# Sub-streams of a trial's init key.
_W1, _SEL, _B1, _A, _C, _HIDDEN = range(6)


@struct.dataclass
class Params:
    """Parameters of one trial (or, with leading axes, of many).

    Shapes for one trial: w1 (W, n), b1 (W,), wh (depth-1, W, W) hidden weights [out, in],
    bh (depth-1, W), a (W,) output weights, c () output bias.
    """

    w1: jax.Array
    b1: jax.Array
    wh: jax.Array
    bh: jax.Array
    a: jax.Array
    c: jax.Array


def _uniform(key: jax.Array, bound: jax.Array, shape=()) -> jax.Array:
    return bound * (2.0 * jax.random.uniform(key, shape) - 1.0)


def _per_index(key: jax.Array, size: int, draw) -> jax.Array:
    """Stacks draw(fold_in(key, j)) for j in [0, size)."""
    return jax.vmap(lambda j: draw(jax.random.fold_in(key, j)))(jnp.arange(size))


def init_params(
    key: jax.Array,
    n: int,
    W: int,
    depth: int,
    width: jax.Array,
    sparse: jax.Array,
    s: jax.Array,
) -> Params:
    """One trial's parameters, padded to width W.

    dense: every weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    sparse: each first-layer neuron has exactly s non-zero input weights at distinct uniformly
    chosen coordinates, each ~ U(-1/sqrt(s), 1/sqrt(s)); biases and later layers as dense.
    ``width``, ``sparse`` and ``s`` are traced values, so they never cause a recompile.
    """
    width = jnp.asarray(width, jnp.int32)
    live = jnp.arange(W) < width  # (W,) real neurons
    rf = width.astype(jnp.float32)
    s = jnp.maximum(jnp.asarray(s, jnp.int32), 1)

    u1 = _per_index(jax.random.fold_in(key, _W1), W, lambda k: _uniform(k, 1.0, (n,)))
    sel = _per_index(jax.random.fold_in(key, _SEL), W, lambda k: jax.random.uniform(k, (n,)))
    chosen = smallest(sel, jnp.where(sparse, s, 0))  # s distinct coords per row
    w1_sparse = jnp.where(chosen, u1 / jnp.sqrt(s.astype(jnp.float32)), 0.0)
    w1_dense = u1 / jnp.sqrt(float(n))
    w1 = jnp.where(sparse, w1_sparse, w1_dense)

    b1 = _per_index(jax.random.fold_in(key, _B1), W, lambda k: _uniform(k, 1.0)) / jnp.sqrt(n)
    a = _per_index(jax.random.fold_in(key, _A), W, lambda k: _uniform(k, 1.0)) / jnp.sqrt(rf)
    c = _uniform(jax.random.fold_in(key, _C), 1.0) / jnp.sqrt(rf)

    def hidden(layer_key):
        wk, bk = jax.random.fold_in(layer_key, 0), jax.random.fold_in(layer_key, 1)
        w = _per_index(wk, W, lambda kj: _per_index(kj, W, lambda ki: _uniform(ki, 1.0)))
        b = _per_index(bk, W, lambda k: _uniform(k, 1.0))
        w = jnp.where(live[:, None] & live[None, :], w / jnp.sqrt(rf), 0.0)
        return w, jnp.where(live, b / jnp.sqrt(rf), 0.0)

    layer_keys = _per_index(jax.random.fold_in(key, _HIDDEN), depth - 1, lambda k: k)
    wh, bh = jax.vmap(hidden)(layer_keys) if depth > 1 else (
        jnp.zeros((0, W, W)), jnp.zeros((0, W)))

    mask = live.astype(jnp.float32)
    return Params(
        w1=w1 * mask[:, None], b1=b1 * mask, wh=wh, bh=bh, a=a * mask, c=c
    )


def smallest(u: jax.Array, s: jax.Array) -> jax.Array:
    """Bool mask of the s smallest entries of each row of u (ties: lower index first).

    The same set as ``argsort(argsort(u)) < s`` (a stable sort's ranks), found by s rounds of
    argmin: s is small (the paper's s = 2), so this is a few passes over u instead of two sorts,
    and none at all when s = 0 (a batch of dense trials).
    """
    def pick(_, chosen):
        j = jnp.argmin(jnp.where(chosen, jnp.inf, u), axis=-1)
        return chosen | jax.nn.one_hot(j, u.shape[-1], dtype=bool)

    return jax.lax.fori_loop(0, s, pick, jnp.zeros(u.shape, bool))


def apply(params: Params, x: jax.Array) -> jax.Array:
    """f(x) of one trial: x (B, n) -> (B,)."""
    h = jax.nn.relu(x @ params.w1.T + params.b1[None])
    for layer in range(params.wh.shape[0]):
        h = jax.nn.relu(h @ params.wh[layer].T + params.bh[layer][None])
    return h @ params.a + params.c


def first_layer_packed(params: Params, x: jax.Array) -> jax.Array:
    """Pre-activations of P trials' first layers, neuron-major: x (B, n) -> zT (P, W, B).

    One plain (P*W, n) x (n, B) GEMM; the neuron-major result keeps every later reduction over
    the batch on the minor axis, which XLA:CPU does far faster than a reduction over rows.
    """
    P, W, n = params.w1.shape
    zT = (params.w1.reshape(P * W, n) @ x.T).reshape(P, W, x.shape[0])
    return zT + params.b1[:, :, None]


def apply_packed(params: Params, x: jax.Array) -> jax.Array:
    """f(x) of P trials that see the same inputs: params with leading P axis, x (B, n) -> (B, P).
    """
    if params.wh.shape[1] == 0:
        hT = jax.nn.relu(first_layer_packed(params, x))
        return (jnp.einsum("pw,pwb->pb", params.a, hT) + params.c[:, None]).T
    P, W, n = params.w1.shape
    z = x @ params.w1.reshape(P * W, n).T + params.b1.reshape(1, P * W)
    h = jax.nn.relu(z).reshape(x.shape[0], P, W)
    for layer in range(params.wh.shape[1]):
        h = jnp.einsum("bpi,poi->bpo", h, params.wh[:, layer]) + params.bh[None, :, layer]
        h = jax.nn.relu(h)
    return jnp.einsum("bpw,pw->bp", h, params.a) + params.c[None]


def loss_fn(name: str, f: jax.Array, y: jax.Array) -> jax.Array:
    """Per-sample loss for labels y in {-1, +1}."""
    if name == "hinge":
        return jax.nn.relu(1.0 - y * f)
    if name == "logistic":
        return jnp.logaddexp(0.0, -y * f)
    if name == "square":
        return jnp.square(f - y)
    raise ValueError(f"unknown loss {name!r}")


def loss_grad(name: str, f: jax.Array, y: jax.Array) -> jax.Array:
    """d loss_fn / d f, elementwise (the hinge subgradient at margin 1 is 0, as jax.grad's)."""
    if name == "hinge":
        return jnp.where(y * f < 1.0, -y, 0.0)
    if name == "logistic":
        return -y * jax.nn.sigmoid(-y * f)
    if name == "square":
        return 2.0 * (f - y)
    raise ValueError(f"unknown loss {name!r}")


def is_finite(params: Params) -> jax.Array:
    """True where every parameter of the trial is finite (leading axes kept, rest reduced)."""
    lead = params.c.ndim

    def leaf_ok(x):
        return jnp.all(jnp.isfinite(x).reshape(x.shape[:lead] + (-1,)), axis=-1)

    oks = [leaf_ok(x) for x in jax.tree.leaves(params)]
    return jnp.stack(oks).all(axis=0)
