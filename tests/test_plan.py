"""Planning for accelerators: precision, memory bounded by the plan (chunked evaluation, m and
width buckets, honest estimates, refusals), batches sized by memory, the compile cache."""

import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import make_batch

from parity_jax import core, costs, devices, kinds, plan
from parity_jax.config import ConfigError, Model, Study, Task, Train
from parity_jax.core import Shape
from parity_jax.tasks import sparse


def _shape(**kw):
    task = {k: kw.pop(k) for k in ("n", "M", "n_test", "eval_rows") if k in kw}
    task = {"n": 12, "M": 64, "n_test": 64, **task}
    base = dict(depth=1, W=8, G=1, P=2, eval_every=10, loss="hinge", step="fused",
                layout="blocked")
    base.update(kw)
    return Shape(task=sparse.SparseTask(batch=8, **task), **base)


def _batch(shape):
    return make_batch([{"data": g, "m": shape.task.M, "trials": [
        {"init": p, "width": shape.W} for p in range(shape.P)]} for g in range(shape.G)],
        P=shape.P)


@pytest.mark.parametrize("precision,hlo", [("float32", "HIGHEST"), ("tf32", "HIGH"),
                                           ("bfloat16", "DEFAULT")])
def test_every_dot_carries_the_requested_precision(precision, hlo):
    for depth, step in ((1, "fused"), (2, "sgd")):
        shape = _shape(depth=depth, step=step, precision=precision)
        text = jax.jit(core.train, static_argnums=0).lower(shape, _batch(shape)).as_text()
        dots = re.findall(r"stablehlo\.dot_general[^\n]*", text)
        assert dots and all(f"precision = [{hlo}, {hlo}]" in d for d in dots), dots[:2]


@pytest.mark.slow
def test_chunked_evaluation_equals_evaluating_every_row_at_once():
    whole = _shape(M=300, n_test=500, W=16, G=2, P=3, eval_every=50)
    chunked = _shape(M=300, n_test=500, W=16, G=2, P=3, eval_every=50, eval_rows=64)
    a = jax.device_get(devices.train_on_devices(whole, _batch(whole))[0])
    b = jax.device_get(devices.train_on_devices(chunked, _batch(chunked))[0])
    np.testing.assert_array_equal(a.test_error, b.test_error)  # error counts are exact
    np.testing.assert_array_equal(a.first_hit, b.first_hit)
    np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    dict(n=50, M=5000, n_test=2000, W=1000, G=2, P=1),
    dict(n=50, M=20000, n_test=10000, W=4096, G=1, P=1, eval_rows=8192),
    dict(n=50, M=20000, n_test=10000, W=2048, G=4, P=2, layout="vmapped", eval_rows=8192),
    dict(n=50, M=5000, n_test=2000, W=512, G=4, P=2, depth=2, step="sgd", layout="vmapped"),
    dict(n=50, M=5000, n_test=2000, W=256, G=16, P=2, depth=2, step="sgd", layout="vmapped",
         chunk=4),
])
def test_the_plans_byte_estimate_is_within_25_percent_of_xlas(kw):
    shape = _shape(**kw)
    compiled = jax.jit(core.train, static_argnums=0).lower(shape, _batch(shape)).compile()
    m = compiled.memory_analysis()
    xla = (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
           - m.alias_size_in_bytes)
    estimate = costs.packed_batch_bytes(shape)
    assert 0.75 <= estimate / xla <= 1.25, (estimate, xla)


def test_widths_are_padded_by_at_most_an_eighth_and_m_by_at_most_twice():
    widths = [10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 100_000, 1025, 65_537]
    wb = plan.width_buckets(widths)
    assert all(w <= wb[w] <= 1.125 * w for w in widths) and wb[100_000] == 106_496
    assert plan.width_buckets([10, 100, 1000]) == {10: 10, 100: 100, 1000: 1000}  # few: own
    study = Study(seeds=1, task=Task(n=20, k=2, m=[100, 5000, 70_000, 100_000, 1_000_000],
                                     n_test=100), model=Model(width=8),
                  train=Train(steps=10, eval_every=10))
    p = kinds.parity.make_plan(study, 1 << 34, platform="cpu")
    for b in p.batches:
        for t in b.trials:
            m = p.cells[t.cell].m
            assert b.shape.task.M <= max(2 * m, kinds.parity.M_FLOOR)
    # m <= 2^16 share one bucket; 70,000 and 100,000 share (2^16, 2^17]; 10^6 its own
    assert sorted({b.shape.task.M for b in p.batches}) == [5000, 100_000, 1_000_000]


