"""kinds: the StudyKind protocol and its registry. Both kinds satisfy the protocol; a config
goes to the kind it names, or to the built-in kind that claims it; and a third kind -- one
module-sized class here, registered with ``kinds.register`` and run from a TOML file -- runs
through the one driver, store, Results, check and merge unchanged (the driver never asks which
kind it holds: an ``ast`` check); two fresh tabular runs store the same rows."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import ClassVar, NamedTuple

import pytest

import parity_jax
from parity_jax import (
    DEFAULT_STUDY,
    ConfigError,
    Study,
    TabularStudy,
    check,
    errors,
    kinds,
    merge,
    plan,
    store,
)
from parity_jax.kinds import Decoded
from parity_jax.results import Results
from parity_jax.runner import run

pytestmark = pytest.mark.quick  # pure Python: make test-quick

PACKAGE = Path(__file__).resolve().parents[2] / "parity_jax"


@pytest.mark.parametrize("name", kinds.names())
def test_every_registered_kind_satisfies_the_protocol(name):
    kind = kinds.named(name)
    assert isinstance(kind, kinds.StudyKind) and kind.name == name
    assert kinds.of(kind.study_type()) is kind
    assert f"CREATE TABLE {kind.rows_table} " in kind.schema


def test_a_config_goes_to_the_kind_that_claims_it():
    assert kinds.for_config({"datasets": ["sklearn:wine"]}).study_type is TabularStudy
    assert kinds.for_config({"task": {"n": 10}}).study_type is Study
    assert isinstance(kinds.named("parity").work(DEFAULT_STUDY), kinds.Work)
    with pytest.raises(ConfigError, match="must be a Study or TabularStudy"):
        kinds.of({"task": {}})
    with pytest.raises(ConfigError, match="kind = 'dice': must be one of parity, tabular"):
        kinds.for_config({"kind": "dice"})


_KIND_MODULES = ("parity_jax.kinds.parity", "parity_jax.kinds.tabular", "parity_jax.tasks.sparse",
                 "parity_jax.tasks.xy", "parity_jax.targets")
_KIND_NAMES = ("parity", "tabular", "tabular_trials", "curves")


def _imports(tree: ast.AST) -> list[str]:
    """Every module an ``ast`` imports, at module level or inside functions, with the names it
    takes from a package (``from parity_jax.tasks import xy`` -> parity_jax.tasks.xy)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return out


@pytest.mark.parametrize("module", ["runner.py", "plan.py", "store.py", "cli.py", "results.py",
                                    "check.py", "merge.py", "lock.py", "multihost.py"])
def test_the_driver_holds_no_kind_branch(module):
    """No study kind is named in the driver's code (an ``ast`` read, comments and docstrings
    left out): it imports no kind's module (nor a kind's task), names no kind's class or
    attribute, and holds no kind's name or table as a string -- the kind of stores written
    before kinds existed is the one exception, a format default."""
    tree = ast.parse((PACKAGE / module).read_text())
    imported = [m for m in _imports(tree) if m.startswith(_KIND_MODULES)]
    assert imported == [], imported
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not ({"Study", "TabularStudy", "ForestUnit", "SparseTask", "XYTask"} & names), names
    assert not ({"parity", "tabular", "sparse", "xy"} & attrs), attrs
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, ast.Module | ast.FunctionDef | ast.ClassDef)
                  and n.body and isinstance(n.body[0], ast.Expr)}
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, str) and id(n) not in docstrings
               and n.value in _KIND_NAMES]
    allowed = {"store.py": ["parity", "curves"]}  # stores made before kinds existed
    assert sorted(strings) == sorted(allowed.get(module, [])), strings


def test_the_driver_guard_sees_a_function_level_import(tmp_path):
    tree = ast.parse("def f():\n    from parity_jax.tasks import xy\n    return xy\n")
    assert "parity_jax.tasks.xy" in _imports(tree)


# -- a third kind: coins, each trial a deterministic coin flip ---------------------------------

@dataclasses.dataclass(frozen=True)
class CoinCell:
    p: float

    def key(self) -> str:
        return json.dumps({"p": self.p}, sort_keys=True)


