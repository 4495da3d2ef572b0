"""Study configuration: dataclasses, TOML loading, validation and grid expansion.

Any field of ``[task]``, ``[model]`` or ``[train]`` given as a list becomes a grid axis
(cartesian product). ``s`` applies only to sparse cells: dense cells ignore it and are not
duplicated. Unknown keys and wrong types are errors (:class:`ConfigError`).

Every single-field rule of both study kinds (:class:`Study`, :class:`TabularStudy`) is one row of
``_RULES`` below, with the engine's upper bounds (``INT32_MAX`` and the other limits); the rules
that relate fields (``k <= n``, ``s <= n``, ``mlp.steps`` a multiple of ``mlp.eval_every``, one
trial's sizes such as n x width within int32, cells x seeds within ``MAX_TRIALS``, counted
before the grid is expanded) are written out where they apply (:meth:`Cell.check`,
:meth:`TabularStudy.validate`, ``_check_trials``). Rules that need the data (a tabular
fraction's rows, width x features) are ``datasets.check_study``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import stat
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeAlias, TypeVar

from parity_jax.errors import ConfigError, digest, show

LOSSES = ("hinge", "logistic", "square")
INITS = ("dense", "sparse")
VARIES = ("both", "init", "data")
PRECISIONS = ("float32", "tf32", "bfloat16")
INPUTS = ("boolean", "gaussian")  # task.inputs: uniform ±1, or N(0, I_n)
MAX_DEGREE = 10  # task.degree: the largest Hermite degree p (He_p grows as t^p)

# Upper bounds of the engine (docs/DESIGN.md; the README's "Study config (TOML)" table). The
# compiled programs index with int32 (widths, m, n_test, steps, seed indices, row indices), and
# jax.random.key keeps 32 bits of the study seed (2**32 would be seed 0 again).
INT32_MAX = 2**31 - 1
SEED_MAX = 2**32 - 1
MAX_STEPS = 10**9  # steps + eval_every must stay an int32 step counter
MAX_TRIALS = 10**6  # cells x seeds: what `plan` lays out within seconds (10x benchmarks/scale)
MAX_CELLS = 10**5  # grid cells (each costs more to lay out than a seed)
MAX_EVALS = 10**6  # evaluations a trial records (record_curves; every tabular trial)
MAX_DEPTH = 16  # hidden layers are unrolled in the compiled program
MAX_FOREST_ITERATIONS = 10_000
MAX_CONFIG_BYTES = 2**20  # a study config is small: more is not a config (or not a file)

_T = TypeVar("_T")
Grid: TypeAlias = _T | list[_T] | tuple[_T, ...]
"""A setting that may be a list (or tuple) of values: a grid axis."""


@dataclass(frozen=True)
class Task:
    """A sparse target of k of n coordinates (parity by default) with m training samples;
    list-valued fields are grid axes, except ``terms`` and ``coefs`` (one polynomial per study).

    ``target``: a registered target (``tasks.targets``: parity, majority, staircase,
    polynomial, hermite, or a name given to ``register_target``); ``inputs``: "boolean"
    (uniform ±1) or "gaussian"; ``terms``/``coefs``: the polynomial's terms (positions 1..k)
    and coefficients; ``degree``: hermite's degree p (not ``p``: a cell's reduced record holds
    its success probability as ``p``).
    """

    n: Grid[int] = 50
    k: Grid[int] = 3
    m: Grid[int] = 1000
    n_test: Grid[int] = 2000
    noise: Grid[float] = 0.0
    # a fresh minibatch from the distribution every step (m is ignored)
    online: Grid[bool] = False
    inputs: Grid[str] = "boolean"
    target: Grid[str] = "parity"
    terms: list[list[int]] | None = None  # polynomial only: not a grid axis
    coefs: list[float] | None = None  # polynomial only: not a grid axis
    degree: Grid[int] | None = None  # hermite only


@dataclass(frozen=True)
class Model:
    """MLP n -> width (-> width)* -> 1; ``s`` is used by sparse cells only."""

    width: Grid[int] = 100
    depth: Grid[int] = 1
    init: Grid[str] = "dense"
    s: Grid[int] = 2


@dataclass(frozen=True)
class Train:
    """Minibatch SGD with coupled weight decay, periodic evaluation and success threshold."""

    lr: Grid[float] = 0.1
    wd: Grid[float] = 0.01
    batch: Grid[int] = 32
    # None: the target's natural loss, hinge for a ±1-valued target, square for a real-valued one
    loss: Grid[str] | None = None
    steps: Grid[int] = 10000
    eval_every: Grid[int] = 100
    threshold: Grid[float] = 0.1
    stop_on_success: Grid[bool] = True
    vary: Grid[str] = "both"
    data_seed: Grid[int] = 0
    init_seed: Grid[int] = 0
    record_curves: Grid[bool] = False  # store every evaluation's test error and train loss
    precision: Grid[str] = "float32"  # float32 (exact) | tf32 | bfloat16: matmul precision


# Settings added after stores existed: left out of a study's or cell's identity while at their
# default, so stores written before them keep their fingerprints (and resume).
LATER_DEFAULTS = {"online": False, "record_curves": False, "precision": "float32",
                  "inputs": "boolean", "target": "parity", "terms": None, "coefs": None,
                  "degree": None}


def _axis(v) -> list:
    return list(v) if isinstance(v, list | tuple) else [v]


def _binary(target) -> bool:
    """Whether ``target`` is a registered ±1-valued target (an unknown name counts as ±1 here:
    the cell check refuses it, naming task.target)."""
    if target == "parity":  # the default: known without importing the targets (and JAX)
        return True
    from parity_jax.tasks import targets  # the targets import this module

    return not isinstance(target, str) or target not in targets.registered() \
        or targets.is_binary(target)


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

    _SECTIONS: ClassVar[dict[str, type]] = {"task": Task, "model": Model, "train": Train}

    name: str = "study"
    seed: int = 0
    seeds: int = 16
    task: Task = field(default_factory=Task)
    model: Model = field(default_factory=Model)
    train: Train = field(default_factory=Train)

    def __post_init__(self):
        # the natural loss of ±1-valued targets is hinge, as every study said before
        # real-valued targets existed (so their fingerprints stay); with a real-valued target
        # among the grid's, each cell takes its target's (``_expand``)
        task, train = self.task, self.train
        if isinstance(train, Train) and train.loss is None and isinstance(task, Task) \
                and all(_binary(t) for t in _axis(task.target)):
            object.__setattr__(self, "train", dataclasses.replace(train, loss="hinge"))

    @classmethod
    def from_dict(cls, d: dict) -> Study:
        """Builds a study from a parsed TOML dict; raises ConfigError on unknown keys/types."""
        study = cls(**_sections(cls, d, cls._SECTIONS))
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
        return digest(self.to_dict())

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        for key in _keys(self):
            if "." not in key:  # the sections' fields are checked by cells()
                _values(self, key)
        self.cells()  # validates every value, including cross-field rules

    def cells(self) -> list[Cell]:
        """Expands the grid into validated cells, in a deterministic order (computed once per
        setting of the study: ``plan`` and ``run`` ask several times)."""
        try:
            fingerprint = self.fingerprint()
        except (TypeError, ValueError):  # not JSON: the checks below say what is wrong
            fingerprint = None
        cached = self.__dict__.get("_cells")
        if fingerprint is not None and cached is not None and cached[0] == fingerprint:
            return list(cached[1])
        cells = self._expand()
        if fingerprint is not None:
            object.__setattr__(self, "_cells", (fingerprint, tuple(cells)))  # frozen: a cache
        return cells

    def _expand(self) -> list[Cell]:
        keys = [key for key in _keys(self) if "." in key]  # task.n, ..., train.record_curves
        axes = [(key.split(".")[1], _values(self, key)) for key in keys]  # checks every value
        _check_trials(self, _count_cells(dict(axes)))  # before building them: stays fast
        floats = [key.split(".")[1] for key in keys if _RULES[key].kind == "float"]
        names = [a for a, _ in axes]
        cells: list[Cell] = []
        seen: set[Cell] = set()
        for combo in itertools.product(*(v for _, v in axes)):
            d = dict(zip(names, combo, strict=True))
            if d["init"] == "dense":
                d["s"] = None  # dense cells ignore s
            if d["online"]:
                d["m"] = None  # online cells have no training set
            _target_settings(d)
            if d["loss"] is None:  # the target's natural loss
                d["loss"] = "hinge" if _binary(d["target"]) else "square"
            for key in floats:
                d[key] = float(d[key])
            cell = Cell(**d)
            cell.check()
            if cell not in seen:
                seen.add(cell)
                cells.append(cell)
        return cells


def _target_settings(d: dict) -> None:
    """A cell's target parameters: ``terms``/``coefs`` (tuples, hashable) for a polynomial,
    ``degree`` for hermite; other targets ignore them (None), as dense cells ignore ``s``."""
    if d["target"] == "polynomial" and d["terms"] is not None and d["coefs"] is not None:
        d["terms"] = tuple(tuple(t) for t in d["terms"])
        d["coefs"] = tuple(float(c) for c in d["coefs"])
    elif d["target"] != "polynomial":
        d["terms"] = d["coefs"] = None
    if d["target"] != "hermite":
        d["degree"] = None


def check_task(task: Task) -> dict:
    """The settings of a task of single values (``tasks.sample.sample``), each checked by its
    rule and the target's rules; returns them as a dict (the cell's task settings)."""
    if not isinstance(task, Task):
        raise ConfigError(f"task: must be a Task, got {type(task).__name__}")
    d = {}
    for f in dataclasses.fields(Task):
        key, v = f"task.{f.name}", getattr(task, f.name)
        if _RULES[key].grid and isinstance(v, list | tuple):
            raise ConfigError(f"{key} = {show(v)}: must be one value here (not a grid axis)")
        _RULES[key].check(key, v)
        d[f.name] = v
    if d["k"] > d["n"]:
        raise ConfigError(f"task.k = {d['k']}: must be an integer in 1..n (n = {d['n']})")
    _target_settings(d)
    from parity_jax.tasks import targets  # (it imports this module)

    targets.check(d["target"], k=d["k"], inputs=d["inputs"], terms=d["terms"],
                  coefs=d["coefs"], degree=d["degree"], noise=d["noise"])
    return d


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
    precision: str = "float32"
    inputs: str = "boolean"
    target: str = "parity"
    terms: tuple[tuple[int, ...], ...] | None = None  # polynomial cells only
    coefs: tuple[float, ...] | None = None  # polynomial cells only
    degree: int | None = None  # hermite cells only

    def check(self) -> None:
        """Cross-field rules (single-field rules are checked while expanding)."""
        if self.k > self.n:
            raise ConfigError(f"task.k = {self.k}: must be an integer in 1..n (n = {self.n})")
        from parity_jax.tasks import targets  # (it imports this module)

        targets.check(self.target, k=self.k, inputs=self.inputs, terms=self.terms,
                      coefs=self.coefs, degree=self.degree, noise=self.noise, loss=self.loss)
        if self.s is not None and self.s > self.n:
            raise ConfigError(
                f"model.s = {self.s}: must be an integer in 1..n (n = {self.n}) for sparse init"
            )
        # one trial's arrays stay within int32 indexing (INT32_MAX elements each)
        n, width = self.n, self.width
        if n * width > INT32_MAX:
            raise ConfigError(f"model.width = {width}: must be at most {INT32_MAX // n} for "
                              f"n = {n} (n x width <= {INT32_MAX}: one trial's first layer)")
        if self.depth > 1 and (self.depth - 1) * width * width > INT32_MAX:
            raise ConfigError(
                f"model.width = {width}: must be at most "
                f"{math.isqrt(INT32_MAX // (self.depth - 1))} for depth = {self.depth} "
                f"((depth - 1) x width^2 <= {INT32_MAX}: one trial's hidden layers)")
        if self.m is not None and self.m * n > INT32_MAX:
            raise ConfigError(f"task.m = {self.m}: must be at most {INT32_MAX // n} for n = {n} "
                              f"(m x n <= {INT32_MAX}: one training set)")
        if self.n_test * n > INT32_MAX:
            raise ConfigError(f"task.n_test = {self.n_test}: must be at most {INT32_MAX // n} "
                              f"for n = {n} (n_test x n <= {INT32_MAX}: one test set)")
        if self.batch * max(n, width) > INT32_MAX:
            raise ConfigError(
                f"train.batch = {self.batch}: must be at most {INT32_MAX // max(n, width)} for "
                f"n = {n}, width = {width} (batch x max(n, width) <= {INT32_MAX}: one "
                "minibatch)")
        if self.record_curves and -(-self.steps // self.eval_every) > MAX_EVALS:
            raise ConfigError(
                f"train.eval_every = {self.eval_every}: must be at least "
                f"{-(-self.steps // MAX_EVALS)} for steps = {self.steps} with record_curves "
                f"(at most {MAX_EVALS} recorded evaluations per trial)")

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
    """Train / validation / test split of each dataset (``datasets.split``)."""

    max_train: int = 10_000
    max_eval: int = 50_000


@dataclass(frozen=True)
class MLP:
    """The MLP grid of the tabular benchmark: ``width``, ``depth``, ``init``, ``s``,
    ``optimizer`` and ``lr`` may be lists (grid axes); model selection picks the best setting
    per (dataset, fraction, init family). SGD by default: the README's tabular section shows
    why (Adam did worse at every fraction below 1)."""

    width: Grid[int] = (100, 1000)
    depth: Grid[int] = 1
    init: Grid[str] = ("dense", "sparse")
    s: Grid[int] = (2, 4)
    optimizer: Grid[str] = "sgd"
    lr: Grid[float] = (1e-3, 1e-2)
    wd: float = 0.0
    batch: int = 64
    steps: int = 1000
    eval_every: int = 100


@dataclass(frozen=True)
class Forest:
    """The random-forest baseline: ``iterations`` random-search configurations (0: none)."""

    iterations: int = 10
    n_estimators_max: int = 3000


@dataclass(frozen=True)
class TabularStudy:
    """MLPs (dense and sparse init) against tuned random forests on tabular datasets, with
    training sets downsampled to ``fractions``; ``seeds`` trials per setting.

    Args:
      datasets: ``datasets.load`` specs (benchmark names, openml:ID, sklearn:NAME, parity[:..],
        .csv/.npz paths).
      fractions: training-set fractions in (0, 1].
    """

    _SECTIONS: ClassVar[dict[str, type]] = {"split": Split, "mlp": MLP, "forest": Forest}

    name: str = "tabular"
    seed: int = 0
    seeds: int = 5
    datasets: Grid[str] = ("sklearn:breast_cancer",)
    # (0.01 of breast_cancer's 398 training rows would leave 4: below datasets.MIN_TRAIN_ROWS)
    fractions: Grid[float] = (1.0, 0.3, 0.1, 0.03)
    split: Split = field(default_factory=Split)
    mlp: MLP = field(default_factory=MLP)
    forest: Forest = field(default_factory=Forest)

    @classmethod
    def from_dict(cls, d: dict) -> TabularStudy:
        study = cls(**_sections(cls, d, cls._SECTIONS))
        study.validate()
        return study

    @classmethod
    def from_toml(cls, path: str | Path) -> TabularStudy:
        return cls.from_dict(_read_toml(path))

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists

    def fingerprint(self) -> str:
        return digest(self.to_dict())

    def axis(self, name: str) -> list:
        """A setting as a list of values (``datasets``, ``fractions`` or ``mlp.FIELD``)."""
        v = _get(self, name)
        return list(v) if isinstance(v, list | tuple) else [v]

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        for key in _keys(self):
            _values(self, key)
        mlp = self.mlp
        if mlp.steps % mlp.eval_every:
            raise ConfigError(f"mlp.steps = {mlp.steps}: must be a multiple of "
                              f"mlp.eval_every ({mlp.eval_every})")
        if mlp.steps // mlp.eval_every > MAX_EVALS:
            raise ConfigError(f"mlp.eval_every = {mlp.eval_every}: must be at least "
                              f"{-(-mlp.steps // MAX_EVALS)} for mlp.steps = {mlp.steps} (every "
                              f"trial records at most {MAX_EVALS} evaluations)")
        # one trial's arrays stay within int32 indexing (width x features: kinds/tabular.py)
        width, depth = max(self.axis("mlp.width")), max(self.axis("mlp.depth"))
        if depth > 1 and (depth - 1) * width * width > INT32_MAX:
            raise ConfigError(
                f"mlp.width = {width}: must be at most {math.isqrt(INT32_MAX // (depth - 1))} "
                f"for mlp.depth = {depth} ((depth - 1) x width^2 <= {INT32_MAX}: one trial's "
                "hidden layers)")
        if mlp.batch * width > INT32_MAX:
            raise ConfigError(f"mlp.batch = {mlp.batch}: must be at most {INT32_MAX // width} "
                              f"for mlp.width = {width} (batch x width <= {INT32_MAX}: one "
                              "minibatch)")
        inits = sum(len(self.axis("mlp.s")) if i == "sparse" else 1
                    for i in self.axis("mlp.init"))
        per_fraction = math.prod(len(self.axis(f"mlp.{f}"))
                                 for f in ("optimizer", "depth", "width", "lr")) * inits
        per_fraction += 1 if self.forest.iterations else 0
        _check_trials(self, len(self.axis("datasets")) * len(self.axis("fractions"))
                      * per_fraction)

    def cells(self) -> list[TabularCell]:
        """Expands the grid into cells, in a deterministic order: per dataset, the MLP cells
        program by program ((optimizer, depth, width), then fraction, init, s, lr), then one
        forest cell per fraction (``forest.iterations`` = 0: none)."""
        self.validate()
        inits = [(i, s) for i in self.axis("mlp.init")
                 for s in (self.axis("mlp.s") if i == "sparse" else [None])]
        mlp = self.mlp
        out = []
        for dataset in self.axis("datasets"):
            # fractions and lr as given: they are part of a trial's key (keys.tabular_id)
            out += [TabularCell(dataset=dataset, fraction=f, model="mlp", width=width,
                                depth=depth, init=i, s=s, optimizer=opt, lr=lr, wd=mlp.wd,
                                batch=mlp.batch, steps=mlp.steps, eval_every=mlp.eval_every)
                    for opt in self.axis("mlp.optimizer") for depth in self.axis("mlp.depth")
                    for width in self.axis("mlp.width") for f in self.axis("fractions")
                    for i, s in inits for lr in self.axis("mlp.lr")]
            if self.forest.iterations:
                out += [TabularCell(dataset=dataset, fraction=f, model="forest",
                                    iterations=self.forest.iterations,
                                    n_estimators_max=self.forest.n_estimators_max)
                        for f in self.axis("fractions")]
        return out


@dataclass(frozen=True)
class TabularCell:
    """One setting of the tabular benchmark: an MLP configuration or the tuned forest, on one
    dataset at one training fraction (every setting of a trial except its seed)."""

    dataset: str
    fraction: float
    model: str  # "mlp" | "forest"
    width: int | None = None
    depth: int | None = None
    init: str | None = None
    s: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    wd: float | None = None
    batch: int | None = None
    steps: int | None = None
    eval_every: int | None = None
    iterations: int | None = None  # forest: random-search configurations
    n_estimators_max: int | None = None

    def key(self) -> str:
        """Canonical JSON of the cell, its identity in the store."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- loading -------------------------------------------------------------------------------


