"""Adaptive studies (kinds/parity/adaptive.py, the runner's rounds): a cell's seeds come in
rounds and stop once its anytime-valid interval settles the answer; every stored trial is the
same (cell, seed) trial of the study run with every seed, bit for bit; a killed run resumes to
the same store; ``check`` knows a finished adaptive store; bad ``[adaptive]`` values, the
section in a tabular study and ``--shard`` are one line each."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import tomllib

import faults
import pytest
from conftest import one_error

import parity_jax
from parity_jax import check, cli, kinds, reduce
from parity_jax.errors import ConfigError
from parity_jax.kinds.parity import adaptive
from parity_jax.kinds.parity.config import Adaptive, Study

ADAPTIVE = faults.SMALL.replace("seeds = 3", "seeds = 16").replace(
    "steps = 3000", "steps = 400").replace("stop_on_success = false", "") + """
[adaptive]
target = 0.5
alpha = 0.05
first = 4
"""


def _study(text: str = ADAPTIVE) -> Study:
    return Study.from_dict(tomllib.loads(text))


@pytest.mark.quick
def test_a_cell_is_looked_at_after_first_then_doubling_seeds_up_to_the_most():
    assert adaptive.looks(4, 16) == [4, 8, 16]
    assert adaptive.looks(8, 64) == [8, 16, 32, 64]
    assert adaptive.looks(5, 16) == [5, 10, 16]
    assert adaptive.looks(16, 16) == [16]


@pytest.mark.quick
def test_what_a_study_wants_is_a_pure_function_of_its_stored_successes():
    study = _study()
    cells = len(study.cells())
    assert adaptive.wanted(study, cells, {}) == {(c, s) for c in range(cells) for s in range(4)}
    # cell 0 all successes, cell 1 all failures, the others half and half
    success = {(c, s): (c == 0) or (c > 1 and s % 2 == 0) for c in range(cells)
               for s in range(4)}
    want = adaptive.wanted(study, cells, success)
    # at 4 seeds nothing is settled (4/4 gives the interval [0.32, 1]): every cell goes to 8
    assert reduce.decide(4, 4, 0.5, 0.05) == "open"
    assert want == {(c, s) for c in range(cells) for s in range(8)}
    success.update({(c, s): (c == 0) or (c > 1 and s % 2 == 0) for c in range(cells)
                    for s in range(4, 8)})
    want = adaptive.wanted(study, cells, success)
    assert {s for c, s in want if c in (0, 1)} == set(range(8))  # 8/8 and 0/8: settled
    assert {s for c, s in want if c == 2} == set(range(16))  # 4/8: on to the most seeds
    assert adaptive.cell_state(study.adaptive, 16, 0, success) == (8, "above")
    assert adaptive.cell_state(study.adaptive, 16, 1, success) == (8, "below")
    assert adaptive.cell_state(study.adaptive, 16, 2, success) == (16, None)
    assert adaptive.round_of(study, cells, success) == (3, cells - 2)


@pytest.mark.quick
def test_without_adaptive_the_study_and_its_fingerprint_are_what_they_were():
    plain = _study(ADAPTIVE.split("[adaptive]")[0])
    assert plain.adaptive is None and "adaptive" not in plain.to_dict()
    assert parity_jax.DEFAULT_STUDY.fingerprint() == "027c097ad67f79d6"
    assert _study().fingerprint() != plain.fingerprint()
    assert _study().cells() == plain.cells()  # [adaptive] is no grid axis


@pytest.mark.quick
@pytest.mark.parametrize("section,message", [
    ("target = 1.0", "adaptive.target = 1.0: must be a number in (0.0, 1.0)"),
    ("target = 0", "adaptive.target = 0: must be a number in (0.0, 1.0)"),
    ("alpha = 0.6", "adaptive.alpha = 0.6: must be a number in (0.0, 0.5]"),
    ("alpha = 0", "adaptive.alpha = 0: must be a number in (0.0, 0.5]"),
    ("first = 0", "adaptive.first = 0: must be an integer in 1..1000000"),
    ("first = 17", "adaptive.first = 17: must be at most seeds (16)"),
    ("first = 2.5", "adaptive.first = 2.5: must be an integer"),
    ("rounds = 3", "adaptive.rounds: unknown key; allowed: target, alpha, first"),
])
def test_bad_adaptive_values_are_one_line_naming_the_field(tmp_path, capsys, section, message):
    config = tmp_path / "a.toml"
    config.write_text(ADAPTIVE.split("[adaptive]")[0] + "[adaptive]\n" + section + "\n")
    assert cli.main(["run", str(config), "--out", str(tmp_path / "o")]) == 2
    assert one_error(capsys).startswith(f"error: {message}")
    assert not (tmp_path / "o").exists()


@pytest.mark.quick
def test_adaptive_in_a_tabular_study_is_refused(tmp_path, capsys):
    config = tmp_path / "t.toml"
    config.write_text('datasets = ["sklearn:wine"]\n[adaptive]\nfirst = 2\n')
    assert cli.main(["plan", str(config)]) == 2
    assert one_error(capsys).startswith("error: adaptive: unknown key")
    with pytest.raises(ConfigError, match="adaptive"):
        kinds.load_study(config)


def test_an_adaptive_study_refuses_shards_and_plan_says_it_is_adaptive(tmp_path, capsys):
    config = tmp_path / "a.toml"
    config.write_text(ADAPTIVE)
    assert cli.main(["run", str(config), "--out", str(tmp_path / "o"), "--shard", "0/2"]) == 2
    assert "an adaptive study decides from all of a cell's seeds" in one_error(capsys)
    assert cli.main(["plan", str(config)]) == 0
    out = capsys.readouterr().out
    cells = len(_study().cells())
    assert f"adaptive: the first round runs {4 * cells} trials" in out
    assert f"at most {16 * cells}" in out


def _rows(out) -> dict:
    with sqlite3.connect(out / "results.sqlite") as conn:
        return {r[:2]: r for r in conn.execute("SELECT * FROM trials")}


@pytest.mark.slow
def test_every_adaptive_trial_is_the_full_studys_trial_bit_for_bit(tmp_path, capsys):
    study = _study()
    full = parity_jax.run(dataclasses.replace(study, adaptive=None), tmp_path / "full",
                          progress=None)
    res = parity_jax.run(study, tmp_path / "adaptive", progress=None)
    a, f = _rows(tmp_path / "adaptive"), _rows(tmp_path / "full")
    assert a and set(a) < set(f)  # fewer trials ...
    assert all(a[k] == f[k] for k in a)  # ... each the same bits
    assert res.compiled["programs"] <= full.compiled["programs"]  # rounds compile nothing new
    # each cell stopped where its own stored outcomes say: the rule, replayed
    success = {k: bool(r[2]) for k, r in a.items()}
    cells = res.cells()
    for c in cells:
        n, decision = adaptive.cell_state(study.adaptive, 16, c["cell"], success)
        assert c["trials"] == n and c["decision"] == decision
        lo, hi = reduce.confidence_sequence(c["successes"], c["trials"], 0.05)
        assert (c["cs_low"], c["cs_high"]) == (lo, hi)
        assert c["cs_low"] <= c["ci_low"] and c["cs_high"] >= c["ci_high"]  # wider than Wilson
    assert {c["decision"] for c in cells} <= {"above", "below", "open"}
    problems, summary = check.check(tmp_path / "adaptive")
    assert problems == [] and summary["complete"] and summary["trials"] == len(a)
    # report: the anytime-valid interval, the decision and the summary line
    assert cli.main(["report", str(tmp_path / "adaptive")]) == 0
    text = capsys.readouterr().out
    assert "CS (anytime)" in text and "decision" in text and "adaptive: " in text
    assert "frontier from the decisions" in text
    assert cli.main(["report", str(tmp_path / "adaptive"), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert all({"cs_low", "cs_high", "decision"} <= set(r) for r in records)
    # a trial the rule never wanted (a cell that stopped at 8 seeds, its seed 15) is a problem
    stopped = next(c["cell"] for c in cells if c["trials"] == 8)
    with sqlite3.connect(tmp_path / "adaptive" / "results.sqlite") as conn:
        row = f[(stopped, 15)]  # every column of its store's trials table
        conn.execute(f"INSERT INTO trials VALUES ({', '.join('?' * len(row))})", row)
    problems, _ = check.check(tmp_path / "adaptive")
    assert problems == [f"trial (cell {stopped}, seed 15): stored, but the study's adaptive "
                        "rule stopped its cell before this seed"]


@pytest.mark.slow
def test_a_killed_adaptive_run_resumes_to_the_same_store(tmp_path):
    config = tmp_path / "adaptive.toml"
    config.write_text(ADAPTIVE.replace("steps = 400", "steps = 1500"))
    result = faults.kill_and_resume(config, tmp_path, kills=3, seed=2, log=lambda _: None)
    assert result["trials"] < 16 * len(Study.from_toml(config).cells())


@pytest.mark.quick
def test_the_first_round_is_every_cells_first_seeds():
    study = _study()
    cells = len(study.cells())
    kind = kinds.named("parity")
    first = kind.wanted(study, {})
    assert first.want == {(c, s) for c in range(cells) for s in range(4)}
    assert first.open_cells == cells and first.label.startswith("round 1 of at most 3")


@pytest.mark.slow
def test_an_adaptive_store_cut_after_a_round_is_incomplete_for_check(tmp_path, monkeypatch):
    # the first round only: the rule wants more of every open cell, so check says incomplete
    from parity_jax.kinds.parity import kind as parity_kind

    study = _study()
    real = parity_kind.ParityKind.wanted

    def one_round(self, s, rows):  # once a round is stored, want nothing more
        ahead = real(self, s, rows)
        return ahead._replace(want=set(rows)) if rows else ahead

    monkeypatch.setattr(parity_kind.ParityKind, "wanted", one_round)
    parity_jax.run(study, tmp_path / "o", progress=None)
    monkeypatch.undo()
    problems, summary = check.check(tmp_path / "o")
    assert problems == [] and not summary["complete"]
    assert summary["trials"] == 4 * len(study.cells()) < summary["expected"]


def test_adaptive_is_a_study_setting_in_python_too():
    study = dataclasses.replace(parity_jax.DEFAULT_STUDY, adaptive=Adaptive(first=4))
    study.validate()
    with pytest.raises(ConfigError, match="adaptive.first = 32: must be at most seeds"):
        dataclasses.replace(study, adaptive=Adaptive(first=32)).validate()
