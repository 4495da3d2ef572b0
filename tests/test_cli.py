"""CLI: run / report / plot, and every bad input: exit 2, one line, nothing stored touched; the
study name as a directory, JAX_PLATFORMS and Ctrl-C at start-up, help importing no JAX."""

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_TOML, one_error

from parity_jax import ConfigError, StoreError, cli, lock

SMALL = TINY_TOML.replace('name = "tiny"', 'name = "edges"')

TINY = TINY_TOML


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    config = root / "tiny.toml"
    config.write_text(TINY)
    out = root / "out"
    assert cli.main(["run", str(config), "--out", str(out)]) == 0
    return config, out


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_report_plot(tiny_run, capsys):
    config, out = tiny_run
    capsys.readouterr()
    assert cli.main(["report", str(out), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 8
    required = {"n", "k", "width", "depth", "m", "init", "s", "lr", "wd", "loss", "steps",
                "trials", "successes", "p", "ci_low", "ci_high", "median_first_hit"}
    assert required <= set(records[0])
    assert all(r["trials"] == 2 for r in records)
    assert cli.main(["report", str(out), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 9 and "ci_low" in lines[0]
    assert cli.main(["report", str(out)]) == 0
    assert "frontier" in capsys.readouterr().out
    assert cli.main(["plot", str(out)]) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["heatmap_dense.png", "heatmap_sparse-s2.png", "p_vs_steps.png"]
    assert all((out / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_plot_replaces_figures_whole_and_never_writes_through_a_link(tiny_run, tmp_path,
                                                                      monkeypatch, capsys):
    import shutil

    import matplotlib.figure

    out = tmp_path / "out"
    shutil.copytree(tiny_run[1], out)
    old = b"\x89PNG an old, good figure"
    (out / "heatmap_dense.png").write_bytes(old)
    real_savefig = matplotlib.figure.Figure.savefig

    def killed_midway(self, fname, *args, **kwargs):  # half a file, then the process dies
        if hasattr(fname, "write"):
            fname.write(b"\x89PNG half")
        else:
            with open(fname, "wb") as f:
                f.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", killed_midway)
    assert cli.main(["plot", str(out)]) == 130
    assert (out / "heatmap_dense.png").read_bytes() == old
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", real_savefig)
    victim = tmp_path / "victim.png"
    victim.write_bytes(old)
    (out / "heatmap_dense.png").unlink()
    (out / "heatmap_dense.png").symlink_to(victim)
    capsys.readouterr()
    assert cli.main(["plot", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "heatmap_dense.png is a symbolic link" in err[0], err
    assert victim.read_bytes() == old
    (out / "heatmap_dense.png").unlink()
    assert cli.main(["plot", str(out)]) == 0
    assert (out / "heatmap_dense.png").read_bytes()[:4] == b"\x89PNG"


def test_report_says_when_it_waits_for_a_store_another_program_holds(tiny_run, tmp_path,
                                                                     capsys):
    import shutil
    import threading

    out = tmp_path / "out"
    shutil.copytree(tiny_run[1], out)
    other = sqlite3.connect(out / "results.sqlite", isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")  # e.g. the sqlite3 shell, mid-transaction
    threading.Timer(1.5, other.rollback).start()
    capsys.readouterr()
    try:
        assert cli.main(["report", str(out), "--format", "json"]) == 0
    finally:
        other.rollback() if other.in_transaction else None
        other.close()
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 8
    assert captured.err.strip().splitlines() == [
        f"waiting for {out / 'results.sqlite'}: another program holds it locked (up to 30 s) "
        "..."]

def test_rerun_of_a_finished_study_runs_nothing_and_changes_nothing(tiny_run, capsys):
    config, out = tiny_run
    before = _digest(out / "results.sqlite")
    assert cli.main(["run", str(config), "--out", str(out)]) == 0
    assert _digest(out / "results.sqlite") == before


BAD = [
    ("[task]\nn = 5\nk = 6", "task.k"),
    ("[task]\nk = 0", "task.k"),
    ('[model]\ninit = "sparse"\ns = 0', "model.s"),
    ('[task]\nn = 10\n[model]\ninit = "sparse"\ns = 11', "model.s"),
    ("[model]\nwidth = 0", "model.width"),
    ("[task]\nm = [100, 0]", "task.m"),
    ("[train]\nbatch = 0", "train.batch"),
    ("[train]\nsteps = 0", "train.steps"),
    ("[train]\neval_every = 0", "train.eval_every"),
    ("[task]\nn_test = 0", "task.n_test"),
    ("[train]\nlr = 0.0", "train.lr"),
    ("[train]\nlr = -0.1", "train.lr"),
    ("[train]\nwd = -0.01", "train.wd"),
    ("[train]\nthreshold = 1.0", "train.threshold"),
    ("[train]\nthreshold = -0.1", "train.threshold"),
    ("[task]\nnoise = 0.5", "task.noise"),
    ("[task]\nnoise = -0.1", "task.noise"),
    ('[train]\nloss = "mse"', "train.loss"),
    ('[model]\ninit = "orthogonal"', "model.init"),
    ('[train]\nvary = "all"', "train.vary"),
    ("colour = 3", "colour"),
    ("[train]\nmomentum = 0.9", "train.momentum"),
    ("[optim]\nlr = 0.1", "optim"),
    ('[task]\nn = "fifty"', "task.n"),
    ("[train]\nlr = [0.1, true]", "train.lr"),
    ('seeds = "16"', "seeds"),
    ("[task\nn = 3", "config"),
]


@pytest.mark.parametrize("text,field", BAD, ids=[f for _, f in BAD])
def test_bad_config_exit_2_one_line_store_untouched(tiny_run, tmp_path, capsys, text, field):
    _, out = tiny_run
    before = _digest(out / "results.sqlite")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    capsys.readouterr()
    assert cli.main(["run", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {field}"), err
    assert _digest(out / "results.sqlite") == before


def test_missing_config_file(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("error: config: file not found")
    assert not (tmp_path / "o").exists()


def test_out_holding_another_study_is_refused(tiny_run, tmp_path, capsys):
    _, out = tiny_run
    before = _digest(out / "results.sqlite")
    other = tmp_path / "other.toml"
    other.write_text(TINY.replace("seeds = 2", "seeds = 3"))
    assert cli.main(["run", str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another study" in err[0] and err[0].startswith("error: out")
    assert _digest(out / "results.sqlite") == before


@pytest.mark.parametrize("content", [b"not a database at all" * 100, b""])
def test_out_holding_a_file_that_is_not_a_store_is_refused(tiny_run, tmp_path, capsys,
                                                           content):
    config, _ = tiny_run
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.sqlite").write_bytes(content)
    assert cli.main(["run", str(config), "--out", str(out)]) == 2
    assert "not a parity_jax results store" in capsys.readouterr().err
    assert (out / "results.sqlite").read_bytes() == content


def test_out_that_is_a_file_or_a_foreign_directory(tiny_run, tmp_path, capsys):
    config, _ = tiny_run
    f = tmp_path / "file"
    f.write_text("keep me")
    assert cli.main(["run", str(config), "--out", str(f)]) == 2
    assert f.read_text() == "keep me"
    d = tmp_path / "d"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    assert cli.main(["run", str(config), "--out", str(d)]) == 2
    assert [p.name for p in d.iterdir()] == ["notes.txt"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error: out") for e in err)


def test_report_on_a_missing_store(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error: out: no results store")


def test_bad_arguments(capsys):
    assert cli.main(["report", "x", "--format", "xml"]) == 2
    assert cli.main(["run", "--memory-budget", "lots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error: ") for e in err)


def test_console_script_exit_status_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[task]\nn = 5\nk = 6\n")
    proc = subprocess.run([sys.executable, "-m", "parity_jax.cli", "run", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: task.k = 6: must be an integer in 1..n (n = 5)"]


TABULAR = """
name = "tiny-tabular"
seeds = 2
datasets = ["sklearn:wine", "parity:rows=300,features=5,k=2"]
fractions = [1.0, 0.5]
[mlp]
width = [8]
init = ["dense", "sparse"]
s = [2]
optimizer = "sgd"
lr = [0.05]
batch = 16
steps = 100
eval_every = 50
[forest]
iterations = 2
n_estimators_max = 20
"""


@pytest.mark.slow
def test_a_tabular_config_runs_checks_reports_and_resumes_through_the_one_driver(tmp_path,
                                                                                 capsys):
    config = tmp_path / "tab.toml"
    config.write_text(TABULAR)
    out = tmp_path / "out"
    assert cli.main(["plan", str(config)]) == 0
    text = capsys.readouterr().out
    assert "estimated peak" in text and "adam" not in text and "sgd (vmapped)" in text
    assert cli.main(["run", str(config), "--out", str(out)]) == 0
    assert (out / "results.sqlite").is_file() and not (out / "tabular").exists()
    capsys.readouterr()
    assert cli.main(["check", str(out)]) == 0
    assert "complete; no problems" in capsys.readouterr().out
    assert cli.main(["report", str(out), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    # 2 datasets x 2 fractions x (dense MLP, sparse MLP, forest)
    assert len(records) == 12 and {r["family"] for r in records} == {"dense", "sparse",
                                                                       "forest"}
    assert all(r["seeds"] == 2 and 0 <= r["test_error"] <= 1 for r in records)
    before = _digest(out / "results.sqlite")
    assert cli.main(["run", str(config), "--out", str(out)]) == 0  # complete: nothing to do
    assert _digest(out / "results.sqlite") == before
    # shards merge into the same trials
    for i in range(2):
        assert cli.main(["run", str(config), "--out", str(tmp_path / f"s{i}"),
                         "--shard", f"{i}/2"]) == 0
        assert cli.main(["check", str(tmp_path / f"s{i}")]) == 0
    assert cli.main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out",
                     str(tmp_path / "merged")]) == 0
    from parity_jax import Results

    def rows(d):
        return sorted(json.dumps(r, sort_keys=True) for r in Results(d).trials())

    assert rows(tmp_path / "merged") == rows(out)


def test_a_directory_of_the_earlier_tabular_format_is_refused(tmp_path, capsys):
    config = tmp_path / "tab.toml"
    config.write_text(TABULAR)
    old = tmp_path / "old" / "tabular"
    old.mkdir(parents=True)
    (old / "sklearn_wine-0123abcd.json").write_text("{}")
    capsys.readouterr()
    assert cli.main(["run", str(config), "--out", str(tmp_path / "old")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "earlier JSON-parts format" in err[0] and "new --out" in err[0]
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["tabular"]


def test_importing_the_package_changes_no_jax_setting():
    code = "import jax, parity_jax; print(jax.config.jax_num_cpu_devices)"
    env = {k: v for k, v in __import__("os").environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "-1", done.stderr


def test_a_store_error_is_not_a_config_error_yet_exits_2_with_one_line(tmp_path, capsys):
    from parity_jax import StoreError

    assert not issubclass(StoreError, ConfigError)
    capsys.readouterr()
    assert cli.main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: out: no results store")


@pytest.mark.parametrize("name", ["../../escaped", "TMP/abs/dir", "..", ".", "a/b"])
def test_a_study_name_is_one_directory_under_runs_or_refused(tmp_path, monkeypatch, capsys,
                                                              name):
    name = name.replace("TMP", str(tmp_path))  # an absolute path (within the test's own)
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    config = work / "s.toml"
    config.write_text(SMALL.replace('name = "edges"', f"name = {name!r}".replace("'", '"')))
    assert cli.main(["run", str(config)]) == 2
    assert one_error(capsys).startswith(f"error: name = {name!r}: cannot name a directory "
                                         "under runs/")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "s.toml", "work"]
    assert cli.main(["plan", str(config)]) == 0  # a name is a label: only a path when used so
    out = tmp_path / "o"
    assert cli.main(["run", str(config), "--out", str(out)]) == 0
    assert (out / "results.sqlite").is_file()


def test_a_loop_of_symbolic_links_as_out_is_one_error_line(tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    for out in ("loop", "loop/sub", "a"):
        assert cli.main(["run", str(config), "--out", str(tmp_path / out)]) == 2
        assert "a loop of symbolic links" in one_error(capsys)
        with pytest.raises(StoreError, match="a loop of symbolic links"):
            with lock.lock(tmp_path / out):
                pass


_CLI = [sys.executable, "-c", "import sys; print('up', flush=True); "
        "from parity_jax.__main__ import main; sys.exit(main(sys.argv[1:]))"]  # the console script


def _cli_env(**extra) -> dict:
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": root, "PARITY_JAX_CACHE": "off", **extra}


@pytest.mark.slow
@pytest.mark.parametrize("platforms", ["nosuchplatform", "cuda,nosuch"])
def test_jax_platforms_naming_a_platform_jax_cannot_start_is_one_line(tmp_path, platforms):
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    for argv in (["plan", str(config)], ["run", str(config), "--out", str(tmp_path / "o")]):
        p = subprocess.run([*_CLI, *argv], capture_output=True, text=True, timeout=300,
                           env=_cli_env(JAX_PLATFORMS=platforms))
        err = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(err) == 1, p.stderr
        assert err[0].startswith(f"error: JAX_PLATFORMS = {platforms!r}: JAX cannot start it")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5])
def test_ctrl_c_while_the_command_line_starts_is_a_clean_exit(tmp_path, delay):
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    p = subprocess.Popen([*_CLI, "run", str(config), "--out", str(tmp_path / "o")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=_cli_env())
    assert p.stdout.readline().strip() == "up"  # past the interpreter's own start-up
    time.sleep(delay)  # within the imports of parity_jax and JAX (about a second or more)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "interrupted" in err


def test_importing_the_package_and_help_import_no_jax():
    code = ("import sys, contextlib, io, parity_jax\n"
            "from parity_jax.__main__ import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['--help'])\n"
            "print(parity_jax.Study.__name__, 'jax' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=_cli_env())
    assert p.stdout.split() == ["Study", "False"], p.stderr
