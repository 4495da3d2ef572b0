"""The core against references: one-at-a-time, unpadded, optax; recompiles; semantics; every
dot at the requested precision; chunked evaluation equal to evaluating every row at once."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import GROUPS, make_batch, small_batch, small_shape

from parity_jax import core, devices, models, oracles, steps
from parity_jax.tasks import sparse

STEPS = 300


def _trial_params(params, g, p, width):
    """Unpadded parameters of slot (g, p)."""
    return models.Params(
        w1=params.w1[g, p, :width], b1=params.b1[g, p, :width],
        wh=params.wh[g, p][:, :width, :width], bh=params.bh[g, p][:, :width],
        a=params.a[g, p, :width], c=params.c[g, p])


def _assert_params_close(a, b, rtol=2e-4, atol=2e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@pytest.mark.slow
@pytest.mark.parametrize("depth,loss", [(1, "logistic"), (2, "square")])
def test_batch_equals_trials_run_one_at_a_time(shape_factory, depth, loss):
    shape = shape_factory(G=2, P=3, depth=depth, loss=loss)
    _, params = devices.train_on_devices(shape, make_batch(GROUPS, P=3))
    for g, group in enumerate(GROUPS):
        for p, trial in enumerate(group["trials"]):
            # alone: its own unpadded program (W = width, M = m, G = P = 1)
            alone_shape = shape_factory(G=1, P=1, W=trial["width"], M=group["m"], depth=depth,
                                        loss=loss)
            single = {**group, "trials": [trial]}
            _, alone = devices.train_on_devices(alone_shape, make_batch([single], P=1))
            _assert_params_close(_trial_params(params, g, p, trial["width"]),
                                 _trial_params(alone, 0, 0, trial["width"]))
            # padded neurons stayed exactly zero
            assert np.all(np.asarray(params.w1[g, p, trial["width"]:]) == 0)


@pytest.mark.parametrize("depth,loss", [(1, "hinge"), *(pytest.param(*p, marks=pytest.mark.slow)
                                                        for p in [(1, "logistic"), (1, "square"),
                                                                  (2, "hinge")])])
def test_core_equals_the_plain_optax_reference(shape_factory, depth, loss):
    # depth 1 runs the fused hand-written step, depth 2 jax.grad; both against optax
    shape = shape_factory(G=2, P=3, depth=depth, loss=loss)
    _, params = devices.train_on_devices(shape, make_batch(GROUPS, P=3))
    batch = make_batch(GROUPS, P=3)  # the same keys again, unconsumed
    for g, group in enumerate(GROUPS):
        for p, t in enumerate(group["trials"]):
            with jax.debug_key_reuse(False):  # the group's trials share one data key on purpose
                ref = _reference(batch, g, p, group, t, shape, depth)
            _assert_params_close(_trial_params(params, g, p, t["width"]), ref)


@pytest.mark.slow
def test_the_steps_outermost_layout_equals_the_reference(shape_factory):
    # the layout accelerators run (fused step vmapped over groups, steps outermost)
    def vmapped(**kw):
        return shape_factory(layout="vmapped", **kw)

    test_core_equals_the_plain_optax_reference(vmapped, 1, "logistic")


@pytest.mark.slow
def test_the_autodiff_step_runs_in_either_layout(shape_factory):
    # the optax step (depth 2) cache-blocked too, and the optax step at depth 1
    def blocked(**kw):
        return shape_factory(layout="blocked", **kw)

    test_core_equals_the_plain_optax_reference(blocked, 2, "hinge")

    def autodiff(**kw):
        return shape_factory(step="sgd", **kw)

    test_core_equals_the_plain_optax_reference(autodiff, 1, "square")


def _reference(batch, g, p, group, t, shape, depth):
    return oracles.reference_params(
        batch.task.data_key[g], batch.init_key[g, p], n=shape.task.n, k=group.get("k", 3),
        m=group["m"], noise=group.get("noise", 0.0), width=t["width"], depth=depth,
        sparse=t.get("sparse", False), s=t.get("s", 2), lr=t.get("lr", 0.1),
        wd=t.get("wd", 0.01), batch=shape.task.batch, loss=shape.loss, steps=STEPS)


def test_fused_update_equals_optax():
    key = jax.random.key(0)
    params = models.Params(*(jax.random.normal(jax.random.fold_in(key, i), s)
                             for i, s in enumerate([(2, 3, 4, 5), (2, 3, 4), (2, 3, 0, 4, 4),
                                                    (2, 3, 0, 4), (2, 3, 4), (2, 3)])))
    grads = jax.tree.map(lambda x: jnp.sin(3 * x) + 0.1, params)
    lr = jnp.array([[0.1, 0.05, 1.0], [0.3, 0.01, 0.2]])
    wd = jnp.array([[0.01, 0.0, 0.1], [0.5, 0.01, 0.02]])
    fused = steps.sgd_update(params, grads, lr, wd, jnp.ones((2, 3), bool))
    for g in range(2):
        for p in range(3):
            opt = optax.chain(optax.add_decayed_weights(float(wd[g, p])),
                              optax.sgd(float(lr[g, p])))
            one = jax.tree.map(lambda x, g=g, p=p: x[g, p], params)
            upd, _ = opt.update(jax.tree.map(lambda x, g=g, p=p: x[g, p], grads),
                                opt.init(one), one)
            _assert_params_close(jax.tree.map(lambda x, g=g, p=p: x[g, p], fused),
                                 optax.apply_updates(one, upd), rtol=1e-6, atol=1e-7)
    frozen = steps.sgd_update(params, grads, lr, wd, jnp.zeros((2, 3), bool))
    _assert_params_close(frozen, params, rtol=0, atol=0)


def test_new_hyperparameter_values_compile_nothing_new(shape_factory):
    shape = shape_factory(G=2, P=3)
    devices.train_on_devices(shape, make_batch(GROUPS, P=3))
    before = devices.program(shape)._cache_size()
    changed = [{**g, "m": g["m"] // 2, "trials": [
        {**t, "lr": 0.03, "wd": 0.2, "s": 4, "sparse": not t.get("sparse", False),
         "width": t["width"] - 1, "steps": 200, "threshold": 0.3, "stop": True}
        for t in g["trials"]]} for g in GROUPS]
    out, _ = devices.train_on_devices(shape, make_batch(changed, P=3))
    jax.block_until_ready(out)
    assert devices.program(shape)._cache_size() == before


@pytest.mark.slow
def test_stop_on_success_and_first_hit_semantics(shape_factory):
    # an easy (12, 2)-parity: wide nets learn it within a few hundred steps
    shape = shape_factory(G=1, P=4, W=64, M=512, eval_every=50)
    trials = [{"init": i, "width": 64, "sparse": True, "steps": 3000, "stop": stop}
              for i, stop in enumerate([True, True, False, False])]
    out, _ = devices.train_on_devices(shape, make_batch([{"data": 0, "m": 512, "k": 2,
                                                    "trials": trials}], P=4))
    out = jax.tree.map(lambda x: np.asarray(x)[0], out)  # the one group's 4 trials
    assert out.success.all()
    assert np.all(out.first_hit % 50 == 0) and np.all(out.first_hit > 0)
    assert np.all(out.first_hit < 3000)
    assert np.all(out.steps_run[:2] == out.first_hit[:2])  # stopped at the hit
    assert np.all(out.steps_run[2:] == 3000)  # ran every step
    assert np.all(out.test_error[:2] <= 0.1)
    assert not out.diverged.any()


@pytest.mark.slow
def test_steps_not_a_multiple_of_eval_every_are_respected(shape_factory):
    shape = shape_factory(G=1, P=2, eval_every=100)
    trials = [{"init": 0, "width": 16, "steps": 250, "threshold": 0.0},
              {"init": 1, "width": 16, "steps": 130, "threshold": 0.0}]
    groups = [{"data": 0, "m": 100, "trials": trials}]
    out, params = devices.train_on_devices(shape, make_batch(groups, P=2))
    batch = make_batch(groups, P=2)  # fresh keys for the reference (key-reuse checks)
    np.testing.assert_array_equal(out.steps_run[0], [250, 130])
    ref = oracles.reference_params(batch.task.data_key[0], batch.init_key[0, 1], n=12, k=3, m=100,
                                  noise=0.0, width=16, depth=1, sparse=False, s=2, lr=0.1,
                                  wd=0.01, batch=8, loss="hinge", steps=130)
    _assert_params_close(_trial_params(params, 0, 1, 16), ref)


@pytest.mark.slow
def test_a_diverging_trial_is_frozen_marked_and_isolated(shape_factory):
    shape = shape_factory(G=1, P=3, W=16, eval_every=50)
    calm = [{"init": 0, "width": 16, "steps": 400, "stop": True},
            {"init": 2, "width": 16, "steps": 400, "sparse": True}]
    wild = {"init": 1, "width": 16, "steps": 400, "lr": 1e30, "wd": 0.0, "loss": "square"}
    with_wild = make_batch([{"data": 0, "m": 100, "trials": [calm[0], wild, calm[1]]}], P=3)
    out, params = devices.train_on_devices(shape_factory(G=1, P=3, W=16, eval_every=50,
                                                   loss="square"), with_wild)
    out = jax.device_get(out)
    assert out.diverged.tolist() == [[False, True, False]]
    assert np.isnan(out.test_error[0, 1]) and np.isnan(out.train_loss[0, 1])
    assert not out.success[0, 1]
    assert np.all(np.isfinite(np.asarray(params.w1)))  # frozen at zero, nothing non-finite
    # batchmates equal a run without the wild trial (its slot padding instead)
    without = make_batch([{"data": 0, "m": 100, "trials": [calm[0], {"init": 1, "width": 16,
                          "steps": 0}, calm[1]]}], P=3)
    out2, params2 = devices.train_on_devices(shape_factory(G=1, P=3, W=16, eval_every=50,
                                                     loss="square"), without)
    for p in (0, 2):
        _assert_params_close(_trial_params(params, 0, p, 16), _trial_params(params2, 0, p, 16),
                             rtol=1e-6, atol=1e-7)
        assert out.first_hit[0, p] == out2.first_hit[0, p]
    del shape


@pytest.mark.slow
def test_batch_data_generates_each_stream_once_and_equals_per_group_data(shape_factory):
    # groups 0, 2, 3 share a data key; 3 differs in k, 2 only in m (the same sets)
    groups = [{"data": 0, "m": 100, "trials": [{}]}, {"data": 1, "m": 64, "trials": [{}]},
              {"data": 0, "m": 40, "trials": [{}]}, {"data": 0, "m": 100, "k": 2, "trials": [{}]}]
    shape = shape_factory(G=4)
    b = make_batch(groups, P=1)
    with jax.debug_key_reuse(False):
        got, _ = jax.jit(shape.task.prepare)(b.task, None)
        for g, group in enumerate(groups):
            want = sparse.make_data(b.task.data_key[g], shape.task.n, group.get("k", 3),
                                    group["m"], 0.0, shape.task.M, shape.task.n_test)
            for name in ("secret", "x_train", "y_train", "x_test", "y_test", "m"):
                np.testing.assert_array_equal(getattr(got, name)[g], getattr(want, name))
            np.testing.assert_array_equal(jax.random.key_data(got.order_key[g]),
                                          jax.random.key_data(want.order_key))
    assert not np.array_equal(got.secret[3], got.secret[0])


@pytest.mark.slow
def test_the_cpu_step_updates_w1_in_place(shape_factory):
    """No copy of a (.., W, n) first-layer weight array in the compiled program: XLA:CPU once
    copied the updated w1 into the loop carry every step (a unit axis put bitcasts between w1
    and its update). A structural check; the speed itself is the benchmark's business."""
    import re

    shape = shape_factory(G=2, P=2, W=24, n=20, layout="blocked")
    b = make_batch([{"data": 0, "m": 100, "trials": [{}, {"width": 20}]},
                    {"data": 1, "m": 64, "trials": [{}]}], P=2)
    text = jax.jit(core.train, static_argnums=0).lower(shape, b).compile().as_text()
    # the per-step body: a computation with the step's GEMMs and no loop inside (once per
    # interval, the group's w1 may be copied out of its chunk's carry: 1 copy per 100 steps)
    bodies = [c for c in re.split(r"\n(?=\S)", text)
              if re.search(r"\bdot\(|ynn_fusion", c) and " while(" not in c
              and "fused_computation" not in c.split("(")[0]]
    assert bodies  # the compiled step is in there
    copies = [re.findall(r"= f32\[[0-9,]*24,20\]\{[0-9,]*\} copy\(", c) for c in bodies]
    assert not any(copies), copies


