"""plan: grouping -- m and width buckets, a program's chunk from the study alone, the largest
sizes still plan, the plan command's summary -- and a warm start compiling nothing."""

import os
import re
import subprocess
import sys

import faults
import pytest

from parity_jax import Model, Study, Task, Train, cli, devices, kinds, plan

pytestmark = pytest.mark.quick  # pure Python: make test-quick


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
        for kw in (dict(n_devices=1), dict(n_devices=4), dict(n_devices=3, shard=(1, 3)),
                   dict(kernel="off"), dict(kernel="pallas"), dict(memory_budget=2 << 30)):
            kw.setdefault("memory_budget", 16 << 30)
            p = kinds.parity.make_plan(study, platform=platform, **kw)
            for b in p.batches:
                assert b.shape.G % b.shape.chunk == 0
                used = devices.used(b.shape, kw.get("n_devices", 1))
                assert (b.shape.G // used) % b.shape.chunk == 0
            chunks.add((platform, tuple(sorted({(b.shape.W, b.shape.chunk)
                                                for b in p.batches}))))
    assert len(chunks) == 2, chunks  # one set of chunks per platform
    gpu = dict(c for p, cs in chunks if p == "gpu" for c in cs)
    assert gpu[1000] == 512 and gpu[100] == 1024  # 2^19 neurons, at most MAX_CHUNK


def test_the_largest_trials_and_int32_sizes_still_plan(tmp_path, capsys):
    path = tmp_path / "edge.toml"
    path.write_text("seed = 4294967295\nseeds = 3\n[task]\nn = 8\nk = 2\nm = 16\nn_test = 16\n"
                    "[model]\nwidth = 268435455\n[train]\nsteps = 1000000000\n"
                    "eval_every = 1000000000\nbatch = 8\ndata_seed = 2147483647\n")
    code = cli.main(["plan", str(path)])
    out = capsys.readouterr()
    assert code == 0 or (code == 2 and out.err.startswith("error: ")), out.err  # or the budget


def test_plan_prints_programs_batches_memory_and_flops(tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text(faults.SMALL)
    assert cli.main(["plan", str(config), "--memory-budget", "40K", "--devices", "2"]) == 0
    out = capsys.readouterr().out
    p = kinds.parity.make_plan(Study.from_toml(config), 40 * 1024, n_devices=2)
    assert f"{len(p.shapes)} compiled program(s), {len(p.batches)} batches" in out
    assert "TFLOP" in out and "peak memory" in out
    assert cli.main(["plan", str(config), "--devices", "99"]) == 2
    assert "--devices = 99: must be between 1 and 4" in capsys.readouterr().err
    assert cli.main(["plan", str(config), "--shard", "3/3"]) == 2
    assert "--shard = '3/3'" in capsys.readouterr().err
