"""Study kinds: what makes a parity study differ from a tabular one, behind one protocol.

The driver (``runner``), the plan, the store, ``check``, ``merge``, ``Results`` and the command
line never ask which kind of study they hold: they call its ``StudyKind``. A built-in kind is one
package (``kinds/parity/``, ``kinds/tabular/``: its config, plan, stored rows and report); a new
kind is one module or package that calls :func:`register`, and a TOML file names it with
``kind = "<name>"``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from parity_jax.config import read_toml
from parity_jax.errors import ConfigError, show
from parity_jax.kinds.protocol import Decoded, StudyKind, Work

__all__ = ["Decoded", "StudyKind", "Work", "default_study", "for_config", "load_study",
           "named", "names", "of", "register"]


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
        members = {*StudyKind.__annotations__, *(m for m in vars(StudyKind)
                                                 if not m.startswith("_"))}
        missing = [m for m in members if not hasattr(kind, m)]
        raise ConfigError(f"kind = {kind!r}: must implement parity_jax.kinds.StudyKind"
                          + (f" (missing: {', '.join(sorted(missing))})" if missing else ""))
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


def lazy_face(package: str, exports: dict[str, str]):
    """A kind package's ``__getattr__`` (PEP 562): ``exports`` name -> the submodule defining
    it, any other name a submodule, each imported when first used (so importing the kind's
    config imports no JAX)."""
    def getattr_(name: str):
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{package}.{name}":  # a module it imports is missing
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return getattr_


def __getattr__(name: str):
    """``kinds.parity`` / ``kinds.tabular``: a built-in kind's package, imported when used."""
    if name in _BUILTINS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'parity_jax.kinds' has no attribute {name!r}")
