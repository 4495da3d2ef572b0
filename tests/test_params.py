"""Parametrizations (model.param): the per-layer scalings, the config's fields and refusals,
and the engine's batched, packed, padded programs (fused step, optax sgd/adam, the kernel in
interpret mode) against one-trial oracles written from the papers (``oracles.reference_params``:
mup as TP V's table per optax label, mean_field in its forward-multiplier form)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_batch
from test_core import _assert_params_close, _trial_params

from parity_jax import devices, models, oracles, steps
from parity_jax.errors import ConfigError
from parity_jax.kinds.parity import batches
from parity_jax.kinds.parity.config import DEFAULT_STUDY, Model, Study, Task, Train

STEPS = 100
BASE = 4  # mup's base width in these tests: widths 16 and 9 are rho = 4 and 2.25
# one group: a full-width trial and a padded one (width 9 in W = 16), sparse and dense
TRIALS = [{"init": 0, "width": 16, "lr": 0.05, "steps": STEPS},
          {"init": 1, "width": 9, "sparse": True, "s": 2, "lr": 0.1, "steps": STEPS}]


def test_the_scalings_table():
    assert models.scalings("standard", 32, jnp.float32(64)) is None
    init, lr = models.scalings("mup", 4, jnp.float32(16))  # rho = 4
    assert [float(x) for x in jax.tree.leaves(init)] == [1, 1, 1, 2, 0.5, 2]  # w1 b1 wh bh a c
    assert [float(x) for x in jax.tree.leaves(lr)] == [4, 4, 1, 4, 0.25, 1]
    _, adam = models.scalings("mup", 4, jnp.float32(16), step="adam")
    assert [float(x) for x in jax.tree.leaves(adam)] == [1, 1, 0.25, 1, 0.25, 1]
    # mup equals standard at its base width; mean_field is mup with base width 1
    at_base = models.scalings("mup", 64, jnp.float32(64))
    assert all(float(x) == 1 for x in jax.tree.leaves(at_base))
    mf, mup1 = models.scalings("mean_field", 32, jnp.float32(8)), models.scalings(
        "mup", 1, jnp.float32(8))
    assert jax.tree.map(float, mf) == jax.tree.map(float, mup1)


@pytest.mark.quick
def test_the_default_study_and_standard_configs_keep_their_fingerprints():
    assert DEFAULT_STUDY.fingerprint() == "027c097ad67f79d6"
    explicit = dataclasses.replace(DEFAULT_STUDY, model=dataclasses.replace(
        DEFAULT_STUDY.model, param="standard", base_width=32))
    assert explicit.fingerprint() == "027c097ad67f79d6"
    assert [c.key() for c in explicit.cells()] == [c.key() for c in DEFAULT_STUDY.cells()]
    assert "param" not in DEFAULT_STUDY.cells()[0].key()
    mup = dataclasses.replace(DEFAULT_STUDY, model=dataclasses.replace(DEFAULT_STUDY.model,
                                                                       param="mup"))
    assert mup.fingerprint() != DEFAULT_STUDY.fingerprint()
    assert '"param": "mup"' in mup.cells()[0].key()


@pytest.mark.quick
def test_param_is_a_grid_axis_and_base_width_is_read_by_mup_cells_only():
    study = Study(seeds=2, task=Task(n=10, k=2, m=40, n_test=100),
                  model=Model(width=[8, 16], param=["standard", "mup", "mean_field"],
                              base_width=[8, 16]),
                  train=Train(steps=100, batch=8))
    cells = study.cells()
    # standard and mean_field ignore base_width (not duplicated); mup has both
    assert len(cells) == 2 * (1 + 2 + 1)
    assert {c.base_width for c in cells if c.param != "mup"} == {Model.base_width}
    shapes = {(b.shape.param, b.shape.base_width)
              for b in batches.make_plan(study, platform="cpu").batches}
    assert shapes == {("standard", 1), ("mup", 8), ("mup", 16), ("mean_field", 1)}


@pytest.mark.quick
@pytest.mark.parametrize("model,message", [
    ({"param": "ntk"}, "model.param = 'ntk': must be one of standard, mup, mean_field"),
    ({"param": "mean_field", "depth": 2},
     "model.param = 'mean_field' needs depth 1 (the two-layer mean-field model), got "
     "model.depth = 2"),
    ({"base_width": 0}, "model.base_width = 0: must be an integer in 1..2147483647 "
                        "(used by mup only)"),
])
def test_bad_parametrizations_are_refused_naming_the_field(model, message):
    with pytest.raises(ConfigError) as e:
        Study.from_dict({"model": model})
    assert str(e.value) == message


def _engine_and_oracle(shape_factory, param, step="fused", kernel="off", layout=None, wd=0.05,
                       optimizer="sgd", depth=1):
    trials = [{**t, "wd": wd} for t in TRIALS]
    groups = [{"data": 0, "m": 100, "trials": trials}]
    kw = {"layout": layout} if layout else {}
    shape = shape_factory(G=1, P=2, W=16, param=param, base_width=BASE if param == "mup" else 1,
                          step=step, kernel=kernel, eval_every=50, depth=depth, **kw)
    _, params = devices.train_on_devices(shape, make_batch(groups, P=2), n_devices=1)
    batch = make_batch(groups, P=2)  # the same keys again, unconsumed
    for p, t in enumerate(trials):
        with jax.debug_key_reuse(False):  # the group's trials share one data key on purpose
            ref = oracles.reference_params(
                batch.task.data_key[0], batch.init_key[0, p], n=shape.task.n, k=3, m=100,
                noise=0.0, width=t["width"], depth=depth, sparse=t.get("sparse", False),
                s=t.get("s", 2), lr=t["lr"], wd=wd, batch=shape.task.batch, loss=shape.loss,
                steps=STEPS, param=param, base_width=BASE, optimizer=optimizer)
        got = _trial_params(params, 0, p, t["width"])
        _assert_params_close(got, ref)
        assert np.all(np.asarray(params.w1[0, p, t["width"]:]) == 0)  # padding stayed zero
        yield got, ref


def _steps(shape_factory, param, **kw):
    return list(_engine_and_oracle(shape_factory, param, **kw))


@pytest.mark.parametrize("param,wd", [("mup", 0.05), ("mean_field", 0.05), ("mean_field", 0.0)])
def test_the_fused_step_equals_the_oracle(shape_factory, param, wd):
    # with decay: MuSGD's (lr x m_l, wd / m_l) per label for mup; lambda = wd / N in the
    # mean-field form (oracles._mean_field)
    _steps(shape_factory, param, wd=wd)


def _zero_gradient_step(step, param, width, lr, wd):
    """Two trials (widths ``width``) of ones after one ``step`` update of a zero loss."""
    P = len(width)
    ones = models.Params(w1=jnp.ones((P, 4, 3)), b1=jnp.ones((P, 4)), wh=jnp.ones((P, 1, 4, 4)),
                         bh=jnp.ones((P, 1, 4)), a=jnp.ones((P, 4)), c=jnp.ones((P,)))
    lr, wd = jnp.full((P,), lr), jnp.full((P,), wd)
    scales = models.scalings(param, BASE, jnp.asarray(width, jnp.float32), step).lr
    if step == "fused":
        zero = jax.tree.map(jnp.zeros_like, ones)
        return steps.sgd_update(ones, zero, lr, wd, jnp.ones((P,), bool), scales)
    opt = steps.autodiff(step, lambda p, x, y: jnp.float32(0.0), packed=True)
    state = jax.vmap(opt.init)(ones, lr, wd)
    return opt.update(ones, state, None, None, lr, wd, jnp.ones((P,), bool), scales)[0]


@pytest.mark.parametrize("step", ["fused", "sgd"])
@pytest.mark.parametrize("param", ["mup", "mean_field"])
def test_the_sgd_decay_per_step_is_lr_times_wd_at_every_width_and_layer(param, step):
    # MuSGD: the lr multiplier scales the gradient step, not the decay (models.scalings)
    new = _zero_gradient_step(step, param, [16, 512], lr=0.5, wd=0.01)
    for leaf in jax.tree.leaves(new):
        np.testing.assert_allclose(np.asarray(leaf), 1 - 0.5 * 0.01, rtol=1e-6)


def test_adam_multiplies_its_whole_decayed_update():
    # MuAdam with coupled decay scales the lr only: a zero gradient's Adam update of wd * w
    # (about lr in size at the first step) times the layer's Adam multiplier
    new = _zero_gradient_step("adam", "mup", [16], lr=0.01, wd=0.01)
    adam = models.scalings("mup", BASE, jnp.float32(16), "adam").lr  # rho = 4
    for leaf, m in zip(jax.tree.leaves(new), jax.tree.leaves(adam), strict=True):
        np.testing.assert_allclose(np.asarray(leaf), 1 - 0.01 * float(m), rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("param,step,optimizer,layout", [
    ("mup", "sgd", "sgd", "vmapped"), ("mean_field", "sgd", "sgd", "blocked"),
    ("mup", "adam", "adam", "vmapped"), ("mup", "fused", "sgd", "vmapped")])
def test_the_optax_steps_and_layouts_equal_the_oracle(shape_factory, param, step, optimizer,
                                                      layout):
    _steps(shape_factory, param, step=step, optimizer=optimizer, layout=layout)


@pytest.mark.slow
@pytest.mark.parametrize("step", ["sgd", "adam"])
def test_mup_hidden_layers_equal_the_oracle(shape_factory, step):
    # depth 2: the hidden weights' and biases' rows of the table (init and lr)
    _steps(shape_factory, "mup", step=step, optimizer=step, depth=2)


@pytest.mark.slow
@pytest.mark.parametrize("param", ["mup", "mean_field"])
def test_the_kernel_equals_the_oracle(shape_factory, param):
    kernel = "pallas" if jax.default_backend() == "gpu" else "interpret"
    _steps(shape_factory, param, kernel=kernel, layout="vmapped")


def test_mup_at_its_base_width_is_standard(shape_factory):
    trials = [{"init": 0, "width": 16, "lr": 0.05, "wd": 0.01}]
    groups = [{"data": 0, "m": 100, "trials": trials}]
    out = [devices.train_on_devices(
        shape_factory(G=1, P=1, W=16, eval_every=50, **kw), make_batch(groups, P=1),
        n_devices=1)[1] for kw in ({}, {"param": "mup", "base_width": 16})]
    _assert_params_close(out[0], out[1], rtol=0, atol=0)


@pytest.mark.slow
def test_the_lr_transfer_benchmark_runs_and_finds_a_best_lr_per_width():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "lr_transfer.py"
    spec = importlib.util.spec_from_file_location("lr_transfer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.measure([8, 16], [0.25, 0.5], seeds=1, steps=200, n=8, k=2)
    rows = result["rows"]
    assert {(r["param"], r["width"]) for r in rows} == {
        (p, w) for p in module.PARAMS for w in (8, 16)}
    assert all(r["best_lr"] in (0.25, 0.5) for r in rows)
    assert result["table"].count("\n") == 1 + len(module.PARAMS)