def load_study(path: str | Path) -> Study | TabularStudy:
    """A study TOML file, as the study of the kind that claims it (``kinds.for_config``: a
    tabular study when it has a ``datasets`` key, else a parity one)."""
    from parity_jax import kinds  # the kinds import this module

    d = _read_toml(path)
    return kinds.for_config(d).study_type.from_dict(d)


def read_toml(path: str | Path) -> dict:
    """A TOML file as a dict (for configs with tables of their own, e.g. experiments/lottery);
    a missing, unreadable, non-UTF-8 or malformed file is one ConfigError line."""
    return _read_toml(path)


def _read_toml(path: str | Path) -> dict:
    """The parsed TOML file; every way it can fail is one ConfigError line."""
    if not isinstance(path, str | os.PathLike):
        raise ConfigError(f"config = {show(path)}: must be a file path")
    path = Path(path)
    try:  # O_NONBLOCK: a FIFO is refused below, not waited on
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"config: file not found: {path}") from None
    except OSError as e:
        raise ConfigError(f"config: cannot read {path}: {e.strerror}") from None
    except ValueError as e:  # a path with a NUL character
        raise ConfigError(f"config = {show(str(path))}: cannot read it ({e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # /dev/zero, a FIFO, a directory
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise ConfigError(f"config: {path} is {what}; give a TOML file")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_CONFIG_BYTES + 1)
        except OSError as e:
            raise ConfigError(f"config: cannot read {path}: {e.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config: {path} is larger than {MAX_CONFIG_BYTES // 2**20} MiB; a "
                          "study config is a small TOML file")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is allowed
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ConfigError(f"config: {path} is not UTF-8 text (byte 0x{data[e.start]:02x} on "
                          f"line {line}); save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, or an integer of over 4300 digits
        raise ConfigError(f"config: cannot parse {path}: {e}") from None
    except RecursionError:
        raise ConfigError(f"config: cannot parse {path}: arrays or tables nested too deeply") \
            from None


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
                    raise ConfigError(f"{key}.{_key(sub)}: unknown key; allowed: "
                                      f"{', '.join(allowed)}")
            kwargs[key] = sections[key](**value)
        elif key in top:
            kwargs[key] = value
        else:
            allowed = ", ".join(sorted(top | set(sections)))
            raise ConfigError(f"{_key(key)}: unknown key; allowed: {allowed}")
    return kwargs


def _key(key: Any) -> str:
    """A TOML key as a message shows it: as written when plain, else quoted and escaped (one
    line, at most about 80 characters)."""
    key = str(key)
    return key if key.isprintable() and 0 < len(key) <= 80 else show(key)


# ---- per-field rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """What one setting allows.

    kind: "int", "float", "choice", "bool", "str", "terms" or "coefs" (a polynomial's lists).
    lo, hi: bounds of an int or float; an int's ``hi`` may name another field ("n"), which
      only a cross-field rule can check (it is at most INT32_MAX here). A str's ``lo``: its
      least length.
    lo_open, hi_open: whether a float's bounds are excluded.
    choices: the allowed strings of a choice.
    grid: whether the setting may be a list of values (a grid axis).
    note: said after the allowed range ("for sparse init").
    """

    kind: str
    lo: float | None = None
    hi: float | str | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    grid: bool = False
    note: str = ""
    optional: bool = False  # None (the default: not given) is allowed

    def check(self, name: str, v: Any) -> None:
        """Raises ConfigError unless ``v`` is one allowed value of setting ``name``."""
        got = type(v).__name__
        shown = show(v)
        if v is None and self.optional:
            return
        if self.kind in ("terms", "coefs"):  # a polynomial's lists (tasks.targets)
            from parity_jax.tasks import targets  # (it imports this module)

            (targets.check_terms if self.kind == "terms" else targets.check_coefs)(v)
        elif self.kind in ("bool", "str"):
            typ = bool if self.kind == "bool" else str
            if not isinstance(v, typ) or (typ is not bool and isinstance(v, bool)):
                raise ConfigError(f"{name} = {shown}: must be a {self.kind}, got {got}")
            if typ is str and len(v) < (self.lo or 0):
                raise ConfigError(f"{name} = {shown}: must be a non-empty string")
            if typ is str and any(unicodedata.category(c) in ("Cc", "Cs") for c in v):
                raise ConfigError(f"{name} = {shown}: must be a string without control "
                                  "characters")
        elif self.kind == "choice":
            if not isinstance(v, str) or v not in self.choices:
                raise ConfigError(f"{name} = {shown}: must be one of {', '.join(self.choices)}")
        elif self.kind == "int":
            is_int = isinstance(v, int) and not isinstance(v, bool)
            hi = INT32_MAX if isinstance(self.hi, str) else self.hi
            if not (is_int and self.lo <= v <= hi):
                raise ConfigError(f"{name} = {shown}: must be an integer in {self.lo}..{self.hi}"
                                  f"{self.note}{'' if is_int else f', got {got}'}")
        elif self.kind == "float":
            lo, hi = self.lo, self.hi
            lb, rb = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            rng = (f"in {lb}{lo}, {hi}{rb}" if hi != math.inf
                   else f"{'>' if self.lo_open else '>='} {lo}")
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ConfigError(f"{name} = {shown}: must be a number {rng}, got {got}")
            try:
                f = float(v)
            except OverflowError:  # an integer beyond every float
                f = math.inf
            ok = ((f > lo if self.lo_open else f >= lo)
                  and (f < hi if self.hi_open else f <= hi))
            if not ok or not math.isfinite(f):
                raise ConfigError(f"{name} = {shown}: must be a number {rng}")
        else:  # pragma: no cover - every kind is listed above
            raise AssertionError(self.kind)


def _int(lo: int, hi: int | str, *, grid: bool = False, note: str = "",
         optional: bool = False) -> _Rule:
    return _Rule("int", lo=lo, hi=hi, grid=grid, note=note, optional=optional)


def _float(lo: float, hi: float, lo_open: bool, hi_open: bool, *, grid: bool = False) -> _Rule:
    return _Rule("float", lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, grid=grid)


def _choice(choices: tuple[str, ...], *, grid: bool = False) -> _Rule:
    return _Rule("choice", choices=choices, grid=grid)


_INF = math.inf

# Every setting of both study kinds, "field" (top level) or "section.field", in the order they are
# checked (the first bad one is reported). The order of a Study's section fields is also the
# order of its grid axes, i.e. the order of Study.cells().
_RULES: dict[str, _Rule] = {
    # shared by Study and TabularStudy
    "name": _Rule("str", lo=1),
    "seed": _int(0, SEED_MAX),
    "seeds": _int(1, MAX_TRIALS),
    # Study: every [task], [model], [train] field may be a list (a grid axis)
    "task.n": _int(1, INT32_MAX, grid=True),
    "task.k": _int(1, "n", grid=True),
    "task.m": _int(1, INT32_MAX, grid=True),
    "task.n_test": _int(1, INT32_MAX, grid=True),
    "task.noise": _float(0.0, 0.5, lo_open=False, hi_open=True, grid=True),
    "task.online": _Rule("bool", grid=True),
    "task.inputs": _choice(INPUTS, grid=True),
    "task.target": _Rule("str", lo=1, grid=True),  # a registered target: Cell.check
    "task.terms": _Rule("terms", optional=True),
    "task.coefs": _Rule("coefs", optional=True),
    "task.degree": _int(1, MAX_DEGREE, grid=True, optional=True),
    "model.width": _int(1, INT32_MAX, grid=True),
    "model.depth": _int(1, MAX_DEPTH, grid=True),
    "model.init": _choice(INITS, grid=True),
    "model.s": _int(1, "n", grid=True, note=" for sparse init"),
    "train.lr": _float(0.0, _INF, lo_open=True, hi_open=True, grid=True),
    "train.wd": _float(0.0, _INF, lo_open=False, hi_open=True, grid=True),
    "train.batch": _int(1, INT32_MAX, grid=True),
    "train.loss": _Rule("choice", choices=LOSSES, grid=True, optional=True),
    "train.steps": _int(1, MAX_STEPS, grid=True),
    "train.eval_every": _int(1, MAX_STEPS, grid=True),
    "train.threshold": _float(0.0, 1.0, lo_open=False, hi_open=True, grid=True),
    "train.stop_on_success": _Rule("bool", grid=True),
    "train.vary": _choice(VARIES, grid=True),
    "train.data_seed": _int(0, INT32_MAX, grid=True),
    "train.init_seed": _int(0, INT32_MAX, grid=True),
    "train.record_curves": _Rule("bool", grid=True),
    "train.precision": _choice(PRECISIONS, grid=True),
    # TabularStudy
    "datasets": _Rule("str", grid=True),
    "fractions": _float(0.0, 1.0, lo_open=True, hi_open=False, grid=True),
    "mlp.width": _int(1, INT32_MAX, grid=True),
    "mlp.depth": _int(1, 3, grid=True),
    "mlp.init": _choice(INITS, grid=True),
    "mlp.s": _int(1, INT32_MAX, grid=True),
    "mlp.lr": _float(0.0, _INF, lo_open=True, hi_open=True, grid=True),
    "mlp.optimizer": _choice(OPTIMIZERS, grid=True),
    "mlp.wd": _float(0.0, _INF, lo_open=False, hi_open=True),
    "mlp.batch": _int(1, INT32_MAX),
    "mlp.steps": _int(1, MAX_STEPS),
    "mlp.eval_every": _int(1, MAX_STEPS),
    "split.max_train": _int(1, INT32_MAX),
    "split.max_eval": _int(1, INT32_MAX),
    "forest.iterations": _int(0, MAX_FOREST_ITERATIONS),
    "forest.n_estimators_max": _int(10, INT32_MAX),
}


def _keys(study: Study | TabularStudy) -> list[str]:
    """The settings of ``study``'s kind, in ``_RULES`` order."""
    sections = type(study)._SECTIONS
    top = {f.name for f in dataclasses.fields(study)} - set(sections)
    return [key for key in _RULES if (key.split(".")[0] in sections if "." in key else key in top)]


def _get(study: Study | TabularStudy, key: str) -> Any:
    """Setting ``key`` ("field" or "section.field") of ``study``; a section of the wrong type
    (e.g. a dict given in Python) is a ConfigError naming it."""
    if "." not in key:
        return getattr(study, key)
    section, name = key.split(".", 1)
    obj, cls = getattr(study, section), type(study)._SECTIONS[section]
    if not isinstance(obj, cls):
        article = "an" if cls is MLP else "a"
        raise ConfigError(f"{section}: must be {article} {cls.__name__} (or a [{section}] table "
                          f"in TOML), got {type(obj).__name__}")
    return getattr(obj, name)


def _values(study: Study | TabularStudy, key: str) -> list:
    """The values of setting ``key`` of ``study`` (several only for a grid axis), each checked
    against its rule; an empty or repeating axis is a ConfigError."""
    rule, value = _RULES[key], _get(study, key)
    if not (rule.grid and isinstance(value, list | tuple)):
        rule.check(key, value)
        return [value]
    values = list(value)
    if not values:
        raise ConfigError(f"{key}: an empty list has no values")
    for v in values:
        rule.check(key, v)
    same = float if rule.kind == "float" else json.dumps  # 1 and 1.0 are one lr, as 0.1, 0.10
    if len({same(v) for v in values}) != len(values):
        raise ConfigError(f"{key}: list has duplicate values {show(values)}")
    return values


def _count_cells(axes: dict[str, list]) -> int:
    """How many cells a parity grid of these (checked) axes expands to, at most -- without
    expanding it: dense cells ignore ``s``, online cells ignore ``m``, cells of targets other
    than hermite ignore ``degree``."""
    plain = math.prod(len(v) for k, v in axes.items()
                      if k not in ("init", "s", "online", "m", "target", "degree"))
    inits = sum(len(axes["s"]) if i == "sparse" else 1 for i in axes["init"])
    data = sum(1 if online else len(axes["m"]) for online in axes["online"])
    degrees = sum(len(axes["degree"]) if t == "hermite" else 1 for t in axes["target"])
    return plain * inits * data * degrees


def _check_trials(study: Study | TabularStudy, cells: int) -> None:
    """Refuses a study of more than MAX_TRIALS trials (cells x seeds) before anything is built
    from it: planning them would take minutes and gigabytes."""
    (seeds,) = _values(study, "seeds")
    if cells > MAX_CELLS:
        raise ConfigError(f"grid = {cells} cells: a study may have at most {MAX_CELLS} (the "
                          "product of its lists' lengths; use fewer values, or several studies)")
    if cells * seeds > MAX_TRIALS:
        raise ConfigError(f"seeds = {seeds}: {cells} cells x {seeds} seeds = {cells * seeds} "
                          f"trials; a study may hold at most {MAX_TRIALS} (use fewer seeds or "
                          "grid values, or several studies)")


DEFAULT_STUDY = Study(
    name="fig1-cpu",
    seed=0,
    seeds=16,
    task=Task(n=50, k=3, m=[200, 500, 1000, 2000, 5000], n_test=2000, noise=0.0),
    model=Model(width=[10, 30, 100, 300, 1000], depth=1, init=["dense", "sparse"], s=2),
    train=Train(),
)
