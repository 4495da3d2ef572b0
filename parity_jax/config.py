"""Study configuration: dataclasses, TOML loading, validation and grid expansion.

Any field of ``[task]``, ``[model]`` or ``[train]`` given as a list becomes a grid axis
(cartesian product). ``s`` applies only to sparse cells: dense cells ignore it and are not
duplicated. Unknown keys and wrong types are errors (:class:`ConfigError`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOSSES = ("hinge", "logistic", "square")
INITS = ("dense", "sparse")
VARIES = ("both", "init", "data")


class ConfigError(ValueError):
    """A bad study setting; the message names the field and what is allowed."""


@dataclass(frozen=True)
class Task:
    """(n, k) sparse parity with m training samples; list-valued fields are grid axes."""

    n: Any = 50
    k: Any = 3
    m: Any = 1000
    n_test: Any = 2000
    noise: Any = 0.0
    online: Any = False  # a fresh minibatch from the distribution every step (m is ignored)


@dataclass(frozen=True)
class Model:
    """MLP n -> width (-> width)* -> 1; ``s`` is used by sparse cells only."""

    width: Any = 100
    depth: Any = 1
    init: Any = "dense"
    s: Any = 2


@dataclass(frozen=True)
class Train:
    """Minibatch SGD with coupled weight decay, periodic evaluation and success threshold."""

    lr: Any = 0.1
    wd: Any = 0.01
    batch: Any = 32
    loss: Any = "hinge"
    steps: Any = 10000
    eval_every: Any = 100
    threshold: Any = 0.1
    stop_on_success: Any = True
    vary: Any = "both"
    data_seed: Any = 0
    init_seed: Any = 0
    record_curves: Any = False  # store every evaluation's test error and train loss


# Settings added after stores existed: left out of a study's or cell's identity while at their
# default, so stores written before them keep their fingerprints (and resume).
LATER_DEFAULTS = {"online": False, "record_curves": False}


def _without_later_defaults(d: dict) -> dict:
    return {k: v for k, v in d.items()
            if not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}


@dataclass(frozen=True)
class Study:
    """A whole study: grid of cells x ``seeds`` trials each.

    Args:
      name: label stored with the results.
      seed: study seed; every trial key derives from it.
      seeds: trials per cell (seed indices 0..seeds-1).
      task, model, train: sections; any field may be a list (a grid axis).
    """

    name: str = "study"
    seed: int = 0
    seeds: int = 16
    task: Task = field(default_factory=Task)
    model: Model = field(default_factory=Model)
    train: Train = field(default_factory=Train)

    @classmethod
    def from_dict(cls, d: dict) -> Study:
        """Builds a study from a parsed TOML dict; raises ConfigError on unknown keys/types."""
        study = cls(**_sections(cls, d, {"task": Task, "model": Model, "train": Train}))
        study.validate()
        return study

    @classmethod
    def from_toml(cls, path: str | Path) -> Study:
        """Loads and validates a TOML study file."""
        return cls.from_dict(_read_toml(path))

    def to_dict(self) -> dict:
        """The resolved config (defaults filled in), JSON-serialisable."""
        d = dataclasses.asdict(self)
        return {k: _without_later_defaults(v) if isinstance(v, dict) else v
                for k, v in d.items()}

    def fingerprint(self) -> str:
        """Stable identity of the study (what a results store is tied to)."""
        return _digest(self.to_dict())

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        _check_scalar("name", self.name, str)
        _check_int("seed", self.seed, lo=0)
        _check_int("seeds", self.seeds, lo=1)
        self.cells()  # validates every value, including cross-field rules

    def cells(self) -> list[Cell]:
        """Expands the grid into validated cells, in a deterministic order."""
        axes: list[tuple[str, list]] = []
        for section in ("task", "model", "train"):
            obj = getattr(self, section)
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                name = f"{section}.{f.name}"
                if isinstance(value, list | tuple):
                    if not value:
                        raise ConfigError(f"{name}: an empty list has no values")
                    values = list(value)
                    for v in values:
                        _check_value(name, v)
                    if len({json.dumps(v) for v in values}) != len(values):
                        raise ConfigError(f"{name}: list has duplicate values {values}")
                else:
                    _check_value(name, value)
                    values = [value]
                axes.append((f.name, values))
        names = [a for a, _ in axes]
        cells: list[Cell] = []
        seen: set[Cell] = set()
        for combo in itertools.product(*(v for _, v in axes)):
            d = dict(zip(names, combo, strict=True))
            if d["init"] == "dense":
                d["s"] = None  # dense cells ignore s
            if d["online"]:
                d["m"] = None  # online cells have no training set
            d["noise"] = float(d["noise"])
            for key in ("lr", "wd", "threshold"):
                d[key] = float(d[key])
            cell = Cell(**d)
            cell.check()
            if cell not in seen:
                seen.add(cell)
                cells.append(cell)
        return cells


@dataclass(frozen=True)
class Cell:
    """One grid point: every setting of a trial except its seed index."""

    n: int
    k: int
    m: int | None  # None when online
    n_test: int
    noise: float
    width: int
    depth: int
    init: str
    s: int | None
    lr: float
    wd: float
    batch: int
    loss: str
    steps: int
    eval_every: int
    threshold: float
    stop_on_success: bool
    vary: str
    data_seed: int
    init_seed: int
    online: bool = False
    record_curves: bool = False

    def check(self) -> None:
        """Cross-field rules (single-field rules are checked while expanding)."""
        if self.k > self.n:
            raise ConfigError(f"task.k = {self.k}: must be an integer in 1..n (n = {self.n})")
        if self.s is not None and self.s > self.n:
            raise ConfigError(
                f"model.s = {self.s}: must be an integer in 1..n (n = {self.n}) for sparse init"
            )

    def key(self) -> str:
        """Canonical JSON of the cell, its identity in the store."""
        return json.dumps(_without_later_defaults(dataclasses.asdict(self)), sort_keys=True)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def seed_indices(self, i: int) -> tuple[int, int]:
        """(data index, init index) of seed i under this cell's ``vary``."""
        if self.vary == "init":
            return self.data_seed, i
        if self.vary == "data":
            return i, self.init_seed
        return i, i


