"""A parity study's grid point (:class:`Cell`: every setting of a trial but its seed index),
its cross-field rules, and the settings added after stores existed (``later_defaults``): what
a stored cell's record is read back with (``cell_record``)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from parity_jax import config, targets, terms
from parity_jax.config import INT32_MAX, MAX_EVALS
from parity_jax.errors import ConfigError

# Settings added after stores existed: left out of a study's or cell's identity while at their
# default, so stores written before them keep their fingerprints (and resume). Every target
# parameter is one too, at None (``later_defaults``). A stored study or cell without ``nmse``
# means "test" (``Study.from_stored``); a new study of a real-valued target takes "population".
LATER_DEFAULTS = {"online": False, "record_curves": False, "precision": "float32",
                  "inputs": "boolean", "target": targets.DEFAULT, "param": "standard",
                  "base_width": config.BASE_WIDTH, "nmse": "test", "recover": None}


def later_defaults() -> dict:
    """``LATER_DEFAULTS`` and every registered target parameter (None: not given)."""
    return {**LATER_DEFAULTS, **dict.fromkeys(targets.param_names())}


def binary(target) -> bool:
    """Whether ``target`` is a registered ±1-valued target (an unknown name counts as ±1 here:
    the cell check refuses it, naming task.target)."""
    return not isinstance(target, str) or target not in targets.registered() \
        or targets.is_binary(target)


@dataclass(frozen=True)
class Cell:
    """One grid point: every setting of a trial except its seed index. Its target's
    parameters are ``params`` (read as attributes too: ``cell.degree``)."""

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
    target: str = targets.DEFAULT
    param: str = "standard"  # config.PARAMS
    base_width: int = config.BASE_WIDTH  # mup's base width (the default for other cells)
    params: tuple[tuple[str, targets.ParamValue], ...] = ()  # targets.cell_params
    nmse: str | None = None  # a real-valued target's normaliser (None: a ±1 target)
    recover: float | None = None

    def __getattr__(self, name: str):
        if not name.startswith("_") and name in targets.param_names():
            return dict(self.params).get(name)
        raise AttributeError(f"'Cell' object has no attribute {name!r}")

    def check(self) -> None:
        """Cross-field rules (single-field rules are checked while expanding)."""
        if self.k > self.n:
            raise ConfigError(f"task.k = {self.k}: must be an integer in 1..n (n = {self.n})")
        targets.check(self.target, k=self.k, inputs=self.inputs, params=dict(self.params),
                      noise=self.noise, loss=self.loss)
        if self.param == "mean_field" and self.depth != 1:
            raise ConfigError(f"model.param = 'mean_field' needs depth 1 (the two-layer "
                              f"mean-field model), got model.depth = {self.depth}")
        terms.check_recover(self.target, self.recover)
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
        """Canonical JSON of the cell, its identity in the store (a ±1 cell's None nmse
        left out)."""
        d = config.without_later_defaults(self.to_dict(), later_defaults())
        if d.get("nmse", "") is None:
            del d["nmse"]
        return json.dumps(d, sort_keys=True)

    def to_dict(self) -> dict:
        """Every setting, each registered target parameter a key of its own (None where the
        cell's target has no such parameter)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name != "params"}
        return {**d, **dict.fromkeys(targets.param_names()), **dict(self.params)}

    def seed_indices(self, i: int) -> tuple[int, int]:
        """(data index, init index) of seed i under this cell's ``vary``."""
        if self.vary == "init":
            return self.data_seed, i
        if self.vary == "data":
            return i, self.init_seed
        return i, i


def cell_record(stored: dict) -> dict:
    """A stored cell's settings as a record: later settings' defaults filled in, its target's
    parameters as the cell holds them (JSON lists as tuples: hashable)."""
    record = {**later_defaults(), **stored}
    if binary(record["target"]):
        record["nmse"] = None  # what a ±1 cell holds (``Study._expand``)
    if record["target"] in targets.registered():
        for p in targets.get(record["target"]).params:
            if record.get(p.name) is not None:
                record[p.name] = p.hashable(record[p.name])
    return record
