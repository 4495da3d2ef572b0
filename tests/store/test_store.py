"""store: read-only, linked, corrupt and foreign store files refused untouched. Damaged and
hand-edited stores: the store's reader checks every row where it is read, so
`check` lists each bad row as a problem (exit 1) and every other command, and the Python API,
answers with one line (exit 2) -- never a traceback. A property test corrupts random cells
(wrong types, NULLs, bad JSON, random bytes) of two real stores and runs every command."""

import contextlib
import io
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from conftest import TINY_TOML, make_victim, one_error
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from parity_jax import ConfigError, Model, Results, StoreError, Study, Task, Train, cli, store

pytestmark = pytest.mark.quick  # pure Python: make test-quick

SMALL = TINY_TOML.replace('name = "tiny"', 'name = "edges"')

PARITY = TINY_TOML.replace('name = "tiny"', 'name = "damaged"').replace(
    "batch = 8", "batch = 8\nrecord_curves = true").replace("m = [40, 80]", "m = [40]")
TABULAR = """
name = "damaged-tabular"
seeds = 2
datasets = ["parity:rows=300,features=5,k=2"]
fractions = [1.0]
[mlp]
width = [4]
init = ["dense", "sparse"]
s = [2]
optimizer = "sgd"
lr = [0.05]
batch = 16
steps = 20
eval_every = 10
[forest]
iterations = 1
n_estimators_max = 10
"""


