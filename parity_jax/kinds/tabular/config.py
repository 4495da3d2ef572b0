"""The tabular benchmark's configuration: :class:`TabularStudy` (sections :class:`Split`,
:class:`MLP`, :class:`Forest`), its rule table and its cells (:class:`TabularCell`). Rules that
need the data (a fraction's rows, width x features) are ``datasets.check_study``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import ClassVar

from parity_jax import config
from parity_jax.config import (
    INF,
    INITS,
    INT32_MAX,
    MAX_EVALS,
    MAX_STEPS,
    Grid,
    Rule,
    choice_rule,
    float_rule,
    int_rule,
)
from parity_jax.errors import ConfigError

OPTIMIZERS = ("sgd", "adam")
MAX_FOREST_ITERATIONS = 10_000

RULES: dict[str, Rule] = {
    **config.COMMON_RULES,
    "datasets": Rule("str", grid=True),
    "fractions": float_rule(0.0, 1.0, lo_open=True, hi_open=False, grid=True),
    "mlp.width": int_rule(1, INT32_MAX, grid=True),
    "mlp.depth": int_rule(1, 3, grid=True),
    "mlp.init": choice_rule(INITS, grid=True),
    "mlp.s": int_rule(1, INT32_MAX, grid=True),
    "mlp.lr": float_rule(0.0, INF, lo_open=True, hi_open=True, grid=True),
    "mlp.optimizer": choice_rule(OPTIMIZERS, grid=True),
    "mlp.wd": float_rule(0.0, INF, lo_open=False, hi_open=True),
    "mlp.batch": int_rule(1, INT32_MAX),
    "mlp.steps": int_rule(1, MAX_STEPS),
    "mlp.eval_every": int_rule(1, MAX_STEPS),
    "split.max_train": int_rule(1, INT32_MAX),
    "split.max_eval": int_rule(1, INT32_MAX),
    "forest.iterations": int_rule(0, MAX_FOREST_ITERATIONS),
    "forest.n_estimators_max": int_rule(10, INT32_MAX),
}


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
class TabularStudy(config.StudyConfig):
    """MLPs (dense and sparse init) against tuned random forests on tabular datasets, with
    training sets downsampled to ``fractions``; ``seeds`` trials per setting.

    Args:
      datasets: ``datasets.load`` specs (benchmark names, openml:ID, sklearn:NAME, parity[:..],
        .csv/.npz paths).
      fractions: training-set fractions in (0, 1].
    """

    SECTIONS: ClassVar[dict[str, type]] = {"split": Split, "mlp": MLP, "forest": Forest}
    RULES: ClassVar[dict[str, Rule]] = RULES

    name: str = "tabular"
    seed: int = 0
    seeds: int = 5
    datasets: Grid[str] = ("sklearn:breast_cancer",)
    # (0.01 of breast_cancer's 398 training rows would leave 4: below datasets.MIN_TRAIN_ROWS)
    fractions: Grid[float] = (1.0, 0.3, 0.1, 0.03)
    split: Split = field(default_factory=Split)
    mlp: MLP = field(default_factory=MLP)
    forest: Forest = field(default_factory=Forest)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists

    def axis(self, name: str) -> list:
        """A setting as a list of values (``datasets``, ``fractions`` or ``mlp.FIELD``)."""
        v = config.get(self, name)
        return list(v) if isinstance(v, list | tuple) else [v]

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        for key in config.keys(self):
            config.values(self, key)
        mlp = self.mlp
        if mlp.steps % mlp.eval_every:
            raise ConfigError(f"mlp.steps = {mlp.steps}: must be a multiple of "
                              f"mlp.eval_every ({mlp.eval_every})")
        if mlp.steps // mlp.eval_every > MAX_EVALS:
            raise ConfigError(f"mlp.eval_every = {mlp.eval_every}: must be at least "
                              f"{-(-mlp.steps // MAX_EVALS)} for mlp.steps = {mlp.steps} (every "
                              f"trial records at most {MAX_EVALS} evaluations)")
        # one trial's arrays stay within int32 indexing (width x features: kinds/tabular/kind.py)
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
        config.check_trials(self, len(self.axis("datasets")) * len(self.axis("fractions"))
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
