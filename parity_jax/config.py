"""The study configuration every kind shares: TOML reading, the per-field rule machinery, grid
axes and the engine's limits. A kind's own dataclasses and rule table live in its package
(``kinds/parity/config.py``, ``kinds/tabular/config.py``); this module knows no kind.

A setting is ``"field"`` (top level) or ``"section.field"``; a study class lists its rules in
``RULES`` (the order they are checked, and of its grid axes) and its sections in ``SECTIONS``.
Any setting whose rule allows it may be a list: a grid axis. Unknown keys and wrong types are
ConfigErrors naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from parity_jax import files
from parity_jax.errors import ConfigError, digest, one_line, show

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
MAX_CONFIG_BYTES = 2**20  # a study config is small: more is not a config (or not a file)
INITS = ("dense", "sparse")
# how init and per-layer learning rates scale with width (``models.scalings``), and the default
# width at which mup equals standard (``model.base_width``)
PARAMS = ("standard", "mup", "mean_field")
BASE_WIDTH = 32

_T = TypeVar("_T")
Grid: TypeAlias = _T | list[_T] | tuple[_T, ...]
"""A setting that may be a list (or tuple) of values: a grid axis."""


def axis(v) -> list:
    """A setting's values: a list of one unless it is a list (a grid axis)."""
    return list(v) if isinstance(v, list | tuple) else [v]


def without_later_defaults(d: dict, later: dict) -> dict:
    """``d`` without the settings of ``later`` (added after stores existed) at their default,
    so a study's or cell's identity is what it was before they existed."""
    return {k: v for k, v in d.items() if not (k in later and v == later[k])}


