"""lock: one writer per output directory -- exclusive, reentrant, nothing left behind; another
process refused at once, a killed one never blocks; links and FIFOs as the lock refused."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import HOLD_LOCK, TINY_TOML, make_victim, one_error

import parity_jax
from parity_jax import Model, StoreError, Study, Task, Train, cli, lock, store

pytestmark = pytest.mark.quick  # pure Python: make test-quick

SMALL = TINY_TOML.replace('name = "tiny"', 'name = "edges"')


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


def test_another_process_holding_out_is_refused_and_a_killed_one_never_blocks(tmp_path):
    out = tmp_path / "o"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE,
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
    assert one_error(capsys) == f"error: out: cannot write to {out}: Read-only file system"
    monkeypatch.setattr(store.os, "open", real_open)
    assert not out.exists()


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


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path, capsys, how):
    victim, data = make_victim(tmp_path)
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
    err = one_error(capsys)
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


def test_a_lock_file_that_is_a_directory_is_named(tmp_path):
    # it said "cannot write to OUT: Is a directory", naming neither the lock nor the mend
    out = tmp_path / "o"
    (out / ".lock").mkdir(parents=True)
    with pytest.raises(StoreError, match=r"\.lock is a directory; it must be the lock file"):
        with lock.lock(out):
            pass


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
