"""Test oracles: one unpadded trial written plainly (``models.apply``, ``jax.grad``, the
textbook optax optimizer), which the core's batched, packed, padded programs must equal.
Used by the tests and the bench; never by the core."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from parity_jax import models
from parity_jax.models import Params
from parity_jax.tasks import minibatch_indices
from parity_jax.tasks.sparse import make_data, online_minibatch
from parity_jax.tasks.xy import Shared


def reference_params(
    data_key, init_key, *, n, k, m, noise, width, depth, sparse, s, lr, wd, batch, loss, steps,
    online=False, param="standard", base_width=1, optimizer="sgd",
) -> Params:
    """Parameters of one parity trial after ``steps`` plain SGD steps (no evaluation, no
    stopping): docs/DESIGN.md §1 with the unpadded width and ``optax``. ``m``, ``width``,
    ``steps`` are Python ints; ``online``: each step's minibatch is fresh, ``m`` is unused.

    ``param`` (``models.PARAMS``) is written here from the papers, not from
    ``models.scalings``: "mup" as TP V's Table 3 per label (``optax.multi_transform``),
    "mean_field" in its forward-multiplier form (``_mean_field``); ``optimizer``: "sgd" or
    "adam" (mup and standard).
    """
    data = make_data(data_key, n, k, m, noise, m, 1)
    params = models.init_params(init_key, n, width, depth, width, sparse, s)
    forward, back = models.apply, lambda p: p
    if param == "mean_field":
        params, forward, back, opt = _mean_field(params, width, depth, lr, wd)
    else:
        params, opt = _per_label(params, param, width, base_width, lr, wd, optimizer)

    def step(carry, t):
        p, opt_state = carry
        if online:
            xb, yb = online_minibatch(data.order_key, t, data.secret, noise, batch)
        else:
            idx = minibatch_indices(data.order_key, t, data.m, batch)
            xb, yb = data.x_train[idx], data.y_train[idx]

        def loss_of(p):
            return jnp.mean(models.loss_fn(loss, forward(p, xb), yb))

        updates, opt_state = opt.update(jax.grad(loss_of)(p), opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)),
                                  jnp.arange(steps, dtype=jnp.int32))
    return back(params)


_LABELS = Params(w1="w1", b1="b1", wh="wh", bh="bh", a="a", c="c")


def _per_label(params: Params, param, width, base_width, lr, wd, optimizer):
    """(init, optimizer) of "standard" or "mup" from the standard init's draws.

    mup, Tensor Programs V (Yang et al. 2022) Table 3 with base shapes, rho = width / base:
    init variance 1/fan_in for input and hidden weights (the standard draws), 1/fan_in^2 for
    the output weights (bound sqrt(base) / width), biases' fan_in is 1 (bound 1/sqrt(base)
    where standard's is 1/sqrt(width)); SGD lr x fan_out for input weights and biases (x rho;
    x 1 for the output bias), x 1/fan_in for output weights, x 1 for hidden weights; Adam lr
    x 1 for input weights and biases, x 1/fan_in for output and hidden weights.

    Weight decay as microsoft/mup's ``mup/optim.py`` applies it: MuSGD's param group of a
    layer with lr multiplier x has lr * x and weight_decay / x; MuAdam (coupled decay) scales
    the lr only.
    """
    rho = width / base_width
    if param == "mup":
        draw = jnp.sqrt(float(width))  # the standard bound 1/sqrt(width) undone: U(-1, 1)
        params = params.replace(a=params.a * draw * (base_width ** 0.5 / width),
                                bh=params.bh * draw / base_width ** 0.5,
                                c=params.c * draw / base_width ** 0.5)
        if optimizer == "adam":
            mult = {"w1": 1.0, "b1": 1.0, "wh": 1 / rho, "bh": 1.0, "a": 1 / rho, "c": 1.0}
        else:
            mult = {"w1": rho, "b1": rho, "wh": 1.0, "bh": rho, "a": 1 / rho, "c": 1.0}
    else:  # standard: the textbook optimizer
        base = optax.adam if optimizer == "adam" else optax.sgd
        return params, optax.inject_hyperparams(
            lambda lr, wd: optax.chain(optax.add_decayed_weights(wd), base(lr)))(lr=lr, wd=wd)
    base = optax.adam if optimizer == "adam" else optax.sgd
    decay = {label: wd if optimizer == "adam" else wd / x for label, x in mult.items()}
    opt = optax.multi_transform(
        {label: optax.chain(optax.add_decayed_weights(decay[label]), base(lr * x))
         for label, x in mult.items()}, _LABELS)
    return params, opt


def _mean_field(params: Params, width, depth, lr, wd):
    """The two-layer mean-field model (Mei, Montanari & Nguyen 2018; Chizat & Bach 2018):
    f(x) = (1/N) sum_j a_j relu(w_j . x + b_j) + c with a_j, c ~ U(-1, 1) (the standard
    init's draws, its bounds undone), w_j, b_j as standard; SGD with lr eta N on every
    neuron's (a_j, w_j, b_j) and eta on c. Returns (init, forward, back, optimizer); ``back``
    maps to the engine's parameters, a' = a / N.

    Weight decay: lambda = wd / N on the neurons (coupled, lr eta N), wd on c. In this form a
    neuron's step is theta <- theta - eta N (g + lambda theta), so its decay per step is
    eta N lambda = eta wd: the same at every N, which is the engine's (MuSGD's) rule for its
    parameters (a' = a / N decays by the same factor as a).
    """
    assert depth == 1, "the mean-field model has one hidden layer"
    N = float(width)
    draw = jnp.sqrt(N)
    params = params.replace(a=params.a * draw, c=params.c * draw)

    def forward(p, x):
        return jax.nn.relu(x @ p.w1.T + p.b1[None]) @ p.a / N + p.c

    labels = Params(w1="neuron", b1="neuron", wh="neuron", bh="neuron", a="neuron", c="c")
    opt = optax.multi_transform(
        {"neuron": optax.chain(optax.add_decayed_weights(wd / N), optax.sgd(lr * N)),
         "c": optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr))}, labels)
    return params, forward, lambda p: p.replace(a=p.a / N), opt


def reference_xy(data: Shared, init_key, order_key, rows, *, m: int, width: int, depth: int,
                 sparse: bool, s: int, lr: float, wd: float, batch: int, steps: int,
                 optimizer: str) -> Params:
    """One unpadded tabular trial (logistic loss): its parameters after ``steps`` steps, with
    the textbook optax optimizer built from Python floats."""
    d = data.x_train.shape[1]
    params = models.init_params(init_key, d, width, depth, width, sparse, s)
    base = optax.adam(lr) if optimizer == "adam" else optax.sgd(lr)
    opt = optax.chain(optax.add_decayed_weights(wd), base)

    def step(carry, t):
        p, st = carry
        i = rows[jax.random.randint(jax.random.fold_in(order_key, t), (batch,), 0, m)]
        xb, yb = data.x_train[i], data.y_train[i]
        g = jax.grad(lambda p: jnp.mean(models.loss_fn("logistic", models.apply(p, xb), yb)))(p)
        updates, st = opt.update(g, st, p)
        return (optax.apply_updates(p, updates), st), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)),
                                  jnp.arange(steps, dtype=jnp.int32))
    return params
