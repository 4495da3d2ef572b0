"""The parity study's configuration: its dataclasses (:class:`Study` of :class:`Task`,
:class:`Model`, :class:`Train`; a grid point is a :class:`Cell`), its rule table and its grid
expansion (docs/DESIGN.md §4 "Study config").

Any field of ``[task]``, ``[model]`` or ``[train]`` given as a list becomes a grid axis
(cartesian product). ``s`` applies only to sparse cells: dense cells ignore it and are not
duplicated. A target's parameters are ``[task]`` keys too, declared by its registry entry
(``parity_jax.targets``): a cell holds those of its own target. Single-field rules are rows of
``RULES`` (checked in that order, which is also the order of the grid axes); the rules that
relate fields are :meth:`Cell.check`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import ClassVar

from parity_jax import config, targets, terms
from parity_jax.config import (
    INF,
    INITS,
    INT32_MAX,
    MAX_DEPTH,
    MAX_STEPS,
    Grid,
    Rule,
    choice_rule,
    float_rule,
    int_rule,
)
from parity_jax.errors import ConfigError, show
from parity_jax.kinds.parity.cell import (  # noqa: F401 -- part of this module's face
    LATER_DEFAULTS,
    Cell,
    binary,
    cell_record,
    later_defaults,
)

LOSSES = ("hinge", "logistic", "square")
VARIES = ("both", "init", "data")
PRECISIONS = ("float32", "tf32", "bfloat16")

_TASK_FIELDS = ("n", "k", "m", "n_test", "noise", "online", "inputs", "target")


@dataclass(frozen=True, init=False)
class Task:
    """A sparse target of k of n coordinates (parity by default) with m training samples;
    list-valued fields are grid axes.

    ``target``: a registered target (``parity_jax.targets``: parity, majority, staircase,
    polynomial, hermite, or a name given to ``register_target``); ``inputs``: "boolean"
    (uniform ±1) or "gaussian". The target's parameters are keyword arguments (``[task]``
    keys), e.g. ``Task(target="hermite", inputs="gaussian", degree=3)``; they are held in
    ``params`` and read as attributes (``task.degree``; None when not given).
    """

    n: Grid[int] = 50
    k: Grid[int] = 3
    m: Grid[int] = 1000
    n_test: Grid[int] = 2000
    noise: Grid[float] = 0.0
    # a fresh minibatch from the distribution every step (m is ignored)
    online: Grid[bool] = False
    inputs: Grid[str] = "boolean"
    target: Grid[str] = targets.DEFAULT
    params: tuple[tuple[str, targets.ParamValue], ...] = ()  # the target parameters given

    def __init__(self, n=50, k=3, m=1000, n_test=2000, noise=0.0, online=False,
                 inputs="boolean", target=targets.DEFAULT, params=(), **target_params):
        for name, v in zip(_TASK_FIELDS, (n, k, m, n_test, noise, online, inputs, target),
                           strict=True):
            object.__setattr__(self, name, v)
        given = {**dict(params), **target_params}
        unknown = [p for p in given if p not in targets.param_names()]
        if unknown:
            raise ConfigError(f"task.{unknown[0]}: unknown key; allowed: "
                              f"{', '.join(self.extra_keys(fixed=True))}")
        # a parameter at its implicit value is left out: the study it was before it existed
        object.__setattr__(self, "params", tuple(
            (p, v) for p, v in given.items()
            if v is not None and not (isinstance(v, str) and v == targets.implicit(p))))

    def __getattr__(self, name: str):
        # a target parameter not given reads as None (only called when lookup fails)
        if not name.startswith("_") and name in targets.param_names():
            return dict(self.params).get(name)
        raise AttributeError(f"'Task' object has no attribute {name!r}")

    @classmethod
    def extra_keys(cls, fixed: bool = False) -> list[str]:
        """The [task] keys beyond the fields: every registered target's parameters."""
        return ([*_TASK_FIELDS] if fixed else []) + targets.param_names()

    def to_dict(self) -> dict:
        """The task's settings, its target parameters as keys of their own."""
        return {**{f: getattr(self, f) for f in _TASK_FIELDS}, **dict(self.params)}


