"""Training steps: one SGD/optax update of a group of trials, behind one init/update pair in
optax's style, and the two layouts that run an evaluation interval of them (docs/DESIGN.md §2).

- ``fused``: depth-1 SGD with a hand-written backward pass and the coupled weight-decay update
  fused in (tested equal to ``jax.grad`` + optax). Needs packed groups (parity).
- ``sgd`` / ``adam``: ``jax.grad`` of the task's group loss and an optax optimizer, coupled
  weight decay first; per-trial lr and wd live in the optimizer state
  (``optax.inject_hyperparams``), so new values compile nothing.

Layouts (a static field of the program's shape, chosen by the plan):
- ``blocked`` (CPUs): groups one after another (``lax.map``), each running every step of the
  interval before the next group starts, so a group's parameters and activations stay in the
  core's L2 cache and its GEMMs are plain 2-D ones.
- ``vmapped`` (accelerators): steps outermost (``lax.scan``), the groups vmapped in each step.

A shape whose ``kernel`` is not "off" runs its intervals as one Pallas kernel call instead
(``parity_jax.kernel``: depth-1 fused SGD with each trial's weights on-chip).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from parity_jax import kernel, models
from parity_jax.models import Params

STEPS = ("fused", "sgd", "adam")
LAYOUTS = ("blocked", "vmapped")


class Step(NamedTuple):
    """``init(params, lr, wd) -> state`` of one trial; ``update(params, state, x, y, lr, wd,
    mask, scales) -> (params, state)``: one step of one group on its minibatch (x, y), leaving
    the trials where ``mask`` is False unchanged. ``scales``: per-layer lr multipliers
    (``models.scalings(...).lr``, per-trial leaves; SGD: MuSGD's lr x m_l and wd / m_l, Adam:
    the whole update x m_l) or None (standard: nothing multiplied)."""

    init: Callable[..., Any]
    update: Callable[..., tuple[Params, Any]]


def bcast(v: jax.Array, leaf: jax.Array) -> jax.Array:
    """Per-trial value broadcast against a parameter leaf with the same leading axes."""
    return v.reshape(v.shape + (1,) * (leaf.ndim - v.ndim))


def sgd_update(params: Params, grads: Params, lr, wd, mask, scales: Params | None = None
               ) -> Params:
    """Coupled weight decay SGD, w <- w - lr_l * (g + wd_l * w), only where ``mask``; lr_l,
    wd_l are ``lr``, ``wd`` (standard), or with ``scales`` MuSGD's lr * m_l and wd / m_l
    (``layer_hyper``).

    Equal to optax.chain(add_decayed_weights(wd_l), sgd(lr_l)) (tested).
    """

    def upd(p, g, eta, decay):
        new = p - bcast(eta, p) * (g + bcast(decay, p) * p)
        return jnp.where(bcast(mask, p), new, p)

    lrs, wds = layer_hyper(lr, wd, params, scales)
    return jax.tree.map(upd, params, grads, lrs, wds)


def layer_hyper(lr, wd, params: Params, scales: Params | None) -> tuple[Params, Params]:
    """Each layer's per-trial SGD learning rate and weight decay: ``lr`` and ``wd`` themselves
    (standard: the same arrays, no arithmetic), or MuSGD's param group of a layer with lr
    multiplier m_l: lr * m_l and wd / m_l, so the decay per step, lr * wd, is the same at
    every width and layer (``models.scalings``)."""
    if scales is None:
        return jax.tree.map(lambda _: lr, params), jax.tree.map(lambda _: wd, params)
    return jax.tree.map(lambda s: lr * s, scales), jax.tree.map(lambda s: wd / s, scales)


def scale(tree: Params, scales: Params) -> Params:
    """Each layer's leaf times its per-trial multiplier."""
    return jax.tree.map(lambda u, s: u * bcast(s, u), tree, scales)


