"""The fused Pallas kernel (parity_jax.kernel) against the XLA step it replaces, in Pallas'
interpret mode on the CPU; its selection; and its lowering for CUDA (Triton), which builds the
GPU program on this machine without running it."""

import dataclasses

import jax
import numpy as np
import pytest
from conftest import GROUPS as BASE_GROUPS
from conftest import TINY_TOML, make_batch

from parity_jax import core, devices, kernel, kinds
from parity_jax.errors import ConfigError
from parity_jax.kinds.parity.config import Study
from parity_jax.runner import run

# conftest's two groups (dense and sparse inits, padded widths 5, 7, 12 in a bucket of 16,
# per-trial lr/wd, padding), one trial's steps ending inside an interval (250)
GROUPS = [BASE_GROUPS[0], {**BASE_GROUPS[1], "trials": [
    {**BASE_GROUPS[1]["trials"][0], "steps": 250}, *BASE_GROUPS[1]["trials"][1:]]}]


# On a CPU the kernel runs in Pallas' interpret mode; on a GPU (benchmarks/gpu_check.sh) the
# same tests run the compiled kernel against the XLA step there.
GPU = jax.default_backend() == "gpu"
MODE = "pallas" if GPU else "interpret"


def _both(shape, groups, P=3, mode=MODE):
    """(outcomes, params) of the XLA step and of the kernel on one batch."""
    xla = devices.train_on_devices(shape, make_batch(groups, P=P))
    pallas = devices.train_on_devices(dataclasses.replace(shape, kernel=mode),
                                      make_batch(groups, P=P))
    return xla, pallas


def _assert_close(xla, pallas, rtol=1e-4, atol=1e-5):
    (o1, p1), (o2, p2) = xla, pallas
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=rtol, atol=atol)
    for name in ("success", "first_hit", "steps_run", "diverged"):
        np.testing.assert_array_equal(getattr(o2, name), getattr(o1, name), err_msg=name)
    for name in ("test_error", "train_loss"):
        np.testing.assert_allclose(getattr(o2, name), getattr(o1, name), rtol=1e-4, atol=1e-6,
                                   err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["hinge", "logistic", "square"])
def test_the_kernel_equals_the_xla_step(shape_factory, loss):
    # registers geometry: a trial's padded w1 (16 x 16) is one loop carry
    shape = shape_factory(G=2, P=3, W=16, loss=loss, layout="vmapped")
    assert kernel.geometry(16, 12, 8)[3] == 16
    xla, pallas = _both(shape, GROUPS)
    _assert_close(xla, pallas)
    # padded neurons stay exactly zero
    w1 = np.asarray(pallas[1].w1)
    assert np.all(w1[0, 1, 5:] == 0) and np.all(w1[1, 1, 7:] == 0)


@pytest.mark.slow
def test_wide_trials_walk_their_weights_in_tiles(shape_factory):
    # W = 600 at n = 12: 1024 x 16 floats exceed REG_FLOATS, so w1 stays in the output buffer
    # and each step walks it in tiles of TILE neurons (forward, then backward and update)
    wp, _, _, tw = kernel.geometry(600, 12, 8)
    assert tw == kernel.TILE and wp // tw > 1
    groups = [{"data": 0, "m": 100, "trials": [  # the second ends inside an interval
        {"init": 0, "width": 600, "sparse": True, "s": 2},
        {"init": 1, "width": 450, "lr": 0.05, "steps": 130}]}]  # and a padding slot
    shape = shape_factory(G=1, P=3, W=600, loss="logistic", layout="vmapped", eval_every=50)
    xla, pallas = _both(shape, groups, P=3)
    _assert_close(xla, pallas)


@pytest.mark.slow
def test_online_minibatches_are_the_xla_steps(shape_factory):
    shape = shape_factory(G=2, P=3, W=24, loss="square", online=True, M=1, layout="vmapped")
    _assert_close(*_both(shape, GROUPS))


@pytest.mark.slow
def test_stopped_and_diverged_trials_leave_their_batchmates_unchanged(shape_factory):
    shape = shape_factory(G=1, P=3, W=16, loss="square", layout="vmapped", eval_every=50)
    calm = [{"init": 0, "width": 16}, {"init": 2, "width": 12, "sparse": True}]
    wild = {"init": 1, "width": 16, "lr": 50.0}  # diverges in its first interval
    quick = {"init": 1, "width": 16, "threshold": 0.6, "stop": True}  # stops on success

    def group(extra):
        return [{"data": 0, "m": 100, "trials": [calm[0], extra, calm[1]]}]

    xla, pallas = _both(shape, group(wild))
    _assert_close(xla, pallas)
    assert bool(pallas[0].diverged[0, 1]) and not pallas[0].diverged[0, [0, 2]].any()
    xla_q, pallas_q = _both(shape, group(quick))
    _assert_close(xla_q, pallas_q)
    assert bool(pallas_q[0].success[0, 1]) and int(pallas_q[0].steps_run[0, 1]) < 300
    # each trial is its own program: the batchmates' bits do not depend on trial 1
    for a, b in zip(jax.tree.leaves(pallas[1]), jax.tree.leaves(pallas_q[1]), strict=True):
        np.testing.assert_array_equal(np.asarray(a)[0, [0, 2]], np.asarray(b)[0, [0, 2]])


