"""costs: the memory model against XLA's own figures, batches sized by the memory budget, a
trial too large refused before anything is written, and a trial's FLOPs."""

import os

import jax
import pytest
from conftest import TINY_TOML, one_error, small_batch, small_shape

from parity_jax import ConfigError, Model, Study, Task, Train, cli, core, costs, flops, kinds

pytestmark = pytest.mark.quick  # pure Python: make test-quick

SMALL = TINY_TOML.replace('name = "tiny"', 'name = "edges"')


def test_a_memory_budget_rounding_to_zero_is_refused_and_a_small_one_shown_as_it_is(
        tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    for budget in ("0.5", "0.0001K", "-1M", "0"):
        assert cli.main(["plan", str(config), f"--memory-budget={budget}"]) == 2
        assert one_error(capsys) == (f"error: --memory-budget = {budget!r}: must be a positive "
                                      "size of at least one byte, like 8G or 512M")
    assert cli.main(["plan", str(config), "--memory-budget", "1000"]) == 2
    err = one_error(capsys)
    assert "over the memory budget of 1000 B" in err and "0.00 GiB" not in err, err
    assert cli.main(["plan", str(config), "--memory-budget", "512K"]) == 0
    assert "memory budget 512.0 KiB" in capsys.readouterr().out


STUDY = Study(name="scale", seeds=3, task=Task(n=10, k=2, m=[40, 80], n_test=100),
              model=Model(width=[8, 16, 32], init=["dense", "sparse"]),
              train=Train(steps=400, batch=8, eval_every=50))


def test_trial_flops_counts_steps_and_evaluations():
    cell = STUDY.cells()[0]
    step = flops.flops_per_trial_step(cell.width, cell.n, cell.batch)
    assert step == 4 * cell.batch * cell.width * (cell.n + 2)
    evals = cell.steps // cell.eval_every
    assert kinds.parity.trial_flops(cell) == (cell.steps * step
                                      + evals * cell.n_test * 2 * cell.width * (cell.n + 1))


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
    shape = small_shape(**kw)
    compiled = jax.jit(core.train, static_argnums=0).lower(shape, small_batch(shape)).compile()
    m = compiled.memory_analysis()
    xla = (m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
           - m.alias_size_in_bytes)
    estimate = costs.packed_batch_bytes(shape)
    assert 0.75 <= estimate / xla <= 1.25, (estimate, xla)


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
