"""Hardened edges: config bounds and encodings, the Python API's wrong types, one writer per
output directory, output paths checked before work, corrupt stores, tabular data edges."""

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import TINY_TOML

import parity_jax
from parity_jax import (
    ConfigError,
    Model,
    StoreError,
    Study,
    TabularStudy,
    Task,
    Train,
    cli,
    datasets,
    experiment,
    lock,
    store,
)
from parity_jax import config as cfg

SMALL = TINY_TOML.replace('name = "tiny"', 'name = "edges"')


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# ---- configs: encodings and bounds, checked by `plan` and `run` before anything runs ----------

@pytest.mark.parametrize("data,says", [
    ('name = "caf\xe9"\n'.encode("latin-1"), "is not UTF-8 text (byte 0xe9 on line 1)"),
    (bytes(range(128, 256)), "is not UTF-8 text (byte 0x80 on line 1)"),
    (b"seeds = " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    (b"seed = " + b"9" * 5000, "cannot parse"),
])
def test_an_unreadable_config_is_one_error_line(tmp_path, capsys, data, says):
    path = tmp_path / "bad.toml"
    path.write_bytes(data)
    for command in ("plan", "run"):
        assert cli.main([command, str(path), *(["--out", str(tmp_path / "o")]
                                               if command == "run" else [])]) == 2
        assert says in _one_error(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory", "huge"])
def test_a_config_that_is_no_small_regular_file_is_refused_at_once(tmp_path, capsys, kind):
    path = {"dev-zero": Path("/dev/zero"), "fifo": tmp_path / "fifo.toml",
            "directory": tmp_path, "huge": tmp_path / "huge.toml"}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # no writer: reading it would wait for ever
    if kind == "huge":
        path.write_bytes(SMALL.encode() + b"# padding\n" * 200_000)  # 2 MB, valid TOML
    says = {"dev-zero": "is not a regular file", "fifo": "is not a regular file",
            "directory": "is a directory", "huge": "is larger than 1 MiB"}[kind]

    def too_slow(*_):
        raise TimeoutError("the config was waited on (or read whole)")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(20)
    try:
        for command in ("plan", "run"):
            assert cli.main([command, str(path), *(["--out", str(tmp_path / "o")]
                                                   if command == "run" else [])]) == 2
            assert f"config: {path} {says}" in _one_error(capsys)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert not (tmp_path / "o").exists()


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
    assert _one_error(capsys).startswith(f"error: name = {name!r}: cannot name a directory "
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
        assert "a loop of symbolic links" in _one_error(capsys)
        with pytest.raises(StoreError, match="a loop of symbolic links"):
            with lock.lock(tmp_path / out):
                pass


def test_a_utf8_config_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + SMALL.encode())
    assert cfg.load_study(path).name == "edges"


BOUNDS = [
    ("[model]\nwidth = 3000000000", "model.width = 3000000000: must be an integer in "
     "1..2147483647"),
    ("[task]\nm = 3000000000", "task.m = 3000000000: must be an integer in 1..2147483647"),
    ("[train]\nsteps = 3000000000", "train.steps = 3000000000: must be an integer in "
     "1..1000000000"),
    ("[train]\nbatch = 1000000000000", "train.batch = 1000000000000: must be an integer in "
     "1..2147483647"),
    ("[train]\neval_every = 1000000000000", "train.eval_every = 1000000000000: must be an "
     "integer in 1..1000000000"),
    ("seed = 18446744073709551615", "seed = 18446744073709551615: must be an integer in "
     "0..4294967295"),
    ("[task]\nn_test = 1000000000000", "task.n_test = 1000000000000: must be an integer in "
     "1..2147483647"),
    ("[train]\ndata_seed = 2147483648", "train.data_seed = 2147483648: must be an integer in "
     "0..2147483647"),
    ("seeds = 1000000000", "seeds = 1000000000: must be an integer in 1..1000000"),
    ("seeds = 1000000\n[model]\nwidth = [1, 2]", "seeds = 1000000: 2 cells x 1000000 seeds = "
     "2000000 trials; a study may hold at most 1000000"),
    ("[task]\nn = 1000000000", "model.width = 100: must be at most 2 for n = 1000000000 "
     "(n x width <= 2147483647"),
    ("[task]\nn = 1000\nn_test = 3000000", "task.n_test = 3000000: must be at most 2147483 "
     "for n = 1000"),
    ("[task]\nn = 1000\nm = 3000000", "task.m = 3000000: must be at most 2147483 for n = 1000"),
    ("[model]\nwidth = 50000\ndepth = 2", "model.width = 50000: must be at most 46340 for "
     "depth = 2"),
    ("[model]\ndepth = 17", "model.depth = 17: must be an integer in 1..16"),
    ("[model]\nwidth = 40000000\n[train]\nbatch = 100", "train.batch = 100: must be at most "
     "53 for n = 50, width = 40000000"),
    ("[train]\nrecord_curves = true\nsteps = 1000000000\neval_every = 1",
     "train.eval_every = 1: must be at least 1000 for steps = 1000000000 with record_curves"),
    ("[train]\nlr = 1e400", "train.lr = inf: must be a number > 0.0"),
    ('name = "a\\u0000b"', r"name = 'a\x00b': must be a string without control characters"),
    ('name = ""', "name = '': must be a non-empty string"),
    ('"a\\nb" = 1', r"'a\nb': unknown key"),
    (f"seed = 0x{'f' * 5000}", "seed = <a 20000-bit integer>: must be an integer in "
     "0..4294967295"),
]


@pytest.mark.parametrize("text,message", BOUNDS, ids=[m.split(" ")[0] for _, m in BOUNDS])
def test_sizes_past_the_engine_are_refused_by_plan_and_run_at_once(tmp_path, capsys, text,
                                                                     message):
    path = tmp_path / "big.toml"
    path.write_text(text + "\n")
    start = time.perf_counter()
    assert cli.main(["plan", str(path)]) == 2
    assert _one_error(capsys).startswith(f"error: {message}")
    assert cli.main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    assert _one_error(capsys).startswith(f"error: {message}")
    assert time.perf_counter() - start < 10  # no grid of 10^9 cells or trials is built first
    assert not (tmp_path / "o").exists()


def test_a_grid_of_too_many_cells_is_refused_before_it_is_built():
    big = list(range(1, 1001))
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"^grid = 1000000000 cells: a study may have at most "
                                          r"100000"):
        Study(seeds=1, task=Task(n=10, m=big, n_test=big), model=Model(width=big)).validate()
    assert time.perf_counter() - start < 5


def test_the_largest_seed_is_a_seed_jax_keeps_apart_from_the_others():
    # jax.random.key keeps 32 bits (without x64): 2**32 would be seed 0 again
    data = [tuple(np.asarray(jax.random.key_data(jax.random.key(s)))) for s in
            (0, cfg.SEED_MAX, cfg.SEED_MAX - 1)]
    assert len(set(data)) == 3
    assert tuple(np.asarray(jax.random.key_data(jax.random.key(cfg.SEED_MAX + 1)))) == data[0]
    Study(seed=cfg.SEED_MAX).validate()
    with pytest.raises(ConfigError, match="seed = 4294967296"):
        Study(seed=cfg.SEED_MAX + 1).validate()


def test_the_largest_trials_and_int32_sizes_still_plan(tmp_path, capsys):
    path = tmp_path / "edge.toml"
    path.write_text("seed = 4294967295\nseeds = 3\n[task]\nn = 8\nk = 2\nm = 16\nn_test = 16\n"
                    "[model]\nwidth = 268435455\n[train]\nsteps = 1000000000\n"
                    "eval_every = 1000000000\nbatch = 8\ndata_seed = 2147483647\n")
    code = cli.main(["plan", str(path)])
    out = capsys.readouterr()
    assert code == 0 or (code == 2 and out.err.startswith("error: ")), out.err  # or the budget


def test_every_shipped_config_is_within_the_bounds():
    here = Path(__file__).resolve().parent.parent
    paths = sorted((here / "experiments").glob("*.toml")) + sorted(
        (here / "benchmarks" / "scale").glob("*.toml"))
    assert len(paths) > 10
    for path in paths:
        d = cfg.read_toml(path)
        d.pop("lottery", None)
        (TabularStudy if "datasets" in d else Study).from_dict(d).validate()


# ---- the Python API: the CLI's checks, as ConfigError ---------------------------------------

@pytest.mark.parametrize("call,message", [
    (lambda: Study(task={"n": 3}).validate(), "task: must be a Task"),
    (lambda: Study(task=Task(n="8")).validate(), "task.n = '8': must be an integer"),
    (lambda: Study(model=Model(width=[4, 2**40])).validate(), "model.width = 1099511627776"),
    (lambda: Study(train=Train(lr=float("nan"))).validate(), "train.lr = nan"),
    (lambda: parity_jax.run("x", out="o"), "study = 'x': must be a parity_jax.Study"),
    (lambda: parity_jax.run(Study(), out=123), "out = 123: must be a directory path"),
    (lambda: parity_jax.Results(None), "out = None: must be a directory path"),
    (lambda: Study.from_toml(123), "config = 123: must be a file path"),
    (lambda: Study.from_toml("a\x00b.toml"), "config = 'a\\x00b.toml': cannot read it"),
    (lambda: TabularStudy(fractions=[0.5, 2]).validate(), "fractions = 2"),
])
def test_python_api_errors_are_config_errors(call, message):
    with pytest.raises(ConfigError) as e:
        call()
    assert str(e.value).startswith(message), str(e.value)


@pytest.mark.slow
def test_frontier_target_is_checked_like_the_cli(tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text(SMALL.replace("m = [40, 80]", "m = 40").replace("width = [4, 8]",
                                                                       "width = 4"))
    out = tmp_path / "o"
    results = parity_jax.run(cfg.load_study(config), out, progress=None)
    for target in (2, 0, True, "0.5"):
        with pytest.raises(ConfigError, match="target = .*: must be a number in \\(0, 1\\]"):
            results.frontier(target)
    assert cli.main(["report", str(out), "--target", "2"]) == 2
    assert "--target = 2.0: must be a number in (0, 1]" in _one_error(capsys)


# ---- environment and signals: one line, exit 2 (or 130), never a traceback ---------------------

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


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_bad_cpu_device_count_is_one_line_naming_the_variable(tmp_path, monkeypatch, capsys,
                                                                value):
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    monkeypatch.setenv("PARITY_JAX_CPU_DEVICES", value)
    for argv in (["plan", str(config)], ["run", str(config), "--out", str(tmp_path / "o")]):
        assert cli.main(argv) == 2
        assert _one_error(capsys) == (f"error: PARITY_JAX_CPU_DEVICES = {value!r}: must be an "
                                      "integer >= 1 (the JAX CPU devices to split the CPU "
                                      "into), or unset (one per core)")
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


# ---- messages name the thing that is wrong -----------------------------------------------------

def test_sizes_print_in_units_that_show_them():
    from parity_jax import render

    assert [render.size(n) for n in (0, 1000, 1536, 3 << 20, 2**28, 10 * 2**30)] == [
        "0 B", "1000 B", "1.5 KiB", "3.0 MiB", "0.25 GiB", "10.00 GiB"]


def test_a_memory_budget_rounding_to_zero_is_refused_and_a_small_one_shown_as_it_is(
        tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    for budget in ("0.5", "0.0001K", "-1M", "0"):
        assert cli.main(["plan", str(config), f"--memory-budget={budget}"]) == 2
        assert _one_error(capsys) == (f"error: --memory-budget = {budget!r}: must be a positive "
                                      "size of at least one byte, like 8G or 512M")
    assert cli.main(["plan", str(config), "--memory-budget", "1000"]) == 2
    err = _one_error(capsys)
    assert "over the memory budget of 1000 B" in err and "0.00 GiB" not in err, err
    assert cli.main(["plan", str(config), "--memory-budget", "512K"]) == 0
    assert "memory budget 512.0 KiB" in capsys.readouterr().out


def test_a_bad_merge_input_is_named_as_the_input_not_as_out(tmp_path, capsys):
    missing, foreign = tmp_path / "missing", tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.sqlite").write_bytes(b"not a database at all" * 100)
    for bad in (missing, foreign):
        assert cli.main(["merge", str(bad), "--out", str(tmp_path / "m")]) == 2
        err = _one_error(capsys)
        assert err.startswith(f"error: merge: input {bad}: ") and "out:" not in err, err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("argv,says", [
    (["--trials", "2000000000"], "--trials = '2000000000': 2000000000 is past the engine's "
                                 "limits for the benchmark's workload (seeds = 2000000000"),
    (["--widths", "3000000000"], "--widths = '3000000000': 3000000000 is past the engine's "
                                 "limits for the benchmark's workload (model.width = "),
    (["--widths", "10,50000000", "--trials", "1"], "--widths = '10,50000000': 50000000 is past"),
])
def test_bench_sizes_past_the_engine_name_the_flag_before_anything_is_timed(monkeypatch, capsys,
                                                                          argv, says):
    from parity_jax import bench

    def timed(*a, **kw):
        raise AssertionError("timed before refusing")

    monkeypatch.setattr(bench, "gemm_peak", timed)
    monkeypatch.setattr(bench, "run_bench", timed)
    assert cli.main(["bench", *argv]) == 2
    assert _one_error(capsys).startswith(f"error: {says}")

# ---- one writer per output directory -------------------------------------------------------

def test_lock_is_exclusive_reentrant_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "new" / "o"
    with lock.lock(out):
        assert (out / ".lock").read_text().strip() == str(os.getpid())
        with lock.lock(out):  # re-entrant in the holding thread
            assert lock.holds(out)
        assert lock.holds(out)
        import threading

        seen = []

        def other():
            try:
                with lock.lock(out):
                    seen.append("got it")
            except StoreError as e:
                seen.append(str(e))

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert seen == [f"out: {out} is in use by another run (process {os.getpid()}); wait "
                        "for it or use another --out"]
    assert not out.exists()  # it made the directory and nothing was written: removed again
    out.mkdir()
    with lock.lock(out):
        pass
    assert out.is_dir() and list(out.iterdir()) == []


_HOLD = """
import sys, time
from parity_jax import lock
with lock.lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_another_process_holding_out_is_refused_and_a_killed_one_never_blocks(tmp_path):
    out = tmp_path / "o"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match=f"in use by another run \\(process {holder.pid}\\)"):
            with lock.lock(out):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / ".lock").exists()  # left by the killed process...
    with lock.lock(out):  # ...never blocks: the kernel released its flock
        assert (out / ".lock").read_text().strip() == str(os.getpid())


def test_an_unwritable_out_is_refused_before_anything_is_computed(tmp_path, monkeypatch,
                                                                   capsys):
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    out = tmp_path / "o"
    real_open = os.open

    def read_only(path, flags, *args, **kw):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kw)

    from parity_jax import devices

    def no_training(*a, **kw):
        raise AssertionError("computed before refusing")

    monkeypatch.setattr(devices, "train_on_devices", no_training)
    monkeypatch.setattr(store.os, "open", read_only)
    assert cli.main(["run", str(config), "--out", str(out)]) == 2
    assert _one_error(capsys) == f"error: out: cannot write to {out}: Read-only file system"
    monkeypatch.setattr(store.os, "open", real_open)
    assert not out.exists()


def test_a_read_only_store_is_refused_before_a_resume_computes(tmp_path, monkeypatch, capsys):
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    out = tmp_path / "o"
    assert cli.main(["run", str(config), "--out", str(out)]) == 0
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("DELETE FROM trials WHERE seed = 1")
    conn.close()
    data = (out / "results.sqlite").read_bytes()
    from parity_jax import devices

    def no_training(*a, **kw):
        raise AssertionError("computed before refusing")

    real_connect = sqlite3.connect
    monkeypatch.setattr(devices, "train_on_devices", no_training)
    monkeypatch.setattr(store.sqlite3, "connect", lambda path, **kw: real_connect(
        f"file:{path}?mode=ro", uri=True, **kw))
    capsys.readouterr()
    assert cli.main(["run", str(config), "--out", str(out)]) == 2
    err = _one_error(capsys)
    assert err.startswith(f"error: out: cannot write to {out}") and "readonly" in err
    monkeypatch.undo()
    assert (out / "results.sqlite").read_bytes() == data and not (out / ".lock").exists()


def test_a_stale_lock_file_and_creation_leftovers_do_not_make_out_foreign(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / ".lock").write_text("12345\n")  # a killed run's
    (out / "results.sqlite.tmp").write_bytes(b"half")  # its creation cut off
    study = Study(name="x", seeds=1, task=Task(n=8, k=2, m=16, n_test=16), model=Model(width=4),
                  train=Train(steps=10, batch=4, eval_every=5))
    s = store.Store.open_for_run(out, study, study.cells(), {})
    s.close()
    assert sorted(p.name for p in out.iterdir()) == ["results.sqlite"]


# ---- never written through a link -----------------------------------------------------------

def _victim(tmp_path) -> tuple[Path, bytes]:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n" * 3)
    return victim, victim.read_bytes()


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path, capsys, how):
    victim, data = _victim(tmp_path)
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    out = tmp_path / "o"
    out.mkdir()
    if how == "symlink":
        (out / ".lock").symlink_to(victim)
    else:
        os.link(victim, out / ".lock")
    says = "is a symbolic link" if how == "symlink" else "is a hard link to another file"
    assert cli.main(["run", str(config), "--out", str(out)]) == 2
    err = _one_error(capsys)
    assert says in err and f"{out}/.lock" in err, err
    with pytest.raises(StoreError, match=says):  # what merge --out takes too
        with lock.lock(out):
            pass
    assert victim.read_bytes() == data  # not truncated, no process id written into it
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


def test_a_lock_file_that_is_a_fifo_is_refused_at_once(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    os.mkfifo(out / ".lock")
    with pytest.raises(StoreError, match="is not a regular file"):
        with lock.lock(out):
            pass


@pytest.mark.parametrize("name", ["results.sqlite", "results.sqlite-journal"])
def test_a_store_file_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path, name):
    victim, data = _victim(tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    (out / name).symlink_to(victim)
    study = Study(name="x", seeds=1, task=Task(n=8, k=2, m=16, n_test=16), model=Model(width=4),
                  train=Train(steps=10, batch=4, eval_every=5))
    with pytest.raises(StoreError, match=f"{out / name} is a symbolic link"):
        store.Store.open_for_run(out, study, study.cells(), {})
    assert victim.read_bytes() == data


def test_bench_refuses_links_and_devices_as_outputs_before_benchmarking(tmp_path, monkeypatch,
                                                                        capsys):
    from parity_jax import bench

    def no_bench(*a, **kw):
        raise AssertionError("benchmarked before refusing")

    monkeypatch.setattr(bench, "run_bench", no_bench)
    victim, data = _victim(tmp_path)
    (tmp_path / "link.json").symlink_to(victim)
    os.mkfifo(tmp_path / "fifo.json")
    for path, says in [(tmp_path / "link.json", "is a symbolic link"),
                       ("/dev/full", "is not a regular file"),
                       (tmp_path / "fifo.json", "is not a regular file")]:
        assert cli.main(["bench", "--json", str(path)]) == 2
        assert f"--json = '{path}': {says}" in _one_error(capsys)
    assert victim.read_bytes() == data


def test_an_output_file_is_replaced_whole_and_never_written_through_a_link(tmp_path):
    from parity_jax import files

    victim, data = _victim(tmp_path)
    target = tmp_path / "report.json"
    target.write_text("old\n")
    target.chmod(0o640)

    def half(f):
        f.write(b"new but")
        raise KeyboardInterrupt  # a kill mid-write

    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(target, half)
    assert target.read_text() == "old\n"  # the old file survives whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "victim.txt"]
    files.write_text(target, "new\n")
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == 0o640
    (tmp_path / "link.json").symlink_to(victim)
    with pytest.raises(files.OutputError, match="link.json is a symbolic link"):
        files.write_text(tmp_path / "link.json", "x")
    assert victim.read_bytes() == data


# a few seconds of training after the compile: the second run arrives while the first computes
CONCURRENT = SMALL.replace("steps = 200", "steps = 400\nstop_on_success = false")


@pytest.mark.slow
def test_two_runs_on_one_new_out_one_writes_the_other_is_refused_at_once(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text(CONCURRENT)
    out = tmp_path / "o"
    argv = [sys.executable, "-m", "parity_jax.cli", "run", str(config), "--out", str(out)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    start = time.perf_counter()
    ended = {}
    while len(ended) < 2:
        for i, p in enumerate(procs):
            if i not in ended and p.poll() is not None:
                ended[i] = time.perf_counter() - start
        time.sleep(0.05)
    codes = sorted(p.returncode for p in procs)
    texts = [p.communicate() for p in procs]
    assert codes == [0, 2], texts
    loser = next(i for i, p in enumerate(procs) if p.returncode == 2)
    winner = 1 - loser
    err = texts[loser][1].strip().splitlines()
    assert err == [f"error: out: {out} is in use by another run (process {procs[winner].pid}); "
                   "wait for it or use another --out"], texts[loser]
    assert ended[loser] < ended[winner]  # refused at once, while the other computed
    assert cli.main(["check", str(out)]) == 0
    single = tmp_path / "single"
    assert cli.main(["run", str(config), "--out", str(single)]) == 0

    def rows(d):
        return parity_jax.Results(d).trials()

    assert rows(out) == rows(single) and len(rows(out)) == 16
    assert sorted(p.name for p in out.iterdir()) == ["results.sqlite"]


def test_merge_into_an_out_in_use_is_refused(tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    a = tmp_path / "a"
    assert cli.main(["run", str(config), "--out", str(a)]) == 0
    busy = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(busy)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert cli.main(["merge", str(a), "--out", str(busy)]) == 2
        assert f"is in use by another run (process {holder.pid})" in _one_error(capsys)
    finally:
        holder.kill()
        holder.wait()
    assert not (busy / "results.sqlite").exists()


# ---- output paths are checked before the work ----------------------------------------------

def test_bench_checks_its_output_files_before_benchmarking(tmp_path, monkeypatch, capsys):
    from parity_jax import bench

    def no_bench(*a, **kw):
        raise AssertionError("benchmarked before refusing")

    monkeypatch.setattr(bench, "run_bench", no_bench)
    for flag, path, says in [
        ("--json", "/nonexistent/dir/x.json", "--json = '/nonexistent/dir/x.json': no such "
                                              "directory '/nonexistent/dir'"),
        ("--markdown", str(tmp_path), "is a directory"),
        ("--json", str(tmp_path / "f.txt" / "x.json"), "no such directory"),
    ]:
        (tmp_path / "f.txt").write_text("x")
        assert cli.main(["bench", flag, path]) == 2
        assert says in _one_error(capsys)


def test_an_experiment_checks_out_before_its_work(tmp_path, monkeypatch, capsys):
    called = []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out, says in [(blocker, "exists and is not a directory"),
                      (blocker / "sub", "is not a directory")]:
        monkeypatch.setattr(sys, "argv", ["fig2.py", "--out", str(out)])
        assert experiment.main("doc", tmp_path, "fig2", lambda c, o: called.append(o)) == 2
        assert says in _one_error(capsys)
    assert called == []


# ---- check: a store SQLite cannot read is a problem (exit 1) ---------------------------------

def test_check_says_a_corrupt_store_is_a_problem_and_a_foreign_file_is_no_store(tmp_path,
                                                                               capsys):
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    out = tmp_path / "o"
    assert cli.main(["run", str(config), "--out", str(out)]) == 0
    data = (out / "results.sqlite").read_bytes()
    damaged = {"truncated": data[:len(data) // 3],
               "overwritten": data[:4096] + b"\xff" * 4096 + data[8192:]}
    for name, content in damaged.items():
        d = tmp_path / name
        d.mkdir()
        (d / "results.sqlite").write_bytes(content)
        capsys.readouterr()
        assert cli.main(["check", str(d)]) == 1, name
        text = capsys.readouterr().out
        assert "problem: " in text and "database is corrupt" in text, text
        assert cli.main(["report", str(d)]) == 2  # every other command: an error line
        assert "database is corrupt" in _one_error(capsys)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.sqlite").write_bytes(b"not a database at all" * 100)
    assert cli.main(["check", str(foreign)]) == 2
    assert "not a parity_jax results store" in _one_error(capsys)
    assert cli.main(["check", str(tmp_path / "nothing")]) == 2
    assert "no results store" in _one_error(capsys)


# ---- tabular data edges ----------------------------------------------------------------------

def test_rows_with_nan_or_inf_are_dropped_and_counted_when_too_few_remain(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\nnan,1,0\ninf,2,1\n3,-inf,0\n,4,1\n")
    with pytest.raises(datasets.DataError, match="needs two classes, found 0 in the 0 rows left "
                                                "after dropping 4 of 4 that hold a missing or "
                                                "non-finite value"):
        datasets.load(str(path))
    rows = ["a,b,y"] + [f"{i},{i % 3},{i % 2}" for i in range(6)] + ["nan,1,0"] * 20
    path.write_text("\n".join(rows) + "\n")
    table = datasets.load(str(path))
    assert len(table.y) == 6 and table.dropped == 20
    with pytest.raises(datasets.DataError, match=r"6 rows \(left after dropping 20 of 26"):
        datasets.split(table)


@pytest.mark.parametrize("fractions,batch,message", [
    ([1.0, 0.001], 64, "fractions = 0.001: leaves 1 training row of dataset 'sklearn:wine' "
                       "(124 in its training split); a fraction must leave at least 10 rows"),
    ([0.05], 8, "fractions = 0.05: leaves 6 training rows of dataset 'sklearn:wine' (124 in "
                "its training split); a fraction must leave at least mlp.batch = 8 rows"),
])
def test_a_fraction_leaving_too_few_training_rows_is_an_error(tmp_path, capsys, fractions,
                                                              batch, message):
    path = tmp_path / "t.toml"
    path.write_text(f'datasets = ["sklearn:wine"]\nfractions = {fractions}\n[mlp]\n'
                    f"batch = {batch}\n")
    assert cli.main(["plan", str(path)]) == 2
    assert _one_error(capsys) == f"error: {message}"


def test_library_warnings_never_print_before_the_error_line(tmp_path):
    def offline(**kw):
        warnings.warn("A network error occurred while downloading; retrying", UserWarning,
                      stacklevel=2)
        raise OSError("Temporary failure in name resolution")

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(datasets.DataError, match="openml:999999999"):
            datasets.load("openml:999999999", cache=tmp_path, fetch=offline)
    assert seen == []