@dataclasses.dataclass(frozen=True)
class CoinStudy:
    name: str = "coins"
    seed: int = 0
    seeds: int = 6
    p: tuple = (0.25, 0.75)

    def validate(self) -> None:
        if not all(0 <= p <= 1 for p in self.p):
            raise ConfigError(f"p = {list(self.p)}: must be probabilities")

    def cells(self) -> list[CoinCell]:
        return [CoinCell(p) for p in self.p]

    def to_dict(self) -> dict:
        return {"name": self.name, "seed": self.seed, "seeds": self.seeds, "p": list(self.p)}

    def fingerprint(self) -> str:
        return errors.digest(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> CoinStudy:
        return cls(d["name"], d["seed"], d["seeds"], tuple(d["p"]))  # (a TOML's kind: ignored)


class Flip(NamedTuple):
    cell: int
    seed: int
    heads: bool


@dataclasses.dataclass(frozen=True)
class CoinUnit:
    trials: list


def _heads(study: CoinStudy, cell: int, seed: int) -> bool:
    u = int(hashlib.sha256(f"{study.seed}/{cell}/{seed}".encode()).hexdigest()[:8], 16) / 2**32
    return u < study.p[cell]


class CoinWork:
    def __init__(self, study: CoinStudy):
        self.study, self.cells = study, study.cells()

    def data_ids(self):
        return None

    def plan_settings(self, memory_budget: int) -> dict:
        return {}

    def plan(self, memory_budget, n_devices, shard, whole) -> plan.Plan:
        units = [CoinUnit([plan.TrialId(c, s) for s in range(self.study.seeds)])
                 for c in range(len(self.cells)) if plan.in_shard(c, shard)]
        return plan.Plan(self.cells, units)

    def compute(self, unit, skip, n_devices, lead, train) -> Decoded:
        rows = [Flip(t.cell, t.seed, _heads(self.study, t.cell, t.seed))
                for t in unit.trials if t not in skip]
        return Decoded(rows, [], len(rows))

    def describe(self, unit) -> str:
        return "a coin"

    def select(self, units, want):
        return [u for u in units.batches if any((t.cell, t.seed) in want for t in u.trials)]

    def check_out(self, out: Path) -> None:
        pass


class CoinKind:
    name: ClassVar[str] = "coins"
    study_type: ClassVar[type] = CoinStudy
    schema: ClassVar[str] = ("CREATE TABLE coin_trials (cell INTEGER NOT NULL REFERENCES "
                             "cells(cell), seed INTEGER NOT NULL, heads INTEGER NOT NULL, "
                             "PRIMARY KEY (cell, seed));")
    rows_table: ClassVar[str] = "coin_trials"
    curves_table: ClassVar[str | None] = None
    Row: ClassVar[type] = Flip
    needs_data: ClassVar[bool] = False

    def claims(self, config: dict) -> bool:
        return "p" in config  # never asked: only the built-in kinds claim a config

    def plan_problems(self, settings):
        return []

    def work(self, study):
        return CoinWork(study)

    def expected(self, study, settings, shard):
        return CoinWork(study).plan(None, 1, shard, False).trial_ids()

    def cell_record(self, stored):
        return stored

    def read_row(self, raw, grid, seeds):
        ok = len(raw) == 3 and raw[0] < len(grid) and raw[1] < seeds and raw[2] in (0, 1)
        return (Flip(*raw), []) if ok else (None, [f"coin row {raw}: not a flip"])

    def read_curve(self, raw, grid, seeds, rows):
        return None, ["coins record no curves"]

    def record(self, row):
        return {**row._asdict(), "heads": bool(row.heads)}

    def wanted(self, study, rows):
        return None  # every trial

    def cells(self, cells, trials, study):
        return [{**c, "heads": sum(t["heads"] for t in trials if t["cell"] == c["cell"])}
                for c in cells]

    def trials(self, cells, trials):
        return [{**cells[t["cell"]], **t} for t in trials]

    def frontier(self, results, target, over):
        raise ConfigError("coins have no frontier")

    def summary_table(self, records, target):
        return "\n".join(f"p={r['p']}: {r['heads']} heads" for r in records)

    def plot(self, records, out, target):
        raise ConfigError("coins have no figures")


KIND = CoinKind()


@pytest.fixture
def coins():
    """The coin kind registered beside the others (``kinds.register``), for one test."""
    kinds.register(KIND)
    kinds.register(KIND)  # again: changes nothing
    yield
    kinds._REGISTERED.pop("coins")


def test_a_kind_name_is_taken_once():
    with pytest.raises(ConfigError, match="kind = 'parity': already the name of a kind"):
        kinds.register(dataclasses.replace(CoinStudy()) and type("K", (CoinKind,),
                                                                {"name": "parity"})())
    with pytest.raises(ConfigError, match="must implement parity_jax.kinds.StudyKind"):
        kinds.register(object())


def test_a_third_kind_runs_through_the_one_driver_store_check_and_merge(coins, tmp_path):
    toml = tmp_path / "coins.toml"
    toml.write_text('kind = "coins"\nname = "coins"\nseed = 0\nseeds = 6\np = [0.25, 0.75]\n')
    study = kinds.load_study(toml)
    assert study == CoinStudy() and parity_jax.register_kind is kinds.register
    expected = [sum(_heads(study, c, s) for s in range(study.seeds)) for c in range(2)]
    results = run(study, tmp_path / "all", progress=None)
    assert results.kind == "coins"
    assert [r["heads"] for r in results.cells()] == expected
    assert len(results.trials()) == 12 and "heads" in results.summary_table()
    assert check.check(tmp_path / "all") == ([], {"study": "coins", "trials": 12,
                                                  "expected": 12, "complete": True})
    for i in range(2):  # shards, merged: the same trials
        run(study, tmp_path / f"s{i}", shard=(i, 2), progress=None)
        assert check.expected_trials(tmp_path / f"s{i}") == {(i, s) for s in range(6)}
    assert merge.merge([tmp_path / "s0", tmp_path / "s1"], tmp_path / "m") == (12, 0)
    assert Results(tmp_path / "m").trials() == results.trials()
    with pytest.raises(ConfigError, match="no frontier"):
        results.frontier()


DETERMINISTIC = """
name = "forests"
seeds = 3
datasets = ["sklearn:breast_cancer"]
fractions = [1.0, 0.5]
[mlp]
width = [4]
init = ["dense"]
optimizer = "sgd"
lr = [0.05]
batch = 16
steps = 20
eval_every = 10
[forest]
iterations = 4
n_estimators_max = 300
"""


@pytest.mark.slow
def test_two_fresh_runs_of_a_tabular_study_store_the_same_rows_and_merge(tmp_path):

    study = TabularStudy.from_dict(__import__("tomllib").loads(DETERMINISTIC))

    def rows(out):
        s = store.Store.open(out)
        try:
            return s.rows()
        finally:
            s.close()

    for name in ("a", "b"):
        parity_jax.run(study, tmp_path / name, progress=None)
    a, b = rows(tmp_path / "a"), rows(tmp_path / "b")
    assert len(a) == 12 and [r.val_loss.hex() for r in a if r.extra != "{}"] == \
        [r.val_loss.hex() for r in b if r.extra != "{}"]
    assert a == b
    written, duplicates = merge.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    assert (written, duplicates) == (12, 12) and rows(tmp_path / "m") == a
