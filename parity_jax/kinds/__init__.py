"""Study kinds: what makes a parity study differ from a tabular one, behind one protocol.

The driver (``runner``), the plan, the store, ``check``, ``merge``, ``Results`` and the command
line never ask which kind of study they hold: they call its ``StudyKind``. A built-in kind is one
package (``kinds/parity/``, ``kinds/tabular/``: its config, plan, stored rows and report); a new
kind is one module or package that calls :func:`register`, and a TOML file names it with
``kind = "<name>"``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

from parity_jax.config import read_toml
from parity_jax.errors import ConfigError, show


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

    def check_out(self, out: Path) -> None:
        """Refuses (StoreError) an output directory this kind must not write into."""


@runtime_checkable
class StudyKind(Protocol):
    """One kind of study: its config, work units, stored rows and report."""

    name: ClassVar[str]  # stored in the store's meta
    study_type: ClassVar[type]  # its config dataclass (``from_dict``, ``cells``, ...)
    schema: ClassVar[str]  # SQL of the tables its trials are stored in
    rows_table: ClassVar[str]  # the table of its trial rows
    curves_table: ClassVar[str | None]  # the table of its recorded curves (``store.Curve``)
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


# The built-in kinds: name -> the module defining its ``KIND`` (imported when first asked for:
# the tabular kind imports scikit-learn). Their ``claims`` decide a config that names no kind.
_BUILTINS = {"parity": "parity_jax.kinds.parity.kind", "tabular": "parity_jax.kinds.tabular.kind"}
_REGISTERED: dict[str, StudyKind] = {}
DEFAULT = "parity"  # the kind of the built-in study (``default_study``)


def default_study():
    """The built-in study (``parity-jax run`` without a config): the default kind's."""
    return named(DEFAULT).default_study


def register(kind: StudyKind) -> None:
    """Adds a study kind: its studies run, store, check, merge and report like the built-in
    ones, and a TOML file saying ``kind = "<its name>"`` is read by its ``study_type``.
    Registering the same kind again changes nothing; another kind under a taken name is a
    ConfigError."""
    if not isinstance(kind, StudyKind):
        raise ConfigError(f"kind = {kind!r}: must implement parity_jax.kinds.StudyKind")
    name = kind.name
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"kind = {name!r}: a kind's name must be an identifier")
    if name in _BUILTINS or _REGISTERED.get(name, kind) is not kind:
        raise ConfigError(f"kind = {name!r}: already the name of a kind; choose another")
    _REGISTERED[name] = kind


def names() -> list[str]:
    """Every kind's name: the built-ins, then the registered ones."""
    return [*_BUILTINS, *_REGISTERED]


def named(name: str) -> StudyKind:
    """The kind stored under ``name`` (KeyError if none)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    return importlib.import_module(_BUILTINS[name]).KIND


def of(study) -> StudyKind:
    """The kind of a study object; ConfigError if it is no study."""
    for name in names():
        kind = named(name)
        if isinstance(study, kind.study_type):
            return kind
    allowed = " or ".join(named(n).study_type.__name__ for n in names())
    raise ConfigError(f"study = {study!r}: must be a {allowed}")


def for_config(config: dict) -> StudyKind:
    """The kind of a parsed study config: the one its ``kind`` key names, else the built-in
    one that claims it (a tabular study has ``datasets``; any other is a parity study)."""
    if isinstance(config, dict) and "kind" in config:
        name = config["kind"]
        if not isinstance(name, str) or name not in names():
            raise ConfigError(f"kind = {show(name)}: must be one of {', '.join(names())}")
        return named(name)
    return next(kind for kind in map(named, _BUILTINS) if kind.claims(config))


def load_study(path: str | Path):
    """A study TOML file, as the study of its kind (``for_config``)."""
    d = read_toml(path)
    return for_config(d).study_type.from_dict(d)


def __getattr__(name: str):
    """``kinds.parity`` / ``kinds.tabular``: a built-in kind's package, imported when used."""
    if name in _BUILTINS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'parity_jax.kinds' has no attribute {name!r}")