@pytest.mark.slow
def test_online_trials_equal_the_optax_reference_with_fresh_minibatches(shape_factory):
    trials = [{"init": 0, "width": 16}, {"init": 1, "width": 9, "sparse": True, "s": 2}]
    groups = [{"data": 0, "m": 1, "noise": 0.1, "trials": trials}]
    shape = shape_factory(G=1, P=2, M=1, online=True)
    _, params = devices.train_on_devices(shape, make_batch(groups, P=2))
    batch = make_batch(groups, P=2)
    for p, t in enumerate(trials):
        with jax.debug_key_reuse(False):
            ref = oracles.reference_params(
                batch.task.data_key[0], batch.init_key[0, p], n=12, k=3, m=1, noise=0.1,
                width=t["width"], depth=1, sparse=t.get("sparse", False), s=2, lr=0.1, wd=0.01,
                batch=8, loss="hinge", steps=300, online=True)
        _assert_params_close(_trial_params(params, 0, p, t["width"]), ref)


def test_recorded_curves_match_the_outcomes(shape_factory):
    trials = [{"init": 0, "width": 16, "steps": 1000, "stop": True},
              {"init": 1, "width": 16, "steps": 250},
              {"init": 2, "width": 16, "steps": 300, "lr": 1e30, "wd": 0.0}]
    shape = shape_factory(G=1, P=3, eval_every=100, curves=10, n=8, M=256)
    groups = [{"data": 0, "m": 256, "k": 2, "trials": trials}]
    out = jax.device_get(devices.train_on_devices(shape, make_batch(groups, P=3))[0])
    assert out.curve_error.shape == (1, 3, 10)
    for p in range(3):
        evals = -(-int(out.steps_run[0, p]) // 100)
        curve = out.curve_error[0, p]
        assert np.all(np.isnan(curve[evals:]))  # nothing after the trial's last evaluation
        if out.diverged[0, p]:
            assert np.isnan(curve[evals - 1])
            continue
        assert curve[evals - 1] == out.test_error[0, p]
        assert np.all(np.isfinite(curve[:evals])) and np.all(out.curve_loss[0, p, :evals] >= 0)
        hits = np.nonzero(curve[:evals] <= 0.1)[0]
        assert out.success[0, p] == (len(hits) > 0)
        if len(hits):
            assert out.first_hit[0, p] == min(100 * (hits[0] + 1), 1000)
    assert out.steps_run[0].tolist()[1] == 250 and out.diverged[0].tolist() == [False, False,
                                                                                True]
    # the last loss point is the outcome's train loss
    assert out.curve_loss[0, 1, 2] == pytest.approx(out.train_loss[0, 1], rel=1e-6)


KERNEL = "pallas" if jax.default_backend() == "gpu" else "interpret"


@pytest.mark.slow
@pytest.mark.parametrize("layout,step,kernel,chunk", [
    ("blocked", "fused", "off", 1), ("vmapped", "fused", "off", 1), ("vmapped", "sgd", "off", 1),
    ("vmapped", "fused", "off", 2), ("vmapped", "sgd", "off", 2),
    ("vmapped", "fused", KERNEL, 1)])
def test_a_group_computes_the_same_bits_in_a_batch_of_any_size(shape_factory, layout, step,
                                                               kernel, chunk):
    # docs/DESIGN.md §1.7: not on its batchmates, not on the batch size, not on its place in
    # the batch -- bit for bit (the vmapped layout and the kernel are what GPUs run). By
    # construction (core.train computes chunks of ``chunk`` groups), so on any CPU's ISA.
    groups = GROUPS + [{"data": 2, "m": 80, "trials": [{"init": 5, "width": 12}]}]
    big_groups = groups + groups[:1] * (-len(groups) % chunk)
    small_groups = ([groups[2], groups[0]] + groups[1:2] * (chunk - 2))[:chunk]
    big = shape_factory(G=len(big_groups), P=3, layout=layout, step=step, kernel=kernel,
                        chunk=chunk)
    small = shape_factory(G=chunk, P=3, layout=layout, step=step, kernel=kernel, chunk=chunk)
    out_big, p_big = devices.train_on_devices(big, make_batch(big_groups, P=3), n_devices=1)
    out_small, p_small = devices.train_on_devices(small, make_batch(small_groups, P=3), n_devices=1)
    # the small batch's first group is the big one's third; its second (chunk 2) the first
    pairs = [(2, 0)] + ([(0, 1)] if chunk > 1 else [])
    for a, b in zip(jax.tree.leaves((out_big, p_big)), jax.tree.leaves((out_small, p_small)),
                    strict=True):
        for i, j in pairs:
            np.testing.assert_array_equal(np.asarray(a)[i], np.asarray(b)[j])


def test_a_batch_that_is_not_whole_chunks_is_refused(shape_factory):
    with pytest.raises(ValueError, match="multiple of chunk"):
        devices.train_on_devices(shape_factory(G=3, P=3, layout="vmapped", chunk=2),
                      make_batch(GROUPS + GROUPS[:1], P=3), n_devices=1)


@pytest.mark.parametrize("precision,hlo", [("float32", "HIGHEST"), ("tf32", "HIGH"),
                                           ("bfloat16", "DEFAULT")])
def test_every_dot_carries_the_requested_precision(precision, hlo):
    for depth, step in ((1, "fused"), (2, "sgd")):
        shape = small_shape(depth=depth, step=step, precision=precision)
        text = jax.jit(core.train, static_argnums=0).lower(shape, small_batch(shape)).as_text()
        dots = re.findall(r"stablehlo\.dot_general[^\n]*", text)
        assert dots and all(f"precision = [{hlo}, {hlo}]" in d for d in dots), dots[:2]


@pytest.mark.slow
def test_chunked_evaluation_equals_evaluating_every_row_at_once():
    whole = small_shape(M=300, n_test=500, W=16, G=2, P=3, eval_every=50)
    chunked = small_shape(M=300, n_test=500, W=16, G=2, P=3, eval_every=50, eval_rows=64)
    a = jax.device_get(devices.train_on_devices(whole, small_batch(whole))[0])
    b = jax.device_get(devices.train_on_devices(chunked, small_batch(chunked))[0])
    np.testing.assert_array_equal(a.test_error, b.test_error)  # error counts are exact
    np.testing.assert_array_equal(a.first_hit, b.first_hit)
    np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-5)
