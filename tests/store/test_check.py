"""check: a corrupt store is a problem (exit 1), a foreign file no store; inconsistent trials
are found."""

import sqlite3

import pytest
from conftest import SCALE_STUDY, TINY_TOML, one_error

import parity_jax
from parity_jax import cli

pytestmark = pytest.mark.quick  # pure Python: make test-quick

SMALL = TINY_TOML.replace('name = "tiny"', 'name = "edges"')


@pytest.mark.slow  # runs a study
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
        assert "database is corrupt" in one_error(capsys)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.sqlite").write_bytes(b"not a database at all" * 100)
    assert cli.main(["check", str(foreign)]) == 2
    assert "not a parity_jax results store" in one_error(capsys)
    assert cli.main(["check", str(tmp_path / "nothing")]) == 2
    assert "no results store" in one_error(capsys)


@pytest.mark.slow
def test_check_finds_inconsistent_trials(tmp_path, capsys):
    out = tmp_path / "o"
    parity_jax.run(SCALE_STUDY, out, progress=None)
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
