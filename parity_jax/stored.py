"""A stored trial row, as every kind checks it where it is read: what a value must be (an
integer, a flag, a finite number, an error rate), where a row is, and a recorded curve
(``Curve``). Below the store and the kinds, so that both import it and neither imports the
other (the store reaches the kinds through their registry).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from parity_jax import errors


class Curve(NamedTuple):
    """A trial's recorded curve: little-endian float32 arrays, one value per evaluation."""

    cell: int
    seed: int
    test_error: bytes
    train_loss: bytes


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_real(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def is_flag(v) -> bool:
    return is_int(v) and v in (0, 1)


def is_fraction(v) -> bool:
    """An error rate: None (none measured) or a number in [0, 1]."""
    return v is None or (is_real(v) and 0 <= v <= 1)


def where(raw: tuple, table: str, cells: int, seeds: int,
          curve: bool = False) -> tuple[str, list[str]]:
    """Where a trial or (``curve``) a curve row is, and the problem when it names no trial of
    the grid."""
    cell, seed = raw[0], raw[1]
    if not (is_int(cell) and is_int(seed)):
        return (f"{table} row (cell {errors.show(cell)}, seed {errors.show(seed)})",
                ["cell and seed are not integers"])
    where = f"{'curve of ' if curve else ''}trial (cell {cell}, seed {seed})"
    if not (0 <= cell < cells and 0 <= seed < seeds):
        return where, ["outside the study's grid"]
    return where, []