def _cli(*args) -> tuple[int, str, str]:
    """``parity-jax ARGS``: (exit status, stdout, stderr); an exception escapes as it is."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """A complete parity store (with curves) and a tabular one: kind -> (config, out)."""
    root = tmp_path_factory.mktemp("stores")
    made = {}
    for kind, text in (("parity", PARITY), ("tabular", TABULAR)):
        config = root / f"{kind}.toml"
        config.write_text(text)
        rc, _, err = _cli("run", config, "--out", root / kind)
        assert rc == 0, err
        assert _cli("check", root / kind)[0] == 0
        made[kind] = config, root / kind
    return made


def _copy(stores, kind: str, where: Path) -> tuple[Path, Path]:
    config, out = stores[kind]
    shutil.copytree(out, where / "out")
    return config, where / "out"


def _sql(out: Path, *statements) -> None:
    conn = sqlite3.connect(out / "results.sqlite")
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def _answers(config: Path, out: Path, kind: str, scratch: Path) -> dict[str, tuple]:
    """Every command on ``out``: name -> (exit status, stderr). Exit 2 is one ``error:``
    line; a Python API error is a StoreError or ConfigError of one line (status 2)."""
    answers = {}
    for fmt in ("table", "json", "csv"):
        answers[f"report {fmt}"] = _cli("report", out, "--format", fmt)
    answers["check"] = _cli("check", out)
    answers["plot"] = _cli("plot", out)
    answers["merge"] = _cli("merge", out, "--out", scratch / "merged")
    answers["run"] = _cli("run", config, "--out", out)  # a resume
    try:
        results = Results(out)
        results.cells(), results.trials(), results.curves()
        if kind == "parity":
            results.frontier()
        answers["api"] = 0, "", ""
    except (StoreError, ConfigError) as e:
        answers["api"] = 2, "", f"error: {e}\n"
    for name, (rc, _, err) in answers.items():
        assert rc in (0, 1, 2), (name, rc, err)
        if rc == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
    return {name: (rc, err) for name, (rc, _, err) in answers.items()}


# ---- the listed cases ----------------------------------------------------------------------

READERS = ("report table", "report json", "report csv", "plot", "merge", "run", "api")
# case -> (kind, SQL, what check and the refusals say, the commands that must refuse: those
# that read what is damaged; the others may answer as usual)
DAMAGE = {
    "a success without a first hit": (
        "parity", ["UPDATE trials SET success = 1, first_hit = NULL WHERE rowid = 3"],
        "success and first_hit disagree", READERS),
    "a first hit that is no number": (
        "parity", ["UPDATE trials SET success = 1, first_hit = 'soon' WHERE rowid = 2"],
        "first_hit 'soon' is not an integer", READERS),
    "cell settings that are not a JSON object": (
        "parity", ["UPDATE cells SET settings = '[1, 2]' WHERE cell = 1"],
        "cells row 1: settings are not a JSON object", READERS),
    "cell settings that are not JSON": (
        "parity", ["UPDATE cells SET settings = '{\"n\": ' WHERE cell = 0"],
        "cells row 0: settings are not a JSON object", READERS),
    "cell settings that are not UTF-8": (
        "parity", ["UPDATE cells SET settings = CAST(x'7b80' AS TEXT) WHERE cell = 2"],
        "cells row 2: settings are not a JSON object", READERS),
    "a plan budget that is no number": (
        "parity", ["UPDATE meta SET value = json_set(value, '$.memory_budget', 'lots') "
                   "WHERE key = 'plan'"], "plan setting memory_budget = 'lots'", ("run",)),
    "a plan shard that is no number": (
        "parity", ["UPDATE meta SET value = json_set(value, '$.shard', 'a/b') "
                   "WHERE key = 'plan'"], "plan setting shard = 'a/b'", ("run",)),
    "a curve cut mid-number": (
        "parity", ["UPDATE curves SET test_error = x'0000803f00' WHERE rowid = 1"],
        "1.25 and 2 points", READERS),
    "a tabular error rate that is text": (
        "tabular", ["UPDATE tabular_trials SET test_error = 'low' WHERE rowid = 1"],
        "test_error 'low' outside [0, 1]", ("report table", "merge", "run", "api")),
    "a forest's extra that is not an object": (
        "tabular", ["UPDATE tabular_trials SET extra = '[]' WHERE extra != '{}'"],
        "extra is not a JSON object", ("report json", "merge", "run", "api")),
    "a tabular plan whose sizes are text": (
        "tabular", ["UPDATE meta SET value = json_set(value, '$.sizes', 'big') "
                    "WHERE key = 'plan'"], "plan setting sizes = 'big'", ("run",)),
}


@pytest.mark.slow  # reads the module's two stores, a parity and a tabular study run first
@pytest.mark.parametrize("case", list(DAMAGE))
def test_each_listed_damage_is_a_check_problem_and_one_line_elsewhere(stores, tmp_path,
                                                                      case):
    kind, statements, says, refusing = DAMAGE[case]
    config, out = _copy(stores, kind, tmp_path)
    _sql(out, *statements)
    rc, text, _ = _cli("check", out)
    assert rc == 1 and "problem: " in text and says in text, text
    answers = _answers(config, out, kind, tmp_path)
    for name in refusing:
        assert answers[name][0] == 2 and says in answers[name][1], (name, answers[name])


@pytest.mark.slow
@pytest.mark.parametrize("how", ["zero-filled", "header overwritten", "header zeroed",
                                 "schema format"])
def test_a_zero_filled_or_header_damaged_file_is_a_check_problem(stores, tmp_path, how):
    config, out = _copy(stores, "parity", tmp_path)
    path = out / "results.sqlite"
    data = path.read_bytes()
    path.write_bytes({"zero-filled": bytes(len(data)),
                      "header overwritten": b"\x5a" * 100 + data[100:],
                      "header zeroed": bytes(100) + data[100:],
                      "schema format": data[:44] + b"\0\0\0\x05" + data[48:]}[how])
    rc, text, _ = _cli("check", out)
    assert rc == 1 and "problem: " in text and "database is corrupt" in text, text
    answers = _answers(config, out, "parity", tmp_path)
    assert all(rc == 2 and "database is corrupt" in err for rc, err in answers.values()
               if rc != 1), answers


@pytest.mark.slow
def test_a_tabular_frontier_and_a_damaged_curve_are_clear_api_errors(stores, tmp_path):
    with pytest.raises(ConfigError, match="holds a tabular study, which has no success"):
        Results(stores["tabular"][1]).frontier()
    _, out = _copy(stores, "parity", tmp_path)
    _sql(out, "UPDATE curves SET train_loss = 'abc' WHERE rowid = 2")
    with pytest.raises(StoreError, match="damaged store: curve of trial .* not float32"):
        Results(out).curves()


# ---- random damage -------------------------------------------------------------------------

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 10**6, 0.5, -0.0, 1e308, float("inf"), float("-inf")]),
    st.floats(allow_nan=False), st.text(max_size=20),
    st.sampled_from(["{", "[]", "null", "1", '"x"', "{}", '{"n": 1}', '{"params": 3}',
                     '{"cell": "x"}', "0/0", "1/1", "nan", "{\"shard\": 5}"]),
    st.binary(max_size=12))


@st.composite
def damage(draw):
    """1-3 changes: a table cell set to a value, a row deleted, or bytes of the file
    overwritten."""
    changes = []
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.integers(0, 7))
        if what == 0:
            changes.append(("bytes", draw(st.integers(0, 2**20)),
                            draw(st.binary(min_size=1, max_size=64))))
        elif what == 1:
            changes.append(("delete", draw(st.sampled_from(["meta", "cells", "trials",
                                                            "curves"])),
                            draw(st.integers(0, 999))))
        else:
            table = draw(st.sampled_from(["meta", "cells", "trials", "curves"]))
            changes.append(("cell", table, draw(st.integers(0, 999)), draw(st.integers(0, 99)),
                            draw(VALUES)))
    return draw(st.sampled_from(["parity", "tabular"])), changes


def _apply(out: Path, kind: str, changes: list) -> None:
    path = out / "results.sqlite"
    for change in changes:
        if change[0] == "bytes":
            _, offset, data = change
            with open(path, "r+b") as f:
                f.seek(offset % max(path.stat().st_size, 1))
                f.write(data)
            continue
        table, row = change[1:3]
        if kind == "tabular" and table == "trials":
            table = "tabular_trials"
        conn = sqlite3.connect(path)
        try:
            with conn:
                cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
                rowids = [r[0] for r in conn.execute(f"SELECT rowid FROM {table}")]
                if not (cols and rowids):
                    pass
                elif change[0] == "delete":
                    conn.execute(f"DELETE FROM {table} WHERE rowid = ?",
                                 (rowids[row % len(rowids)],))
                else:
                    column, value = change[3:]
                    conn.execute(f"UPDATE {table} SET {cols[column % len(cols)]} = ? "
                                 "WHERE rowid = ?", (value, rowids[row % len(rowids)]))
        except (sqlite3.DatabaseError, OverflowError, UnicodeDecodeError):
            pass  # a key already taken, a NULL refused, a file damaged by an earlier change
        finally:
            conn.close()


@pytest.mark.slow
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(damage())
def test_random_damage_never_gives_a_traceback(stores, damaged):
    kind, changes = damaged
    with tempfile.TemporaryDirectory() as tmp:
        config, out = _copy(stores, kind, Path(tmp))
        _apply(out, kind, changes)
        answers = _answers(config, out, kind, Path(tmp))
    check = answers.pop("check")[0]
    event(f"{kind}: check exit {check}")
    assert check in (0, 1), check  # a store of ours, damaged or not: never "no store"
    refused = {name for name, (rc, _) in answers.items()
               if rc == 2 and not (kind == "tabular" and name == "plot")}
    if check == 0:  # a sound store serves every command
        assert not refused, answers


# ---- unwritable, linked, corrupt and foreign store files: refused, never touched --------------

@pytest.mark.slow  # runs a study
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
    err = one_error(capsys)
    assert err.startswith(f"error: out: cannot write to {out}") and "readonly" in err
    monkeypatch.undo()
    assert (out / "results.sqlite").read_bytes() == data and not (out / ".lock").exists()


@pytest.mark.parametrize("name", ["results.sqlite", "results.sqlite-journal"])
def test_a_store_file_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path, name):
    victim, data = make_victim(tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    (out / name).symlink_to(victim)
    study = Study(name="x", seeds=1, task=Task(n=8, k=2, m=16, n_test=16), model=Model(width=4),
                  train=Train(steps=10, batch=4, eval_every=5))
    with pytest.raises(StoreError, match=f"{out / name} is a symbolic link"):
        store.Store.open_for_run(out, study, study.cells(), {})
    assert victim.read_bytes() == data


@pytest.mark.parametrize("content", [b"not a database at all" * 100, None])
def test_a_corrupt_or_foreign_sqlite_file_gives_exit_2_and_is_not_touched(tmp_path, capsys,
                                                                       content):
    out = tmp_path / "o"
    out.mkdir()
    path = out / "results.sqlite"
    if content is None:  # a valid SQLite file of someone else's
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE t (x)")
            conn.execute("INSERT INTO t VALUES (1)")
        conn.close()
    else:
        path.write_bytes(content)
    data = path.read_bytes()
    for argv in (["run", "--out", str(out)], ["report", str(out)], ["check", str(out)]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not a parity_jax results store" in err[0], err
    assert path.read_bytes() == data
