"""Study kinds: what makes a parity study differ from a tabular one, behind one protocol.

The driver (``runner``), the plan, the store, ``check``, ``merge``, ``Results`` and the command
line never ask which kind of study they hold: they call its ``StudyKind``. A kind is one module
(``kinds/parity.py``, ``kinds/tabular.py``) registered in ``KINDS``; adding a kind is one new
module plus its line there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

from parity_jax.errors import ConfigError


class Decoded(NamedTuple):
    """What one work unit produced: stored rows, recorded curves, trial-steps run."""

    rows: list
    curves: list
    steps: int


@runtime_checkable
class Work(Protocol):
    """A study as work units: made once per run (a tabular study loads its data here)."""

    cells: list

    def data_ids(self) -> dict | None:
        """Fingerprints of the data the study reads (a resume on other data is refused)."""

    def plan_settings(self, memory_budget: int) -> dict:
        """What the plan depends on besides devices and shard: stored, so that a resume and
        ``check`` plan the same units."""

    def plan(self, memory_budget: int | None, devices: int, shard: tuple[int, int],
             whole: bool):
        """The units of the study (or of one shard of it): a ``plan.Plan``."""

    def compute(self, unit, skip: set, devices: int, lead: bool, train: Callable) -> Decoded:
        """Runs one unit's trials not in ``skip`` and decodes their outcomes into rows."""

    def describe(self, unit) -> str:
        """A unit in a message (the one that ran out of memory)."""

    def check_out(self, out: Path) -> None:
        """Refuses (StoreError) an output directory this kind must not write into."""


@runtime_checkable
class StudyKind(Protocol):
    """One kind of study: its config, work units, stored rows and report."""

    name: ClassVar[str]  # stored in the store's meta
    study_type: ClassVar[type]  # its config dataclass (``from_dict``, ``cells``, ...)
    schema: ClassVar[str]  # SQL of the tables its trials are stored in
    rows_table: ClassVar[str]  # the table of its trial rows
    Row: ClassVar[type]  # a stored trial (a NamedTuple; (cell, seed) first)
    needs_data: ClassVar[bool]  # its store holds the fingerprints of the data it read

    def claims(self, config: dict) -> bool:
        """Whether a parsed study config is of this kind."""

    def work(self, study) -> Work:
        """The study as work units (validated; its data loaded and checked)."""

    def expected(self, study, settings: dict, shard: tuple[int, int]) -> set:
        """The (cell, seed) a store of this shard should hold, planned again from its stored
        plan settings (``check``)."""

    def cell_record(self, stored: dict) -> dict:
        """A stored cell's settings as a record (defaults of later settings filled in)."""

    def read_row(self, raw: tuple, grid: list, seeds: int) -> tuple[Any, list[str]]:
        """A stored trial row, checked: (row, []) or (None, problems)."""

    def record(self, row) -> dict:
        """A stored row as a trial record (flags as bools, ...)."""

    def read_curve(self, raw: tuple, grid: list, seeds: int,
                   rows: dict) -> tuple[Any, list[str]]:
        """A stored curve row, checked against its trial (``rows``: the sound ones)."""

    def cells(self, cells: list[dict], trials: list[dict]) -> list[dict]:
        """The per-cell summary of ``Results.cells``."""

    def trials(self, cells: dict, trials: list[dict]) -> list[dict]:
        """The per-trial records of ``Results.trials`` (``cells``: by cell index)."""

    def frontier(self, results, target: float, over: str) -> list[dict]:
        """Per setting of every other field, the smallest ``over`` whose success probability
        reaches ``target`` (``results``: a ``Results``); a ConfigError where the kind has none."""

    def summary_table(self, records: list[dict], target: float) -> str:
        """The summary table ``run`` and ``report`` print."""

    def plot(self, records: list[dict], out: Path, target: float) -> list[Path]:
        """The figures ``plot`` writes into ``out``."""


# name -> the module defining it (imported when first asked for: the tabular kind imports
# scikit-learn)
_MODULES = {"parity": "parity_jax.kinds.parity.kind", "tabular": "parity_jax.kinds.tabular.kind"}
NAMES: Sequence[str] = tuple(_MODULES)


def named(name: str) -> StudyKind:
    """The kind stored under ``name`` (KeyError if none)."""
    return importlib.import_module(_MODULES[name]).KIND


def of(study) -> StudyKind:
    """The kind of a study object; ConfigError if it is no study."""
    for name in NAMES:
        kind = named(name)
        if isinstance(study, kind.study_type):
            return kind
    allowed = " or ".join(named(n).study_type.__name__ for n in NAMES)
    raise ConfigError(f"study = {study!r}: must be a parity_jax.{allowed}")


def for_config(config: dict) -> StudyKind:
    """The kind of a parsed study config: the one that claims it."""
    return next(named(n) for n in NAMES if named(n).claims(config))


def __getattr__(name: str):
    """``kinds.parity`` / ``kinds.tabular``: a kind's module, imported when first used."""
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'parity_jax.kinds' has no attribute {name!r}")