# ---- the tabular benchmark -----------------------------------------------------------------

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class Split:
    """Train / validation / test split of each dataset (``tabular.split``)."""

    max_train: Any = 10_000
    max_eval: Any = 50_000


@dataclass(frozen=True)
class MLP:
    """The MLP grid of the tabular benchmark: ``width``, ``depth``, ``init``, ``s``,
    ``optimizer`` and ``lr`` may be lists (grid axes); model selection picks the best setting
    per (dataset, fraction, init family)."""

    width: Any = (100, 1000)
    depth: Any = 1
    init: Any = ("dense", "sparse")
    s: Any = (2, 4)
    optimizer: Any = "adam"
    lr: Any = (1e-3, 1e-2)
    wd: Any = 0.0
    batch: Any = 64
    steps: Any = 1000
    eval_every: Any = 100


@dataclass(frozen=True)
class Forest:
    """The random-forest baseline: ``iterations`` random-search configurations (0: none)."""

    iterations: Any = 10
    n_estimators_max: Any = 3000


@dataclass(frozen=True)
class TabularStudy:
    """MLPs (dense and sparse init) against tuned random forests on tabular datasets, with
    training sets downsampled to ``fractions``; ``seeds`` trials per setting.

    Args:
      datasets: ``tabular.load`` specs (benchmark names, openml:ID, sklearn:NAME, parity[:..],
        .csv/.npz paths).
      fractions: training-set fractions in (0, 1].
    """

    name: str = "tabular"
    seed: int = 0
    seeds: int = 5
    datasets: Any = ("sklearn:breast_cancer",)
    fractions: Any = (1.0, 0.3, 0.1, 0.03, 0.01)
    split: Split = field(default_factory=Split)
    mlp: MLP = field(default_factory=MLP)
    forest: Forest = field(default_factory=Forest)

    @classmethod
    def from_dict(cls, d: dict) -> TabularStudy:
        study = cls(**_sections(cls, d, {"split": Split, "mlp": MLP, "forest": Forest}))
        study.validate()
        return study

    @classmethod
    def from_toml(cls, path: str | Path) -> TabularStudy:
        return cls.from_dict(_read_toml(path))

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists

    def fingerprint(self) -> str:
        return _digest(self.to_dict())

    def axis(self, name: str) -> list:
        """A setting as a list of values (``datasets``, ``fractions`` or ``mlp.FIELD``)."""
        v = getattr(self, name) if "." not in name else getattr(self.mlp, name.split(".")[1])
        return list(v) if isinstance(v, list | tuple) else [v]

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        _check_scalar("name", self.name, str)
        _check_int("seed", self.seed, lo=0)
        _check_int("seeds", self.seeds, lo=1)
        rules = {
            "datasets": lambda n, v: _check_scalar(n, v, str),
            "fractions": lambda n, v: _check_float(n, v, 0.0, 1.0, lo_open=True, hi_open=False),
            "mlp.width": lambda n, v: _check_int(n, v, lo=1),
            "mlp.depth": lambda n, v: _check_range(n, v, 1, 3),
            "mlp.init": lambda n, v: _check_choice(n, v, INITS),
            "mlp.s": lambda n, v: _check_int(n, v, lo=1),
            "mlp.lr": lambda n, v: _check_float(n, v, 0.0, math.inf, True, True),
            "mlp.optimizer": lambda n, v: _check_choice(n, v, OPTIMIZERS),
        }
        for name, rule in rules.items():
            values = self.axis(name)
            if not values:
                raise ConfigError(f"{name}: an empty list has no values")
            if len({json.dumps(v) for v in values}) != len(values):
                raise ConfigError(f"{name}: list has duplicate values {values}")
            for v in values:
                rule(name, v)
        _check_float("mlp.wd", self.mlp.wd, 0.0, math.inf, lo_open=False, hi_open=True)
        for f in ("batch", "steps", "eval_every"):
            _check_int(f"mlp.{f}", getattr(self.mlp, f), lo=1)
        if self.mlp.steps % self.mlp.eval_every:
            raise ConfigError(f"mlp.steps = {self.mlp.steps}: must be a multiple of "
                              f"mlp.eval_every ({self.mlp.eval_every})")
        _check_int("split.max_train", self.split.max_train, lo=1)
        _check_int("split.max_eval", self.split.max_eval, lo=1)
        _check_int("forest.iterations", self.forest.iterations, lo=0)
        _check_int("forest.n_estimators_max", self.forest.n_estimators_max, lo=10)


