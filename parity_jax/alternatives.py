"""The bench's workload and the programs a JAX user would write instead of the engine, timed
beside it (``bench``): the naive ``jit(vmap)`` of an optax loop, a Python loop of per-trial jit
calls, and the engine layout's GEMM bound (a step that is nothing but its first-layer GEMMs).
"""

from __future__ import annotations

import functools
import math
import time

import jax
import jax.numpy as jnp

from parity_jax import devices, oracles

# The workload: (50, 3) parity, minibatch 32, m = 1000, lr 0.1, wd 0.01 (bench's docstring).
N, K, BATCH, M, LR, WD = 50, 3, 32, 1000, 0.1, 0.01


def naive_timers(width: int, trials: int, vary: str, steps: int) -> dict:
    """The naive ``jax.jit(jax.vmap(train))`` of an optax training loop, compiled and warmed for
    S and 2S steps; a timer per step count. Same workload; its own (simple) random streams."""
    import optax

    opt = optax.chain(optax.add_decayed_weights(WD), optax.sgd(LR))

    def train(raw_key, n_steps):
        key = jax.random.wrap_key_data(raw_key)  # raw data: every timed call reuses the keys
        k_data, k_init, k_order = jax.random.split(key, 3)
        if vary == "init":  # every trial the same data
            k_data = jax.random.key(0)
        x = jax.random.rademacher(k_data, (M, N), dtype=jnp.float32)
        y = jnp.prod(x[:, :K], axis=1)
        k1, k2, k3, k4 = jax.random.split(k_init, 4)
        u = functools.partial(jax.random.uniform, minval=-1.0, maxval=1.0)
        params = {"w1": u(k1, (N, width)) / N**0.5, "b1": u(k2, (width,)) / N**0.5,
                  "a": u(k3, (width,)) / width**0.5, "c": u(k4, ()) / width**0.5}

        def loss(p, xb, yb):
            f = jax.nn.relu(xb @ p["w1"] + p["b1"][None]) @ p["a"] + p["c"]
            return jnp.mean(jax.nn.relu(1.0 - yb * f))

        def step(carry, t):
            p, st = carry
            idx = jax.random.randint(jax.random.fold_in(k_order, t), (BATCH,), 0, M)
            g = jax.grad(loss)(p, x[idx], y[idx])
            upd, st = opt.update(g, st, p)
            return (optax.apply_updates(p, upd), st), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(n_steps))
        return params

    keys = jax.random.key_data(jax.random.split(jax.random.key(1), trials))
    timers = {}
    for s in (steps, 2 * steps):
        fn = jax.jit(jax.vmap(functools.partial(train, n_steps=s)))
        jax.block_until_ready(fn(keys))  # compile and warm

        def run(fn=fn):
            jax.block_until_ready(fn(keys))

        timers[s] = run
    return timers


def gemm_bound_timers(width: int, G: int, P: int, steps: int) -> dict:
    """What the engine's layout could reach if a step were only its two first-layer GEMMs and
    the w1 update: G groups of P*width neurons split over the devices as the engine splits
    them, each group running ``steps`` steps of ``zT = w1 x^T; w1 -= 1e-6 * zT x`` on a fixed
    (B, n) minibatch. Returns a warmed timer for S = ``steps`` and for 2S steps."""
    shards = math.gcd(G, jax.device_count())
    x = jax.random.normal(jax.random.key(3), (BATCH, N), jnp.float32)

    def group(w1, n_steps):
        def body(_, w):
            return w - 1e-6 * ((w @ x.T) @ x)
        return jax.lax.fori_loop(0, n_steps, body, w1)

    def make(n_steps):
        local = functools.partial(jax.lax.map, functools.partial(group, n_steps=n_steps))
        if shards == 1:
            return jax.jit(local)
        spec = jax.sharding.PartitionSpec("g")
        return jax.jit(jax.shard_map(local, mesh=devices.mesh(shards), in_specs=spec,
                                     out_specs=spec))

    w = jax.random.normal(jax.random.key(4), (G, P * width, N), jnp.float32) * 0.1
    timers = {}
    for s in (steps, 2 * steps):
        fn = make(s)
        jax.block_until_ready(fn(w))
        timers[s] = lambda fn=fn: jax.block_until_ready(fn(w))
    return timers


def jax_loop_rate(width: int, trials: int, steps: int, time_budget: float = 3.0) -> dict:
    """A Python loop of per-trial jit calls (the optax reference path, one trial per call)."""
    train_one = jax.jit(functools.partial(
        oracles.reference_params, n=N, k=K, m=M, noise=0.0, width=width, depth=1, sparse=False,
        s=1, lr=LR, wd=WD, batch=BATCH, loss="hinge", steps=steps))
    root = jax.random.key(7)
    jax.block_until_ready(train_one(jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)))
    done, start = 0, time.perf_counter()
    while done < trials and (done < 2 or time.perf_counter() - start < time_budget):
        jax.block_until_ready(train_one(jax.random.fold_in(root, 2 * done),
                                        jax.random.fold_in(root, 2 * done + 1)))
        done += 1
    return {"rate": done * steps / (time.perf_counter() - start), "trials_timed": done}