@dataclass(frozen=True)
class Model:
    """MLP n -> width (-> width)* -> 1; ``s`` is used by sparse cells only.

    ``param``: how init and per-layer learning rates scale with width (``models.scalings``):
    "standard", "mup" (equal to standard at ``base_width``; ``base_width`` is used by mup
    cells only) or "mean_field" (the two-layer mean-field model: depth 1).
    """

    width: Grid[int] = 100
    depth: Grid[int] = 1
    init: Grid[str] = "dense"
    s: Grid[int] = 2
    param: Grid[str] = "standard"
    base_width: Grid[int] = config.BASE_WIDTH


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
    # A real-valued target's NMSE: test MSE / its population variance ("population", the
    # default: the threshold means the same in every trial) or / its test labels' variance
    # ("test", what older stores mean: it moves the threshold 2.4x between trials of
    # degree-3 Hermite over 1000 points). terms.py; unused by ±1 targets
    nmse: Grid[str] | None = None
    recover: Grid[float] | None = None  # and every term's recovery >= it (None: unmeasured)


@dataclass(frozen=True)
class Adaptive:
    """An adaptive study (``[adaptive]``): each cell gets seeds in rounds -- ``first`` in the
    first, then twice as many at each round, up to the study's ``seeds`` -- and stops as soon
    as its anytime-valid interval for p (``reduce.confidence_sequence`` at level ``alpha``)
    lies wholly above or below ``target`` (kinds/parity/adaptive.py)."""

    target: float = 0.5
    alpha: float = 0.05
    first: int = 8


SELECT_OVER = ("lr", "wd")  # the [train] axes a study may tune per cell (``[select]``)


@dataclass(frozen=True)
class Select:
    """Tuning one [train] axis honestly (``[select]``): the cells that differ only in ``over``
    are one group; ``report`` chooses its value on one half of the seeds and measures p on the
    other (cross-fitting, ``reduce.cross_fit``); the trials run are the study's as without it."""

    over: str = "lr"


# Every setting of a parity study, in the order they are checked (the first bad one is
# reported); the order of the section fields is also the order of the grid axes, i.e. of
# Study.cells() (a target's parameters come right after task.target: ``Study.extra_rule_keys``).
RULES: dict[str, Rule] = {
    **config.COMMON_RULES,
    "task.n": int_rule(1, INT32_MAX, grid=True),
    "task.k": int_rule(1, "n", grid=True),
    "task.m": int_rule(1, INT32_MAX, grid=True),
    "task.n_test": int_rule(1, INT32_MAX, grid=True),
    "task.noise": float_rule(0.0, 0.5, lo_open=False, hi_open=True, grid=True),
    "task.online": Rule("bool", grid=True),
    "task.inputs": choice_rule(targets.INPUTS, grid=True),
    "task.target": Rule("str", lo=1, grid=True),  # a registered target: Cell.check
    "model.width": int_rule(1, INT32_MAX, grid=True),
    "model.depth": int_rule(1, MAX_DEPTH, grid=True),
    "model.init": choice_rule(INITS, grid=True),
    "model.s": int_rule(1, "n", grid=True, note=" for sparse init"),
    "model.param": choice_rule(config.PARAMS, grid=True),
    "model.base_width": int_rule(1, INT32_MAX, grid=True, note=" (used by mup only)"),
    "train.lr": float_rule(0.0, INF, lo_open=True, hi_open=True, grid=True),
    "train.wd": float_rule(0.0, INF, lo_open=False, hi_open=True, grid=True),
    "train.batch": int_rule(1, INT32_MAX, grid=True),
    "train.loss": choice_rule(LOSSES, grid=True, optional=True),
    "train.steps": int_rule(1, MAX_STEPS, grid=True),
    "train.eval_every": int_rule(1, MAX_STEPS, grid=True),
    "train.threshold": float_rule(0.0, 1.0, lo_open=False, hi_open=True, grid=True),
    "train.stop_on_success": Rule("bool", grid=True),
    "train.vary": choice_rule(VARIES, grid=True),
    "train.data_seed": int_rule(0, INT32_MAX, grid=True),
    "train.init_seed": int_rule(0, INT32_MAX, grid=True),
    "train.record_curves": Rule("bool", grid=True),
    "train.precision": choice_rule(PRECISIONS, grid=True),
    "train.nmse": choice_rule(terms.NMSE_MODES, grid=True, optional=True),
    "train.recover": Rule("float", lo=0.0, hi=1.0, grid=True, optional=True),
    "adaptive.target": float_rule(0.0, 1.0, lo_open=True, hi_open=True),
    "adaptive.alpha": float_rule(0.0, 0.5, lo_open=True, hi_open=False),
    "adaptive.first": int_rule(1, config.MAX_TRIALS),
    "select.over": choice_rule(SELECT_OVER),
}
_GRID_SECTIONS = ("task", "model", "train")  # the sections whose fields are grid axes


