"""Scaling out: devices, shards + merge, multi-process, the plan and check commands."""

import json
import socket
import sqlite3
import subprocess

import faults
import pytest

import parity_jax
from parity_jax import Model, Study, Task, Train, cli, costs, kinds

STUDY = Study(name="scale", seeds=3, task=Task(n=10, k=2, m=[40, 80], n_test=100),
              model=Model(width=[8, 16, 32], init=["dense", "sparse"]),
              train=Train(steps=400, batch=8, eval_every=50))


def _rows(out):
    with sqlite3.connect(out / "results.sqlite") as conn:
        return conn.execute("SELECT * FROM trials ORDER BY cell, seed").fetchall()


@pytest.mark.slow
def test_four_devices_give_the_same_outcomes_as_one_trial_by_trial(tmp_path):
    one = parity_jax.run(STUDY, tmp_path / "one", devices=1, progress=None)
    parity_jax.run(STUDY, tmp_path / "four", devices=4, progress=None)
    assert len(one.trials()) == 36
    assert _rows(tmp_path / "one") == _rows(tmp_path / "four")
    # the plan really spread the batches over the 4 devices
    p = kinds.parity.make_plan(STUDY, devices=4)
    assert all(b.shape.G % 4 == 0 for b in p.batches if b.shape.G >= 4)
    assert any(b.shape.G >= 4 for b in p.batches)


@pytest.mark.slow
def test_shards_partition_the_trials_and_merge_equals_a_single_run(tmp_path, capsys):
    single = tmp_path / "single"
    parity_jax.run(STUDY, single, progress=None)
    parts = [kinds.parity.make_plan(STUDY, shard=(i, 3)).trial_ids() for i in range(3)]
    assert sum(map(len, parts)) == 36 and set().union(*parts) == kinds.parity.make_plan(
        STUDY).trial_ids()
    outs = []
    for i in range(3):
        outs.append(tmp_path / f"shard{i}")
        parity_jax.run(STUDY, outs[-1], shard=f"{i}/3", progress=None)
        assert {r[:2] for r in _rows(outs[-1])} == parts[i]
    merged = tmp_path / "merged"
    assert cli.main(["merge", *map(str, outs), "--out", str(merged)]) == 0
    assert "36 trials written" in capsys.readouterr().out
    assert _rows(merged) == _rows(single)
    assert cli.main(["check", str(merged)]) == 0
    # merging again (identical overlap) adds nothing; a shard resumed as another is refused
    assert cli.main(["merge", str(outs[0]), str(single), "--out", str(merged)]) == 0
    assert _rows(merged) == _rows(single)
    capsys.readouterr()
    assert cli.main(["run", "--out", str(outs[0])]) == 2  # another study (the default)
    with pytest.raises(parity_jax.StoreError, match="holds shard 0/3"):
        parity_jax.run(STUDY, outs[0], shard="1/3", progress=None)


@pytest.mark.slow
def test_merge_refuses_other_studies_and_differing_overlaps_writing_nothing(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    parity_jax.run(STUDY, a, shard="0/2", progress=None)
    other = Study(name="other", seeds=1, task=Task(n=10, k=2, m=40, n_test=100),
                  model=Model(width=8), train=Train(steps=100, batch=8))
    parity_jax.run(other, b, progress=None)
    assert cli.main(["merge", str(a), str(b), "--out", str(tmp_path / "m")]) == 2
    assert "holds another study" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    c = tmp_path / "c"
    parity_jax.run(STUDY, c, shard="0/2", progress=None)
    with sqlite3.connect(c / "results.sqlite") as conn:
        conn.execute("UPDATE trials SET train_loss = COALESCE(train_loss, 0) + 1 "
                     "WHERE cell = 0 AND seed = 0")  # another outcome, as sound as the first
    conn.close()
    assert cli.main(["merge", str(a), str(c), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "trial (cell 0, seed 0) differs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_check_finds_inconsistent_trials(tmp_path, capsys):
    out = tmp_path / "o"
    parity_jax.run(STUDY, out, progress=None)
    assert cli.main(["check", str(out)]) == 0
    assert "36 of 36 trials stored, complete; no problems" in capsys.readouterr().out
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("UPDATE trials SET success = 1, first_hit = NULL "
                     "WHERE cell = 1 AND seed = 2")
        conn.execute("UPDATE trials SET steps_run = 99999 WHERE cell = 2 AND seed = 0")
        conn.execute("DELETE FROM trials WHERE cell = 3")
    conn.close()
    assert cli.main(["check", str(out)]) == 1
    text = capsys.readouterr().out
    assert "trial (cell 1, seed 2): success and first_hit disagree" in text
    assert "trial (cell 2, seed 0): steps_run 99999" in text
    assert "incomplete" in text


def test_plan_prints_programs_batches_memory_and_flops(tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text(faults.SMALL)
    assert cli.main(["plan", str(config), "--memory-budget", "40K", "--devices", "2"]) == 0
    out = capsys.readouterr().out
    p = kinds.parity.make_plan(Study.from_toml(config), 40 * 1024, devices=2)
    assert f"{len(p.shapes)} compiled program(s), {len(p.batches)} batches" in out
    assert "TFLOP" in out and "peak memory" in out
    assert cli.main(["plan", str(config), "--devices", "99"]) == 2
    assert "--devices = 99: must be between 1 and 4" in capsys.readouterr().err
    assert cli.main(["plan", str(config), "--shard", "3/3"]) == 2
    assert "--shard = '3/3'" in capsys.readouterr().err


def test_trial_flops_counts_steps_and_evaluations():
    cell = STUDY.cells()[0]
    step = costs.flops_per_trial_step(cell.width, cell.n, cell.batch)
    assert step == 4 * cell.batch * cell.width * (cell.n + 2)
    evals = cell.steps // cell.eval_every
    assert kinds.parity.trial_flops(cell) == (cell.steps * step
                                      + evals * cell.n_test * 2 * cell.width * (cell.n + 1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_same_results_as_one(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text(faults.SMALL.replace("steps = 3000", "steps = 400"))
    single = tmp_path / "single"
    subprocess.run(faults.command(config, single, "40K"), check=True, capture_output=True)
    out = tmp_path / "multi"
    port = _free_port()
    env = {**__import__("os").environ,
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = [subprocess.Popen(
        faults.command(config, out, "40K") + [
            "--coordinator", f"localhost:{port}", "--num-processes", "2",
            "--process-id", str(i)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    logs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert _rows(out) == _rows(single)
    meta = sqlite3.connect(out / "results.sqlite").execute(
        "SELECT value FROM meta WHERE key = 'plan'").fetchone()[0]
    assert json.loads(meta)["devices"] == 4  # 2 processes x 2 devices
