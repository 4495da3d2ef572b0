"""runner: the Python API's records and curves; its faults -- killed at random moments then
resumed, Ctrl-C, a full disk, a read-only store -- and a diverging trial frozen in its batch."""

import signal
import sqlite3
import subprocess
import time

import faults
import numpy as np
import pytest

import parity_jax
import parity_jax.cli
from parity_jax import Model, Study, Task, Train, cli, errors, kinds, store


@pytest.mark.slow
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


@pytest.mark.slow
def test_curves_are_stored_for_record_curves_cells_and_online_trials_learn(tmp_path):
    study = Study(name="curves", seeds=2, task=Task(n=8, k=2, m=200, n_test=200,
                                                    online=[False, True]),
                  model=Model(width=32, init="sparse"),
                  train=Train(steps=1000, batch=16, eval_every=100, record_curves=True))
    results = parity_jax.run(study, out=tmp_path / "o", progress=None)
    trials = {(t["online"], t["seed"]): t for t in results.trials()}
    curves = results.curves()
    assert len(curves) == 4
    for c in curves:
        t = trials[c["online"], c["seed"]]
        assert len(c["step"]) == len(c["test_error"]) == -(-t["steps_run"] // 100)
        assert c["step"][-1] == t["steps_run"]
        assert c["test_error"][-1] == pytest.approx(t["test_error"])
        if t["success"]:
            first = c["step"][np.argmax(c["test_error"] <= 0.1)]
            assert first == t["first_hit"]
    # (8, 2) parity is easy: online trials (fresh samples every step) learn it too
    assert all(t["success"] for t in results.trials() if t["online"])
    assert parity_jax.cli.main(["check", str(tmp_path / "o")]) == 0


@pytest.mark.slow
def test_killed_at_random_moments_then_resumed_equals_an_uninterrupted_run(tmp_path):
    config = tmp_path / "faults.toml"
    config.write_text(faults.SMALL)
    study = Study.from_toml(config)
    assert len(kinds.parity.make_plan(study, 40 * 1024).batches) >= 4
    result = faults.kill_and_resume(config, tmp_path, kills=4, seed=1, log=lambda _: None)
    total = len(study.cells()) * study.seeds
    assert result["trials"] == total
    # at least one kill landed with part of the study stored
    assert any(w.startswith("killed") and 0 < n < total for w, n in result["runs"])


@pytest.mark.slow
def test_ctrl_c_stops_after_the_batch_in_flight_and_the_same_command_resumes(tmp_path):
    config = tmp_path / "faults.toml"
    config.write_text(faults.SMALL)
    out = tmp_path / "out"
    cmd = faults.command(config, out, "40K")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while faults.count(out) == 0 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    assert "Traceback" not in err
    stored = faults.count(out)
    total = len(Study.from_toml(config).cells()) * 3
    assert 0 < stored < total
    subprocess.run(cmd, check=True, capture_output=True)
    assert faults.count(out) == total


def _small_study(**train):
    return Study(name="faults", seeds=2, task=Task(n=10, k=2, m=[60], n_test=100),
                 model=Model(width=[8, 16]), train=Train(steps=300, batch=8, **train))


def _stored(out):
    with sqlite3.connect(out / "results.sqlite") as conn:
        return conn.execute("SELECT * FROM trials ORDER BY cell, seed").fetchall()


@pytest.mark.slow
def test_a_full_disk_gives_a_clear_error_and_keeps_the_stored_trials(tmp_path):
    study = _small_study()
    out = tmp_path / "o"
    parity_jax.run(study, out, progress=None)
    before = _stored(out)
    s = store.Store.open(out)
    try:
        s.conn.execute("DELETE FROM trials WHERE seed = 1")  # room to resume into...
        s.conn.commit()
        pages = s.conn.execute("PRAGMA page_count").fetchone()[0]
        s.conn.execute(f"PRAGMA max_page_count = {pages}")  # ...but a full disk
        big = [(0, 100 + i, 0, None, 0.5, 0.5, 1, 0) for i in range(5000)]
        with pytest.raises(errors.StoreError, match="cannot write.*full"):
            s.add_trials(big)
        assert s.conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == len(before) // 2
    finally:
        s.close()


@pytest.mark.slow
def test_a_read_only_store_gives_exit_2_and_is_not_touched(tmp_path, monkeypatch, capsys):
    config = tmp_path / "s.toml"
    config.write_text(faults.SMALL.replace("seeds = 3", "seeds = 1"))
    out = tmp_path / "o"
    assert cli.main(["run", str(config), "--out", str(out), "--memory-budget", "40K"]) == 0
    s = store.Store.open(out)
    s.conn.execute("DELETE FROM trials WHERE cell >= 2")
    s.conn.commit()
    s.close()
    before = _stored(out)
    data = (out / "results.sqlite").read_bytes()
    real_connect = sqlite3.connect
    monkeypatch.setattr(store.sqlite3, "connect", lambda path, **kw: real_connect(
        f"file:{path}?mode=ro", uri=True, **kw))
    capsys.readouterr()
    assert cli.main(["run", str(config), "--out", str(out), "--memory-budget", "40K"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out: cannot write to"), err
    assert "readonly" in err[0]
    monkeypatch.undo()
    assert _stored(out) == before and (out / "results.sqlite").read_bytes() == data


@pytest.mark.slow
def test_a_diverging_trial_is_frozen_and_marked_and_its_batchmates_are_unaffected(tmp_path):
    # 2 cells x 5 seeds of one stream: 8 groups of 2, one of them [lr 0.1, lr 1e3]
    base = dict(name="diverge", seeds=5, task=Task(n=10, k=2, m=[80], n_test=200),
                model=Model(width=16))
    train = dict(steps=600, batch=8, vary="init", stop_on_success=False)
    mixed = parity_jax.run(Study(**base, train=Train(lr=[0.1, 1e3], **train)),
                           tmp_path / "mixed", progress=None)
    alone = parity_jax.run(Study(**base, train=Train(lr=0.1, **train)), tmp_path / "alone",
                           progress=None)
    bad = [t for t in mixed.trials() if t["lr"] == 1e3]
    assert bad and all(t["diverged"] and not t["success"] and t["test_error"] is None
                       for t in bad)
    # an lr = 1e3 trial shared its group with an lr = 0.1 one (vary = "init")
    p = kinds.parity.make_plan(Study(**base, train=Train(lr=[0.1, 1e3], **train)))
    assert any(len({t.cell for t in row if t}) == 2 for b in p.batches for row in b.slots)
    exact = ("seed", "success", "first_hit", "steps_run", "diverged")
    good = [t for t in mixed.trials() if t["lr"] == 0.1]
    assert [{k: t[k] for k in exact} for t in good] == [{k: t[k] for k in exact}
                                                          for t in alone.trials()]
    for a, b in zip(good, alone.trials(), strict=True):  # other group sizes: float rounding
        assert a["test_error"] == pytest.approx(b["test_error"], abs=1e-6)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    assert not any(t["diverged"] for t in alone.trials())