@pytest.mark.slow
def test_a_small_study_has_the_xla_paths_outcomes(tmp_path, monkeypatch, capsys):
    study = Study.from_toml(_write(tmp_path / "tiny.toml", TINY_TOML))
    records = {}
    for env, mode in (("off", "off"), ("on" if GPU else "interpret", MODE)):
        monkeypatch.setenv(kernel.ENV, env)
        assert {s.kernel for s in kinds.parity.make_plan(study).shapes} == {mode}
        res = run(study, tmp_path / env, progress=None)
        records[mode] = sorted(res.trials(), key=lambda t: (t["cell"], t["seed"]))
    # the kernel ran: its self-check passed and no program fell back to the XLA step
    assert "the fused kernel is off" not in capsys.readouterr().err
    assert len(records["off"]) == 16
    for a, b in zip(records["off"], records[MODE], strict=True):
        for name in ("success", "first_hit", "steps_run", "diverged"):
            assert a[name] == b[name], (name, a, b)
        assert a["test_error"] == pytest.approx(b["test_error"], abs=1e-6)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4, abs=1e-6)


def _write(path, text):
    path.write_text(text)
    return path


def test_the_kernel_is_selected_on_gpus_for_depth_1(monkeypatch):
    monkeypatch.delenv(kernel.ENV, raising=False)
    assert kernel.select("gpu", 1, "fused") == "pallas"
    assert kernel.select("cpu", 1, "fused") == "off"
    assert kernel.select("gpu", 2, "sgd") == "off"
    # too few trials to fill a GPU, or too wide to stay on-chip: the XLA step
    assert kernel.select("gpu", 1, "fused", W=64, trials=kernel.MIN_TRIALS - 1) == "off"
    assert kernel.select("gpu", 1, "fused", W=kernel.MAX_WIDTH + 1, trials=10**4) == "off"
    study = Study.from_dict({"seeds": 128, "task": {"n": 20, "m": [100]},
                             "model": {"width": [50, 8000], "depth": [1, 2]}})
    shapes = kinds.parity.make_plan(study, platform="gpu").shapes
    assert sorted((s.depth, s.W, s.kernel) for s in shapes) == [
        (1, 50, "pallas"), (1, 8000, "off"), (2, 50, "off"), (2, 8000, "off")]
    # decided by the study, not by the batch: the same in every shard, budget and device count
    for kw in ({"shard": (1, 4)}, {"memory_budget": 2**31}, {"n_devices": 4}):
        shapes = kinds.parity.make_plan(study, platform="gpu", **kw).shapes
        assert {(s.W, s.kernel) for s in shapes if s.depth == 1} == {(50, "pallas"),
                                                                     (8000, "off")}, kw
    monkeypatch.setenv(kernel.ENV, "on")  # every depth-1 program on a GPU
    shapes = kinds.parity.make_plan(study, platform="gpu").shapes
    assert {s.kernel for s in shapes if s.depth == 1} == {"pallas"}
    monkeypatch.setenv(kernel.ENV, "off")  # forced off, for comparison
    assert {s.kernel for s in kinds.parity.make_plan(study, platform="gpu").shapes} == {"off"}
    monkeypatch.setenv(kernel.ENV, "interpret")
    assert kernel.select("cpu", 1, "fused") == "interpret"
    monkeypatch.setenv(kernel.ENV, "3xtf32")
    assert kernel.select("gpu", 1, "fused") == "pallas-3xtf32"
    assert kernel.select("cpu", 1, "fused") == "off"
    monkeypatch.setenv(kernel.ENV, "fast")
    with pytest.raises(ConfigError, match="PARITY_JAX_KERNEL"):
        kernel.select("gpu", 1, "fused")