def test_a_trial_that_cannot_fit_alone_is_refused_before_anything_is_written(tmp_path):
    from parity_jax import run

    study = Study(seeds=1, task=Task(n=50, k=3, m=100_000, n_test=10_000),
                  model=Model(width=100_000), train=Train(steps=20, eval_every=10))
    with pytest.raises(ConfigError, match=r"width=100000.*needs 6\.\d\d GiB alone.*budget"):
        kinds.parity.make_plan(study, 50 << 20, platform="cpu")
    with pytest.raises(ConfigError, match="--memory-budget"):
        run(study, tmp_path / "out", memory_budget=50 << 20, progress=None)
    assert not (tmp_path / "out").exists()
    # alone, with a budget it fits, it is planned
    assert len(kinds.parity.make_plan(study, 8 << 30, platform="cpu").batches) == 1


@pytest.mark.parametrize("name", ["fig1_cpu_full", "fig2_full"])
def test_the_paper_sized_grids_plan_within_a_20_gib_budget(name):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    study = Study.from_toml(os.path.join(here, "experiments", f"{name}.toml"))
    for platform in ("cpu", "gpu"):
        p = kinds.parity.make_plan(study, 20 << 30, platform=platform)
        assert max(r["peak_bytes"] for r in p.programs()) <= 20 << 30


def test_accelerator_batches_fill_the_memory_budget_cpus_keep_their_neuron_cap():
    study = Study(seeds=64, task=Task(n=20, k=3, m=500, n_test=500),
                  model=Model(width=1000), train=Train(steps=100, vary="init"))
    cpu = kinds.parity.make_plan(study, 8 << 30, platform="cpu")
    gpu = kinds.parity.make_plan(study, 8 << 30, platform="gpu")
    assert max(b.shape.G * b.shape.P * b.shape.W for b in cpu.batches) <= kinds.parity.NEURON_BUDGET
    assert len(gpu.batches) == 1 and gpu.batches[0].shape.layout == "vmapped"
    assert costs.packed_batch_bytes(gpu.batches[0].shape) <= 8 << 30


@pytest.mark.slow
def test_a_warm_start_compiles_nothing(tmp_path):
    """The persistent compilation cache: the second run of a study loads every program."""
    config = tmp_path / "s.toml"
    config.write_text('seeds = 2\n[task]\nn = 10\nk = 2\nm = 50\nn_test = 50\n'
                      '[model]\nwidth = [4, 8]\n[train]\nsteps = 100\n')
    env = {**os.environ, "PARITY_JAX_CACHE": str(tmp_path / "cache")}
    lines = []
    for i in range(2):
        done = subprocess.run([sys.executable, "-m", "parity_jax.cli", "run", str(config),
                               "--out", str(tmp_path / f"o{i}")], capture_output=True,
                              text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        lines.append(done.stdout.strip().splitlines()[-1])
    first, second = (re.search(r"(\d+) program\(s\), compile ([\d.]+) s \((\d+) from", line)
                     for line in lines)
    assert first and second, lines
    assert int(first[1]) == 2 and int(first[3]) == 0
    assert int(second[3]) == int(second[1]) == 2  # every program from the cache
    assert any((tmp_path / "cache").iterdir())


def test_a_programs_chunk_depends_on_the_study_alone():
    """core.train's chunk (what a group's arithmetic is shaped by) is the same whatever the
    devices, shard, kernel or budget; G is whole chunks, and whole chunks per device used."""
    study = Study(seeds=300, task=Task(n=20, k=3, m=[200, 500], n_test=500),
                  model=Model(width=[100, 1000]), train=Train(steps=100))
    chunks = set()
    for platform in ("cpu", "gpu"):
        for kw in (dict(devices=1), dict(devices=4), dict(devices=3, shard=(1, 3)),
                   dict(kernel="off"), dict(kernel="pallas"), dict(memory_budget=2 << 30)):
            kw.setdefault("memory_budget", 16 << 30)
            p = kinds.parity.make_plan(study, platform=platform, **kw)
            for b in p.batches:
                assert b.shape.G % b.shape.chunk == 0
                used = devices.used(b.shape, kw.get("devices", 1))
                assert (b.shape.G // used) % b.shape.chunk == 0
            chunks.add((platform, tuple(sorted({(b.shape.W, b.shape.chunk)
                                                for b in p.batches}))))
    assert len(chunks) == 2, chunks  # one set of chunks per platform
    gpu = dict(c for p, cs in chunks if p == "gpu" for c in cs)
    assert gpu[1000] == 512 and gpu[100] == 1024  # 2^19 neurons, at most MAX_CHUNK
