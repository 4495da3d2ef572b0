"""The MLP: parameters, dense / sparse initialisation, forward pass and losses.

A trial of width r lives in a bucket of padded width W >= r: neurons r..W-1 have zero weights,
so they output zero, receive zero gradient and stay zero. Neuron j's draws come from
``fold_in(key, j)``, so the first r neurons are the same whatever W is.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from parity_jax.config import PARAMS

# Sub-streams of a trial's init key.
_W1, _SEL, _B1, _A, _C, _HIDDEN = range(6)

# model.param: how init scales and per-layer learning rates scale with the width (``scalings``)


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
    param: str = "standard",
    base_width: int = 1,
) -> Params:
    """One trial's parameters, padded to width W.

    dense: every weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    sparse: each first-layer neuron has exactly s non-zero input weights at distinct uniformly
    chosen coordinates, each ~ U(-1/sqrt(s), 1/sqrt(s)); biases and later layers as dense.
    ``param`` (static; ``config.PARAMS``) other than "standard" multiplies each layer's bound by
    ``scalings(...).init``. ``width``, ``sparse`` and ``s`` are traced values, so they never
    cause a recompile.
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

    scaled = scalings(param, base_width, width)
    if scaled is not None:  # w1, b1 and wh keep the standard bounds (multiplier 1)
        init = scaled.init
        a, c, bh = a * init.a, c * init.c, bh * init.bh
    mask = live.astype(jnp.float32)
    return Params(
        w1=w1 * mask[:, None], b1=b1 * mask, wh=wh, bh=bh, a=a * mask, c=c
    )


class Scalings(NamedTuple):
    """Per-layer multipliers (``Params`` of per-trial arrays shaped like ``width``): ``init``
    on the standard init's bounds, ``lr`` on the learning rate (SGD: on the gradient step,
    not on the weight decay; see ``scalings``)."""

    init: Params
    lr: Params


def scalings(param: str, base_width: int, width: jax.Array, step: str = "sgd"
             ) -> Scalings | None:
    """How ``param`` scales each layer's init and learning rate with a trial's ``width``
    (traced; elementwise over any shape), relative to the standard parametrization; None for
    "standard" (nothing is multiplied). Written once: the model's init, the fused step, the
    optax steps and the kernel all read it.

    Every parametrization keeps the standard forward pass and is written in "init scale x
    per-layer learning rate" form. A forward multiplier alpha on a layer is, under SGD, the
    same training dynamics as init x alpha and lr x alpha^2 on the un-multiplied weight (under
    Adam, whose update ignores the gradient's scale: lr x alpha) -- the abc-parametrization
    symmetry of Yang & Hu 2021, "Feature Learning in Infinite-Width Neural Networks", §3.

    mup (Yang et al. 2022, "Tensor Programs V", Table 3, with base shapes: rho = width /
    base_width, so mup equals standard at width == base_width; fan_in of a bias is 1):
        layer                          init variance     SGD lr        Adam lr
        input weights w1, all biases   1 / fan_in        x fan_out     x 1
        output weights a               1 / fan_in^2      x 1/fan_in    x 1/fan_in
        hidden weights wh              1 / fan_in        x 1           x 1/fan_in
      i.e. relative to standard: a's bound x rho^-1/2 (sqrt(base) / width, not 1/sqrt(width));
      the biases whose standard bound is 1/sqrt(width) (bh, c) x rho^1/2 (1/sqrt(base): a
      bias's fan_in is 1, so its init does not shrink with width); lr x rho on w1, b1, bh
      (fan_out = width), x 1/rho on a, x 1 on wh and c (fan_out = 1). Adam: x 1 on w1 and the
      biases, x 1/rho on wh and a.
    mean_field: the same table with base_width = 1 (rho = width; depth 1 only: the config
      refuses more). That is the two-layer mean-field model (Mei, Montanari & Nguyen 2018;
      Chizat & Bach 2018; Abbe, Boix-Adsera & Misiakiewicz 2022)
        f(x) = (1/N) sum_j a_j relu(w_j . x + b_j) + c,  a_j, c ~ U(-1, 1),
        SGD with lr eta N on each neuron's (a_j, w_j, b_j) and eta on c.
      Derivation: write a'_j = a_j / N, so f = sum_j a'_j relu(.) + c is the standard forward
      pass with a' ~ U(-1, 1) / N (bound x rho^-1/2 of 1/sqrt(N)). dL/da'_j = N dL/da_j, so
      a_j <- a_j - eta N dL/da_j reads a'_j <- a'_j - (eta / N) dL/da'_j: lr x 1/N on a'.
      w_j, b_j see the same function, so their lr is eta N (x rho); c: lr eta, bound 1.
      (Weight decay: see below.)

    Weight decay (coupled), as mup's optimizers (microsoft/mup, ``mup/optim.py``) apply it:
    SGD: MuSGD's param group per layer, lr x m_l and weight_decay / m_l (m_l: this table's SGD
    lr multiplier), i.e.  w <- w - eta m_l g - eta wd w:  the multiplier scales the gradient
    step only, and the decay per step, eta wd, is the same at every width and in every layer.
    (The fused step and the kernel compute MuSGD's form, eta m_l (g + (wd / m_l) w), so mup at
    its base width is standard bit for bit; the optax sgd step is given m_l g.)
    Adam: MuAdam with coupled decay scales only the lr, so the whole Adam update of
    (g + wd w) is multiplied by m_l (its Adam column). Standard: w <- w - eta (g + wd w).
    In the mean-field form above, the SGD rule is decay wd / N on each neuron's (a_j, w_j, b_j)
    (lr eta N: eta N (wd / N) = eta wd) and wd on c.
    """
    if param == "standard":
        return None
    if param not in PARAMS:
        raise ValueError(f"unknown parametrization {param!r}")
    base = 1 if param == "mean_field" else base_width
    rho = jnp.asarray(width).astype(jnp.float32) / base
    one, up, down = jnp.ones_like(rho), rho, 1.0 / rho
    init = Params(w1=one, b1=one, wh=one, bh=jnp.sqrt(rho), a=jax.lax.rsqrt(rho),
                  c=jnp.sqrt(rho))
    if step == "adam":
        lr = Params(w1=one, b1=one, wh=down, bh=one, a=down, c=one)
    else:
        lr = Params(w1=up, b1=up, wh=one, bh=up, a=down, c=one)
    return Scalings(init=init, lr=lr)


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