def fused_group_step(loss: str, params: Params, x, y, lr, wd, mask, scales=None) -> Params:
    """One SGD step of a depth-1 group (P trials, one minibatch x (B, n), y (B,)), with a
    hand-written backward pass and the coupled weight-decay update fused in.

    Equal to jax.grad of the group's loss followed by ``sgd_update`` (tested).
    """
    B = x.shape[0]
    P, W, n = params.w1.shape
    zT = models.first_layer_packed(params, x)  # (P, W, B)
    hT = jax.nn.relu(zT)
    fT = jnp.einsum("pw,pwb->pb", params.a, hT) + params.c[:, None]  # (P, B)
    df = models.loss_grad(loss, fT, y[None, :]) / B  # d(mean loss)/df
    dzT = jnp.where(zT > 0, params.a[:, :, None] * df[:, None, :], 0.0)
    grads = Params(
        w1=(dzT.reshape(P * W, B) @ x).reshape(P, W, n),
        b1=dzT.sum(axis=-1),
        wh=params.wh,  # empty (depth 1)
        bh=params.bh,
        # a batched matvec, not sum(hT * df): XLA:CPU fuses that product into a slow reduce
        a=jnp.einsum("pwb,pb->pw", hT, df),
        c=df.sum(axis=-1),
    )
    # Per-trial (P,) lr/wd/mask against (P, ...) leaves, in the leaves' own shapes: an added
    # unit axis would put bitcasts between w1 and its update, and XLA:CPU then copies the
    # updated w1 into the loop carry every step instead of updating it in place.
    return sgd_update(params, grads, lr, wd, mask, scales)


def fused(loss: str) -> Step:
    """The depth-1 fused SGD step (no optimizer state)."""

    def update(params, state, x, y, lr, wd, mask, scales=None):
        return fused_group_step(loss, params, x, y, lr, wd, mask, scales), state

    return Step(init=lambda params, lr, wd: (), update=update)


def optimizer(name: str):
    """optax optimizer with per-trial hyperparameters as state leaves: coupled weight decay,
    then SGD or Adam."""

    def make(learning_rate, weight_decay):
        base = optax.adam(learning_rate) if name == "adam" else optax.sgd(learning_rate)
        return optax.chain(optax.add_decayed_weights(weight_decay), base)

    return optax.inject_hyperparams(make)


def autodiff(name: str, group_loss: Callable, packed: bool) -> Step:
    """``jax.grad`` of ``group_loss(params, x, y)`` and the optax optimizer ``name`` per trial
    (``packed``: a group's params carry a leading axis of P trials)."""
    opt = optimizer(name)
    update_fn = opt(0.0, 0.0).update  # the hyperparameters live in the state

    def per_trial(fn):
        return jax.vmap(fn) if packed else fn

    def init(params, lr, wd):
        return opt(lr, wd).init(params)

    def update(params, state, x, y, lr, wd, mask, scales=None):
        grads = jax.grad(group_loss)(params, x, y)
        if scales is not None and name == "sgd":  # MuSGD: lr (m_l g + wd w)
            grads = scale(grads, scales)
        updates, state = per_trial(update_fn)(grads, state, params)
        if scales is not None and name == "adam":  # MuAdam: m_l x the whole decayed update
            updates = scale(updates, scales)
        updates = jax.tree.map(lambda u: jnp.where(bcast(mask, u), u, 0.0), updates)
        return optax.apply_updates(params, updates), state

    return Step(init=init, update=update)


def make(shape) -> Step:
    """The step a program's shape names."""
    if shape.step == "fused":
        return fused(shape.loss)
    return autodiff(shape.step, functools.partial(shape.task.group_loss, shape.loss),
                    shape.task.packed)


def over_groups(fn: Callable, lead: int) -> Callable:
    """``fn`` of one trial vmapped over ``lead`` leading trial axes."""
    for _ in range(lead):
        fn = jax.vmap(fn)
    return fn


def interval(shape, step: Step, streams, shared, params, state, hyper, t0, active,
             n_steps: int):
    """Runs ``n_steps`` steps from global step ``t0`` for the trials where ``active``;
    ``hyper``: (lr, wd, steps, scales): per-trial lr, wd, steps and the per-layer lr multipliers
    (``models.scalings(...).lr`` or None). Returns (params, state)."""
    if shape.kernel != "off":
        return kernel.interval(shape, streams, params, hyper, t0, active, n_steps), state
    task = shape.task
    lr, wd, steps, scales = hyper
    ts = t0 + jnp.arange(n_steps, dtype=jnp.int32)
    if shape.layout == "blocked":
        def group(args):
            p, st, stream, lr, wd, act, steps, scales = args
            draws = task.interval_draws(stream, ts)

            def body(carry, t_draw):
                t, draw = t_draw
                x, y = task.drawn_batch(stream, draw, shared)
                return step.update(*carry, x, y, lr, wd, act & (t < steps), scales), None

            return jax.lax.scan(body, (p, st), (ts, draws))[0]

        return jax.lax.map(group, (params, state, streams, lr, wd, active, steps, scales))

    def body(carry, t):
        xb, yb = jax.vmap(lambda s: task.minibatch(s, t, shared))(streams)
        mask = active & (t < steps)
        return jax.vmap(step.update)(*carry, xb, yb, lr, wd, mask, scales), None

    return jax.lax.scan(body, (params, state), ts)[0]
