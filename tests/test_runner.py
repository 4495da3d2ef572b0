"""Runner: the Python API, and resume after SIGKILL equals an uninterrupted run."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import parity_jax
from parity_jax import Model, Study, Task, Train, plan

RESUME = """
name = "resume"
seeds = 3
[task]
n = 10
k = 2
m = [40, 80]
n_test = 100
[model]
width = [16, 32]
init = ["dense", "sparse"]
[train]
steps = 3000
batch = 8
stop_on_success = false
"""
BUDGET = "60K"  # small batches, so there is a "middle" to kill


def _trials(out):
    with sqlite3.connect(out / "results.sqlite") as conn:
        return conn.execute("SELECT * FROM trials ORDER BY cell, seed").fetchall()


def _count(out):
    try:
        with sqlite3.connect(out / "results.sqlite", timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return 0


def _cmd(config, out):
    return [sys.executable, "-m", "parity_jax.cli", "run", str(config), "--out", str(out),
            "--memory-budget", BUDGET]


def test_sigkill_in_the_middle_then_resume_equals_an_uninterrupted_run(tmp_path):
    config = tmp_path / "resume.toml"
    config.write_text(RESUME)
    study = Study.from_toml(config)
    n_batches = len(plan.make_plan(study, 60 * 1024).batches)
    assert n_batches >= 4
    total = len(study.cells()) * study.seeds

    full = tmp_path / "full"
    subprocess.run(_cmd(config, full), check=True, capture_output=True)
    reference = _trials(full)
    assert len(reference) == total

    out = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(config, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _count(out) == 0 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored_at_kill = _count(out)
    assert 0 < stored_at_kill < total, stored_at_kill

    subprocess.run(_cmd(config, out), check=True, capture_output=True)
    resumed = _trials(out)
    assert len(resumed) == total == len({(r[0], r[1]) for r in resumed})
    assert resumed == reference


def test_python_api_returns_cell_and_trial_records(tmp_path):
    study = Study(name="api", seeds=2, task=Task(n=10, k=2, m=[60], n_test=100),
                  model=Model(width=[8, 16], init="sparse"),
                  train=Train(steps=300, batch=8))
    results = parity_jax.run(study, out=tmp_path / "o", progress=None)
    cells = results.cells()
    assert [c["width"] for c in cells] == [8, 16]
    assert all(c["trials"] == 2 for c in cells)
    trials = results.trials()
    assert len(trials) == 4
    assert {"width", "m", "seed", "success", "first_hit", "steps_run"} <= set(trials[0])
    for t in trials:
        assert (t["first_hit"] is None) != t["success"]
        assert t["steps_run"] <= 300
    # reading back later gives the same records
    again = parity_jax.Results(tmp_path / "o")
    assert again.cells() == cells and again.study.fingerprint() == study.fingerprint()
