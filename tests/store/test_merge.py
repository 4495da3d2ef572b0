"""merge: shards merge to a single run's store; other studies, differing overlaps, an out in
use and a bad input are refused, writing nothing."""

import sqlite3
import subprocess
import sys

import pytest
from conftest import HOLD_LOCK, SCALE_STUDY, TINY_TOML, one_error, stored_trials

import parity_jax
from parity_jax import Model, Study, Task, Train, cli, kinds

pytestmark = pytest.mark.quick  # pure Python: make test-quick

SMALL = TINY_TOML.replace('name = "tiny"', 'name = "edges"')


def test_a_bad_merge_input_is_named_as_the_input_not_as_out(tmp_path, capsys):
    missing, foreign = tmp_path / "missing", tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.sqlite").write_bytes(b"not a database at all" * 100)
    for bad in (missing, foreign):
        assert cli.main(["merge", str(bad), "--out", str(tmp_path / "m")]) == 2
        err = one_error(capsys)
        assert err.startswith(f"error: merge: input {bad}: ") and "out:" not in err, err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow  # runs a study
def test_merge_into_an_out_in_use_is_refused(tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    a = tmp_path / "a"
    assert cli.main(["run", str(config), "--out", str(a)]) == 0
    busy = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(busy)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert cli.main(["merge", str(a), "--out", str(busy)]) == 2
        assert f"is in use by another run (process {holder.pid})" in one_error(capsys)
    finally:
        holder.kill()
        holder.wait()
    assert not (busy / "results.sqlite").exists()


@pytest.mark.slow
def test_shards_partition_the_trials_and_merge_equals_a_single_run(tmp_path, capsys):
    single = tmp_path / "single"
    parity_jax.run(SCALE_STUDY, single, progress=None)
    parts = [kinds.parity.make_plan(SCALE_STUDY, shard=(i, 3)).trial_ids() for i in range(3)]
    assert sum(map(len, parts)) == 36 and set().union(*parts) == kinds.parity.make_plan(
        SCALE_STUDY).trial_ids()
    outs = []
    for i in range(3):
        outs.append(tmp_path / f"shard{i}")
        parity_jax.run(SCALE_STUDY, outs[-1], shard=f"{i}/3", progress=None)
        assert {r[:2] for r in stored_trials(outs[-1])} == parts[i]
    merged = tmp_path / "merged"
    assert cli.main(["merge", *map(str, outs), "--out", str(merged)]) == 0
    assert "36 trials written" in capsys.readouterr().out
    assert stored_trials(merged) == stored_trials(single)
    assert cli.main(["check", str(merged)]) == 0
    # merging again (identical overlap) adds nothing; a shard resumed as another is refused
    assert cli.main(["merge", str(outs[0]), str(single), "--out", str(merged)]) == 0
    assert stored_trials(merged) == stored_trials(single)
    capsys.readouterr()
    assert cli.main(["run", "--out", str(outs[0])]) == 2  # another study (the default)
    with pytest.raises(parity_jax.StoreError, match="holds shard 0/3"):
        parity_jax.run(SCALE_STUDY, outs[0], shard="1/3", progress=None)


@pytest.mark.slow
def test_merge_refuses_other_studies_and_differing_overlaps_writing_nothing(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    parity_jax.run(SCALE_STUDY, a, shard="0/2", progress=None)
    other = Study(name="other", seeds=1, task=Task(n=10, k=2, m=40, n_test=100),
                  model=Model(width=8), train=Train(steps=100, batch=8))
    parity_jax.run(other, b, progress=None)
    assert cli.main(["merge", str(a), str(b), "--out", str(tmp_path / "m")]) == 2
    assert "holds another study" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    c = tmp_path / "c"
    parity_jax.run(SCALE_STUDY, c, shard="0/2", progress=None)
    with sqlite3.connect(c / "results.sqlite") as conn:
        conn.execute("UPDATE trials SET train_loss = COALESCE(train_loss, 0) + 1 "
                     "WHERE cell = 0 AND seed = 0")  # another outcome, as sound as the first
    conn.close()
    assert cli.main(["merge", str(a), str(c), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "trial (cell 0, seed 0) differs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()
