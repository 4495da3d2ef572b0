"""The study-kind protocol: what the driver asks of a kind (``StudyKind``) and of a study as
work units (``Work``), and what a work unit produced (``Decoded``). A module of its own, below
the registry (``kinds/__init__.py``) that loads the kinds by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable


class Round(NamedTuple):
    """What an adaptive study wants stored next (``StudyKind.wanted``): the (cell, seed) pairs,
    a progress label ("round 2 of 4, 31 cells open") and how many cells are still open."""

    want: set
    label: str
    open_cells: int


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

    def plan(self, memory_budget: int | None, n_devices: int, shard: tuple[int, int],
             whole: bool):
        """The units of the study (or of one shard of it): a ``plan.Plan``."""

    def compute(self, unit, skip: set, n_devices: int, lead: bool,
                train: Callable) -> Decoded:
        """Runs one unit's trials not in ``skip`` and decodes their outcomes into rows."""

    def describe(self, unit) -> str:
        """A unit in a message (the one that ran out of memory)."""

    def select(self, units, want: set) -> list:
        """The units of ``units`` (its plan) that hold trials of ``want``, repacked where the
        kind can (a round of an adaptive study: programs and bits as in ``units``)."""

    def check_out(self, out: Path) -> None:
        """Refuses (StoreError) an output directory this kind must not write into."""


@runtime_checkable
class StudyKind(Protocol):
    """One kind of study: its config, work units, stored rows and report."""

    name: ClassVar[str]  # stored in the store's meta
    study_type: ClassVar[type]  # its config dataclass (``from_dict``, ``cells``, ...)
    schema: ClassVar[str]  # SQL of the tables its trials are stored in
    rows_table: ClassVar[str]  # the table of its trial rows
    curves_table: ClassVar[str | None]  # the table of its recorded curves (``stored.Curve``)
    Row: ClassVar[type]  # a stored trial (a NamedTuple; (cell, seed) first)
    needs_data: ClassVar[bool]  # its store holds the fingerprints of the data it read

    def claims(self, config: dict) -> bool:
        """Whether a parsed study config that names no ``kind`` is of this kind (asked of the
        built-in kinds only)."""

    def work(self, study) -> Work:
        """The study as work units (validated; its data loaded and checked)."""

    def expected(self, study, settings: dict, shard: tuple[int, int]) -> set:
        """The (cell, seed) a store of this shard should hold, planned again from its stored
        plan settings (``check``)."""

    def plan_problems(self, settings: dict) -> list[str]:
        """What is wrong with its own stored plan settings (``Work.plan_settings``)."""

    def cell_record(self, settings: dict) -> dict:
        """A stored cell's settings as a record (defaults of later settings filled in)."""

    def read_row(self, raw: tuple, grid: list, seeds: int) -> tuple[Any, list[str]]:
        """A stored trial row, checked: (row, []) or (None, problems)."""

    def record(self, row) -> dict:
        """A stored row as a trial record (flags as bools, ...)."""

    def read_curve(self, raw: tuple, grid: list, seeds: int,
                   rows: dict) -> tuple[Any, list[str]]:
        """A stored curve row, checked against its trial (``rows``: the sound ones)."""

    def wanted(self, study, rows: dict) -> Round | None:
        """For an adaptive study, what it wants stored given its stored rows (by (cell, seed)):
        a pure function of them, so a resumed run and ``check`` agree; None: every trial."""

    def cells(self, cells: list[dict], trials: list[dict], study) -> list[dict]:
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