@dataclass(frozen=True)
class Study(config.StudyConfig):
    """A whole study: grid of cells x ``seeds`` trials each.

    Args:
      name: label stored with the results.
      seed: study seed; every trial key derives from it.
      seeds: trials per cell (seed indices 0..seeds-1).
      task, model, train: sections; any field may be a list (a grid axis).
      adaptive: None (every cell runs ``seeds`` seeds) or an ``Adaptive``: seeds in rounds,
        a cell stopping once its answer is settled (``seeds`` is then the most per cell).
      select: None, or a ``Select``: the [train] axis ``report`` tunes per group, cross-fitted.
    """

    SECTIONS: ClassVar[dict[str, type]] = {"task": Task, "model": Model, "train": Train,
                                           "adaptive": Adaptive, "select": Select}
    RULES: ClassVar[dict[str, Rule]] = RULES

    name: str = "study"
    seed: int = 0
    seeds: int = 16
    task: Task = field(default_factory=Task)
    model: Model = field(default_factory=Model)
    train: Train = field(default_factory=Train)
    adaptive: Adaptive | None = None
    select: Select | None = None

    def __post_init__(self):
        # the natural loss of ±1-valued targets is hinge, as every study said before
        # real-valued targets existed (so their fingerprints stay); with a real-valued target
        # among the grid's, each cell takes its target's (``_expand``)
        task, train = self.task, self.train
        if isinstance(train, Train) and train.loss is None and isinstance(task, Task) \
                and all(binary(t) for t in config.axis(task.target)):
            object.__setattr__(self, "train", dataclasses.replace(train, loss="hinge"))
        # a new real-valued study succeeds by the population variance (``from_stored``: old)
        if isinstance(self.train, Train) and self.train.nmse is None \
                and isinstance(task, Task) and not all(binary(t)
                                                       for t in config.axis(task.target)):
            object.__setattr__(self, "train", dataclasses.replace(self.train,
                                                                  nmse="population"))

    @classmethod
    def from_stored(cls, d: dict) -> Study:
        """A stored study (``to_dict``); stored without ``train.nmse``: "test"."""
        train = d.get("train")
        if isinstance(train, dict) and "nmse" not in train:
            d = {**d, "train": {**train, "nmse": "test"}}
        return cls.from_dict(d)

    @staticmethod
    def rule_for(key: str) -> Rule:
        """The rule of a target parameter's key ("task.degree")."""
        section, name = key.split(".", 1)
        if section != "task" or name not in targets.param_names():
            raise KeyError(key)
        return targets.param_rule(name)

    @staticmethod
    def keys_of(study: Study) -> list[str]:
        """Every setting of ``study`` in check order: the target parameters it gives right
        after task.target."""
        out = []
        given = [f"task.{p}" for p, _ in study.task.params] if isinstance(study.task, Task) \
            else []
        for key in RULES:
            if key.startswith(("adaptive.", "select.")) \
                    and getattr(study, key.split(".")[0]) is None:
                continue  # not an adaptive study, or none that selects
            out.append(key)
            if key == "task.target":
                out += given
        return out

    def to_dict(self) -> dict:
        """The resolved config (defaults filled in), JSON-serialisable."""
        d = dataclasses.asdict(self)
        if isinstance(self.task, Task):
            d["task"] = self.task.to_dict()
        for section in ("adaptive", "select"):  # added after stores existed: fingerprints stay
            if getattr(self, section) is None:
                del d[section]
        if isinstance(self.train, Train) and self.train.nmse is None:
            # resolved now, not only when built: a study built before its real-valued target
            # was registered runs its cells by the population variance (``_expand``) and must
            # say so, or it reads back as "test" (``from_stored``)
            d["train"]["nmse"] = "population"
        if isinstance(self.train, Train) and isinstance(self.task, Task) and all(
                binary(t) for t in config.axis(self.task.target)):
            del d["train"]["nmse"]  # ±1 targets only: no cell reads it
        if isinstance(self.model, Model) and "mup" not in config.axis(self.model.param):
            d["model"]["base_width"] = config.BASE_WIDTH  # no cell reads it
        return {k: config.without_later_defaults(v, later_defaults()) if isinstance(v, dict)
                else v for k, v in d.items()}

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        for key in self.keys_of(self):
            if "." not in key or key.startswith(("adaptive.", "select.")):  # others: cells()
                config.values(self, key)
        if self.adaptive is not None and self.adaptive.first > self.seeds:
            raise ConfigError(f"adaptive.first = {self.adaptive.first}: must be at most seeds "
                              f"({self.seeds}), the most seeds a cell gets")
        self.cells()  # validates every value, including cross-field rules
        if self.select is not None:
            axes = [o for o in SELECT_OVER if len(config.axis(getattr(self.train, o))) > 1]
            allowed = ", ".join(axes) or "none (train.lr and train.wd are single values)"
            if self.select.over not in axes:
                raise ConfigError(f"select.over = {show(self.select.over)}: must be a [train] "
                                  f"grid axis of at least 2 values; allowed: {allowed}")
            if self.seeds < 2:  # one seed: no half to choose on and another to measure on
                raise ConfigError(f"seeds = {self.seeds}: must be at least 2 with [select] "
                                  "(chosen on one half of the seeds, measured on the other)")
            if self.adaptive is not None:  # the halves' sizes would depend on the outcomes
                raise ConfigError("select: must not be combined with [adaptive] (the seed "
                                  "halves' sizes would depend on the outcomes; allowed: one "
                                  "of the two)")

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
        keys = [key for key in self.keys_of(self) if key.split(".")[0] in _GRID_SECTIONS]
        axes = [(key.split(".")[1], config.values(self, key)) for key in keys]  # checks each
        config.check_trials(self, _count_cells(dict(axes)))  # before building them: stays fast
        floats = [key.split(".")[1] for key in keys if config.rule_of(self, key).kind == "float"]
        names = [a for a, _ in axes]
        given = set(targets.param_names()) & set(names)
        cells: list[Cell] = []
        seen: set[Cell] = set()
        for combo in itertools.product(*(v for _, v in axes)):
            d = dict(zip(names, combo, strict=True))
            if d["init"] == "dense":
                d["s"] = None  # dense cells ignore s
            if d["online"]:
                d["m"] = None  # online cells have no training set
            if d["param"] != "mup":
                d["base_width"] = Model.base_width  # only mup cells read it
            for key in floats:
                d[key] = None if d[key] is None else float(d[key])
            targets.check_name(d["target"])
            d["params"] = targets.cell_params(d["target"], {p: d.pop(p) for p in given},
                                              grid=config.axis(self.task.target))
            if d["loss"] is None:  # the target's natural loss
                d["loss"] = "hinge" if binary(d["target"]) else "square"
            if binary(d["target"]):
                d["nmse"] = None  # a ±1 target succeeds by its test error
            elif d["nmse"] is None:
                d["nmse"] = "population"
            if not terms.has_terms(d["target"]):
                d["recover"] = None  # nothing to recover (refused below if no cell has terms)
            cell = Cell(**d)
            cell.check()
            if cell not in seen:
                seen.add(cell)
                cells.append(cell)
        recover = [r for r in config.axis(self.train.recover) if r is not None]
        if recover and not any(terms.has_terms(c.target) for c in cells):
            terms.check_recover(cells[0].target, recover[0])
        return cells


def _count_cells(axes: dict[str, list]) -> int:
    """How many cells a parity grid of these (checked) axes expands to, at most -- without
    expanding it: dense cells ignore ``s``, online cells ignore ``m``, a cell holds only its
    own target's parameters."""
    params = [p for p in targets.param_names() if p in axes]
    plain = math.prod(len(v) for k, v in axes.items()
                      if k not in ("init", "s", "online", "m", "target", *params))
    inits = sum(len(axes["s"]) if i == "sparse" else 1 for i in axes["init"])
    data = sum(1 if online else len(axes["m"]) for online in axes["online"])
    per_target = sum(
        math.prod(len(axes[p.name]) for p in targets.get(t).params if p.name in axes)
        if t in targets.registered() else 1 for t in axes["target"])
    return plain * inits * data * per_target


DEFAULT_STUDY = Study(
    name="fig1-cpu",
    seed=0,
    seeds=16,
    task=Task(n=50, k=3, m=[200, 500, 1000, 2000, 5000], n_test=2000, noise=0.0),
    model=Model(width=[10, 30, 100, 300, 1000], depth=1, init=["dense", "sparse"], s=2),
    train=Train(),
)