@pytest.mark.slow
def test_long_intervals_run_as_several_calls(shape_factory, monkeypatch):
    # an interval of 90 steps in calls of 40, 40 and 10: the same numbers, bounded memory
    monkeypatch.setattr(kernel, "CALL_STEPS", 40)
    shape = shape_factory(G=2, P=3, W=20, loss="hinge", layout="vmapped", eval_every=90)
    _assert_close(*_both(shape, GROUPS))
    assert kernel.extra_floats(shape) < kernel.extra_floats(
        dataclasses.replace(shape, eval_every=4000, task=dataclasses.replace(shape.task,
                                                                           online=True)))


@pytest.mark.skipif(not GPU, reason="TF32 split dots need a GPU's tensor cores")
@pytest.mark.parametrize("mode", ["pallas-3xtf32", "pallas-2xtf32"])
@pytest.mark.parametrize("W", [16, 600])
def test_split_tf32_dots_equal_the_float32_xla_step(shape_factory, W, mode):
    shape = shape_factory(G=2, P=3, W=W, loss="logistic", layout="vmapped")
    _assert_close(*_both(shape, GROUPS, mode=mode))


@pytest.mark.parametrize("W,online,loss,precision,mode,prec", [
    (16, False, "hinge", "float32", "pallas", jax.lax.Precision.HIGHEST),
    (1000, False, "logistic", "float32", "pallas", jax.lax.Precision.HIGHEST),
    (100, True, "square", "tf32", "pallas", jax.lax.Precision.HIGH),
    (100, False, "hinge", "float32", "pallas-3xtf32", jax.lax.Precision.HIGH),
    (1000, False, "logistic", "float32", "pallas-2xtf32", jax.lax.Precision.HIGH),
])
def test_the_kernel_lowers_for_cuda(shape_factory, monkeypatch, W, online, loss, precision,
                                    mode, prec):
    # the whole program, kernel included, lowers to a Triton call for CUDA on this machine
    try:  # jax >= 0.11 asks the device for its compute capability: lower for an H100
        from jax._src.pallas.triton import gpu_info
        monkeypatch.setattr(gpu_info, "get_gpu_info", lambda: gpu_info.get_gpu_info_from_version(
            gpu_info.GpuVersion.H100))
    except (ImportError, AttributeError):  # jax 0.10 lowers without one
        pass
    shape = shape_factory(G=1, P=2, W=W, n=50, batch=32, online=online, loss=loss,
                          precision=precision, layout="vmapped", kernel=mode)
    groups = [{"data": 0, "m": 100, "trials": [{"init": 0, "width": W}, {"init": 1}]}]
    traced = jax.jit(core.train, static_argnums=0).trace(shape, make_batch(groups, P=2))
    assert "__gpu$xla.gpu.triton" in traced.lower(lowering_platforms=("cuda",)).as_text()
    # every dot of the kernel carries the shape's precision (float32: IEEE FMA in Triton), or
    # TF32 in a split variant's passes: 3 per dot for 3xtf32, 2 for 2xtf32
    dots = [e for e in _kernel_eqns(traced.jaxpr) if e.primitive.name == "dot_general"]
    assert dots and all(e.params["precision"] in (prec, (prec, prec)) for e in dots)
    passes = {"": 1, "3xtf32": 3, "2xtf32": 2}[kernel.variant(mode)]
    tiles = kernel.geometry(W, 50, 32)[3] < W
    assert len(dots) == passes * (3 if tiles else 2)  # tiles: the forward pass twice


def _kernel_eqns(jaxpr):
    """Every equation inside the pallas_call kernels of a (closed) jaxpr."""
    out = []

    def walk(j, inside):
        for e in j.eqns:
            if inside:
                out.append(e)
            for sub in _subjaxprs(e.params):
                walk(sub, inside or e.primitive.name == "pallas_call")

    walk(jaxpr.jaxpr, False)
    return out


def _subjaxprs(params):
    for v in params.values():
        for x in v if isinstance(v, (tuple, list)) else (v,):
            if isinstance(x, jax.extend.core.ClosedJaxpr):
                yield x.jaxpr
            elif isinstance(x, jax.extend.core.Jaxpr):
                yield x


def test_plan_shows_each_programs_engine(tmp_path, monkeypatch, capsys):
    from parity_jax import cli

    config = _write(tmp_path / "tiny.toml", TINY_TOML)
    for env, engine in (("off", "xla"), ("interpret", "interpret")):
        monkeypatch.setenv(kernel.ENV, env)
        assert cli.main(["plan", str(config)]) == 0
        header, row = capsys.readouterr().out.splitlines()[1:3]
        assert " engine " in header and f" {engine} " in row
    monkeypatch.setenv(kernel.ENV, "fast")
    assert cli.main(["plan", str(config)]) == 2
    assert capsys.readouterr().err.startswith("error: PARITY_JAX_KERNEL = 'fast'")