def _check_range(name: str, v: Any, lo: int, hi: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{name} = {v!r}: must be an integer in {lo}..{hi}")


def _read_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config: file not found: {path}") from None
    except OSError as e:
        raise ConfigError(f"config: cannot read {path}: {e.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config: cannot parse {path}: {e}") from None


def _sections(cls, d: Any, sections: dict[str, type]) -> dict:
    """Constructor arguments of ``cls`` from a parsed TOML dict whose tables are ``sections``;
    unknown keys and non-table sections are ConfigErrors."""
    if not isinstance(d, dict):
        raise ConfigError("config: must be a table")
    top = {f.name for f in dataclasses.fields(cls)} - set(sections)
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: must be a table [{key}]")
            allowed = [f.name for f in dataclasses.fields(sections[key])]
            for sub in value:
                if sub not in allowed:
                    raise ConfigError(f"{key}.{sub}: unknown key; allowed: {', '.join(allowed)}")
            kwargs[key] = sections[key](**value)
        elif key in top:
            kwargs[key] = value
        else:
            allowed = ", ".join(sorted(top | set(sections)))
            raise ConfigError(f"{key}: unknown key; allowed: {allowed}")
    return kwargs


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def stable_int(*parts: Any) -> int:
    """A 31-bit integer id of ``parts``, stable across processes (for fold_in)."""
    return int(hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


# ---- per-field rules -------------------------------------------------------------------------


def _type_name(v: Any) -> str:
    return type(v).__name__


def _check_scalar(name: str, v: Any, typ: type) -> None:
    if not isinstance(v, typ) or (typ is not bool and isinstance(v, bool)):
        raise ConfigError(f"{name} = {v!r}: must be a {typ.__name__}, got {_type_name(v)}")


def _check_int(name: str, v: Any, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{name} = {v!r}: must be an integer >= {lo}, got {_type_name(v)}")
    if v < lo:
        raise ConfigError(f"{name} = {v}: must be an integer >= {lo}")


def _check_float(name: str, v: Any, lo: float, hi: float, lo_open: bool, hi_open: bool) -> None:
    lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
    rng = f"in {lb}{lo}, {hi}{rb}" if hi != math.inf else f"{'>' if lo_open else '>='} {lo}"
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{name} = {v!r}: must be a number {rng}, got {_type_name(v)}")
    ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok or not math.isfinite(v):
        raise ConfigError(f"{name} = {v}: must be a number {rng}")


def _check_choice(name: str, v: Any, choices: tuple[str, ...]) -> None:
    if v not in choices or not isinstance(v, str):
        raise ConfigError(f"{name} = {v!r}: must be one of {', '.join(choices)}")


def _check_value(name: str, v: Any) -> None:
    field_name = name.split(".")[1]
    if field_name in ("n", "width", "m", "batch", "steps", "eval_every", "n_test", "depth"):
        _check_int(name, v, lo=1)
    elif field_name == "k":
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} = {v!r}: must be an integer in 1..n")
    elif field_name == "s":
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} = {v!r}: must be an integer in 1..n for sparse init")
    elif field_name in ("data_seed", "init_seed"):
        _check_int(name, v, lo=0)
    elif field_name == "noise":
        _check_float(name, v, 0.0, 0.5, lo_open=False, hi_open=True)
    elif field_name == "lr":
        _check_float(name, v, 0.0, math.inf, lo_open=True, hi_open=True)
    elif field_name == "wd":
        _check_float(name, v, 0.0, math.inf, lo_open=False, hi_open=True)
    elif field_name == "threshold":
        _check_float(name, v, 0.0, 1.0, lo_open=False, hi_open=True)
    elif field_name == "loss":
        _check_choice(name, v, LOSSES)
    elif field_name == "init":
        _check_choice(name, v, INITS)
    elif field_name == "vary":
        _check_choice(name, v, VARIES)
    elif field_name in ("stop_on_success", "online", "record_curves"):
        _check_scalar(name, v, bool)
    else:  # pragma: no cover - every field is listed above
        raise AssertionError(name)


DEFAULT_STUDY = Study(
    name="fig1-cpu",
    seed=0,
    seeds=16,
    task=Task(n=50, k=3, m=[200, 500, 1000, 2000, 5000], n_test=2000, noise=0.0),
    model=Model(width=[10, 30, 100, 300, 1000], depth=1, init=["dense", "sparse"], s=2),
    train=Train(),
)