def differences(stored: dict, new: dict, most: int = 3) -> str:
    """", differs in KEY (stored: A, here: B); ..." for the first ``most`` dotted settings where
    two studies' ``to_dict`` differ ("" where none does): what a store that "holds another
    study" holds. A setting an older version did not store shows as "-" (``train.nmse``: such
    a store means "test")."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
        return out

    a, b = flat(stored), flat(new)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k, "-") != b.get(k, "-")]
    return "".join(
        f"{'; ' if i else ', differs in '}{k} (stored: {show(a.get(k, '-'))}, here: "
        f"{show(b.get(k, '-'))})" for i, k in enumerate(keys[:most])) + (
        f"; and {len(keys) - most} more" if len(keys) > most else "")


class StudyConfig:
    """What every kind's study dataclass shares: read from a parsed TOML dict (``SECTIONS``,
    checked by its ``RULES`` through ``validate``) or a file, and its fingerprint."""

    @classmethod
    def from_dict(cls, d: dict):
        """Builds a study from a parsed TOML dict; raises ConfigError on unknown keys/types."""
        study = cls(**sections(cls, d))
        study.validate()
        return study

    @classmethod
    def from_stored(cls, d: dict):
        """Builds the study a store holds (its ``to_dict``): ``from_dict``, unless a kind's
        later settings mean something else when a stored study lacks them."""
        return cls.from_dict(d)

    @classmethod
    def from_toml(cls, path: str | Path):
        """Loads and validates a TOML study file."""
        return cls.from_dict(read_toml(path))

    def fingerprint(self) -> str:
        """Stable identity of the study (what a results store is tied to)."""
        return digest(self.to_dict())


# ---- loading -------------------------------------------------------------------------------


def read_toml(path: str | Path) -> dict:
    """The parsed TOML file (a study config, or a config with tables of its own, e.g.
    experiments/lottery); every way it can fail is one ConfigError line."""
    data = files.read_bytes(path, MAX_CONFIG_BYTES, "config", error=ConfigError)
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is allowed
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ConfigError(f"config: {one_line(str(path))} is not UTF-8 text (byte "
                          f"0x{data[e.start]:02x} on line {line}); save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, or an integer of over 4300 digits
        raise ConfigError(f"config: cannot parse {one_line(str(path))}: {e}") from None
    except RecursionError:
        raise ConfigError(f"config: cannot parse {one_line(str(path))}: arrays or tables "
                          "nested too deeply") from None


def sections(cls, d: Any) -> dict:
    """Constructor arguments of study class ``cls`` from a parsed TOML dict whose tables are
    ``cls.SECTIONS``; unknown keys and non-table sections are ConfigErrors. A section class
    may accept keys beyond its fields (``extra_keys()``: a target's parameters)."""
    if not isinstance(d, dict):
        raise ConfigError("config: must be a table")
    secs = cls.SECTIONS
    top = {f.name for f in dataclasses.fields(cls)} - set(secs) - {"kind"}
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        if key == "kind":  # the kind's name: which class reads the rest (kinds.load_study)
            continue
        if key in secs:
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: must be a table [{key}]")
            allowed = [f.name for f in dataclasses.fields(secs[key]) if f.init]
            allowed += [k for k in getattr(secs[key], "extra_keys", list)() if k not in allowed]
            for sub in value:
                if sub not in allowed:
                    raise ConfigError(f"{key}.{_key(sub)}: unknown key; allowed: "
                                      f"{', '.join(allowed)}")
            kwargs[key] = secs[key](**value)
        elif key in top:
            kwargs[key] = value
        else:
            allowed = ", ".join(sorted(top | set(secs)))
            raise ConfigError(f"{_key(key)}: unknown key; allowed: {allowed}")
    return kwargs


def _key(key: Any) -> str:
    """A TOML key as a message shows it: as written when plain, else quoted and escaped (one
    line, at most about 80 characters)."""
    key = str(key)
    return key if key.isprintable() and 0 < len(key) <= 80 else show(key)


# ---- per-field rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What one setting allows.

    kind: "int", "float", "choice", "bool", "str" or "custom" (``check`` decides).
    lo, hi: bounds of an int or float; an int's ``hi`` may name another field ("n"), which
      only a cross-field rule can check (it is at most INT32_MAX here). A str's ``lo``: its
      least length.
    lo_open, hi_open: whether a float's bounds are excluded.
    choices: the allowed strings of a choice.
    grid: whether the setting may be a list of values (a grid axis).
    note: said after the allowed range ("for sparse init").
    optional: None (the default: not given) is allowed.
    check_fn: a custom rule's check (name, value) -> None, raising ConfigError.
    """

    kind: str
    lo: float | None = None
    hi: float | str | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    grid: bool = False
    note: str = ""
    optional: bool = False
    check_fn: Callable[[str, Any], None] | None = dataclasses.field(default=None, compare=False)

    def check(self, name: str, v: Any) -> None:
        """Raises ConfigError unless ``v`` is one allowed value of setting ``name``."""
        got = type(v).__name__
        shown = show(v)
        if v is None and self.optional:
            return
        if self.kind == "custom":
            self.check_fn(name, v)
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


def int_rule(lo: int, hi: int | str, *, grid: bool = False, note: str = "",
             optional: bool = False) -> Rule:
    return Rule("int", lo=lo, hi=hi, grid=grid, note=note, optional=optional)


def float_rule(lo: float, hi: float, lo_open: bool, hi_open: bool, *,
               grid: bool = False) -> Rule:
    return Rule("float", lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, grid=grid)


def choice_rule(choices: tuple[str, ...], *, grid: bool = False,
                optional: bool = False) -> Rule:
    return Rule("choice", choices=choices, grid=grid, optional=optional)


INF = math.inf

# The top-level settings every kind has.
COMMON_RULES: dict[str, Rule] = {
    "name": Rule("str", lo=1),
    "seed": int_rule(0, SEED_MAX),
    "seeds": int_rule(1, MAX_TRIALS),
}


def rule_of(study: Any, key: str) -> Rule:
    """The rule of setting ``key`` of ``study``'s class (``RULES``, or ``rule_for``)."""
    rules = type(study).RULES
    return rules[key] if key in rules else type(study).rule_for(key)


def keys(study: Any) -> list[str]:
    """The settings of ``study``, in check order: its class's ``keys_of`` where it has one
    (settings beyond ``RULES``: a target's parameters), else its ``RULES`` order."""
    keys_of = getattr(type(study), "keys_of", None)
    return keys_of(study) if keys_of is not None else list(type(study).RULES)


def get(study: Any, key: str) -> Any:
    """Setting ``key`` ("field" or "section.field") of ``study``; a section of the wrong type
    (e.g. a dict given in Python) is a ConfigError naming it."""
    if "." not in key:
        return getattr(study, key)
    section, name = key.split(".", 1)
    obj, cls = getattr(study, section), type(study).SECTIONS[section]
    if not isinstance(obj, cls):
        article = "an" if cls.__name__ in ("MLP",) or cls.__name__[0] in "AEIOU" else "a"
        raise ConfigError(f"{section}: must be {article} {cls.__name__} (or a [{section}] table "
                          f"in TOML), got {type(obj).__name__}")
    return getattr(obj, name)


def values(study: Any, key: str) -> list:
    """The values of setting ``key`` of ``study`` (several only for a grid axis), each checked
    against its rule; an empty or repeating axis is a ConfigError."""
    rule, value = rule_of(study, key), get(study, key)
    if not (rule.grid and isinstance(value, list | tuple)):
        rule.check(key, value)
        return [value]
    vals = list(value)
    if not vals:
        raise ConfigError(f"{key}: an empty list has no values")
    for v in vals:
        rule.check(key, v)
    def same(v):  # 1 and 1.0 are one lr, as 0.1, 0.10 (None: an optional float not given)
        return float(v) if rule.kind == "float" and v is not None else json.dumps(v)

    if len({same(v) for v in vals}) != len(vals):
        raise ConfigError(f"{key}: list has duplicate values {show(vals)}")
    return vals


def check_trials(study: Any, cells: int) -> None:
    """Refuses a study of more than MAX_TRIALS trials (cells x seeds) before anything is built
    from it: planning them would take minutes and gigabytes."""
    (seeds,) = values(study, "seeds")
    if cells > MAX_CELLS:
        raise ConfigError(f"grid = {cells} cells: a study may have at most {MAX_CELLS} (the "
                          "product of its lists' lengths; use fewer values, or several studies)")
    if cells * seeds > MAX_TRIALS:
        raise ConfigError(f"seeds = {seeds}: {cells} cells x {seeds} seeds = {cells * seeds} "
                          f"trials; a study may hold at most {MAX_TRIALS} (use fewer seeds or "
                          "grid values, or several studies)")
