"""The bottom layer: the errors every command reports as one ``error:`` line, and the helpers
that write such a line. It imports nothing of the package, so every module may import it.

A bad setting is always said one way, ``<field> = <value>: <what is allowed>``
(:func:`bad`), its value shown by :func:`show`; an unexpected exception becomes one line by
:func:`error_line`, and any text one printable line by :func:`one_line`.
"""

from __future__ import annotations

import hashlib
import json
import reprlib
from typing import Any


class ConfigError(ValueError):
    """A bad study setting; the message names the field and what is allowed."""


class StoreError(Exception):
    """An output location that cannot hold, or does not hold, this study's results (the CLI
    prints it as one ``error:`` line, exit status 2)."""


class CorruptStore(StoreError):
    """A results store SQLite cannot read: damaged or truncated (``check`` reports it as a
    problem, exit status 1; every other command as an error, exit status 2)."""


class OutOfBudget(BaseException):
    """A time budget (the doctor's alarm) ran out while a check was running: like Ctrl-C, no
    check's own failure (``except Exception`` lets it through)."""


class _Repr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:  # huge TOML ints: repr() refuses past 4300 digits
            return f"{'-' if x < 0 else ''}<a {x.bit_length()}-bit integer>"
        return super().repr_int(x, level)


_REPR = _Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlong = 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


def show(value: Any) -> str:
    """``repr(value)``, shortened for a one-line message (long lists, strings, numbers)."""
    return one_line(_REPR.repr(value))


def bad(field: str, value: Any, allowed: str) -> ConfigError:
    """The error of a setting that is not allowed: ``<field> = <value>: <allowed>``."""
    return ConfigError(f"{field} = {show(value)}: {allowed}")


def one_line(text: str) -> str:
    """``text`` as one printable line: line breaks and other control characters (from a file
    name, say) escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def error_line(e: BaseException, limit: int = 200) -> str:
    """An exception as one short line (its type and the first line of its message), for a
    table cell, a status row or a warning instead of a traceback."""
    lines = str(e).strip().splitlines()
    line = one_line(lines[0].strip()) if lines else ""
    if len(line) > limit:
        line = line[:limit - 3] + "..."
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-serialisable object (a study's fingerprint)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is a device (or host) out-of-memory error."""
    return isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in str(e) \
        or "out of memory" in str(e).lower()
