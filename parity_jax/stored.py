"""A stored trial row, as every kind checks it where it is read: what a value must be (an
integer, a flag, a finite number, an error rate), where a row is, and a recorded curve
(``Curve``). Below the store and the kinds, so that both import it and neither imports the
other (the store reaches the kinds through their registry).
"""

from __future__ import annotations

import json
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


# -- a store's cells and plan settings, checked where they are read ------------------------------

def cell_problems(rows: list[tuple], grid: list) -> tuple[list[dict], list[str]]:
    """The stored cells (settings parsed), or the problems: every cell of the study's grid
    stored once, with its settings."""
    cells, problems, seen = [], [], set()
    for i, settings in rows:
        where = f"cells row {errors.show(i)}"
        if not (is_int(i) and 0 <= i < len(grid)):
            problems.append(f"{where}: not a cell of the stored study's grid")
            continue
        try:
            parsed = json.loads(settings) if isinstance(settings, str) else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            problems.append(f"{where}: settings are not a JSON object")
        elif parsed != json.loads(grid[i].key()):
            problems.append(f"{where}: settings differ from the stored study's grid")
        else:
            seen.add(i)
            cells.append({"cell": i, **parsed})
    missing = len(grid) - len(seen)
    if missing and not problems:
        problems.append(f"cells: {missing} cell(s) of the stored study's grid missing")
    return cells, problems


_PLAN_TYPES = {"memory_budget": "a positive integer", "devices": "a positive integer",
               "shard": "i/N with 0 <= i < N", "platform": "text",
               "merged_from": "a list of paths"}


def plan_problems(settings: dict, kind) -> list[str]:
    """What is wrong with stored plan settings (the values a resumed run and check use): the
    ones every kind has, then the kind's own (``plan_problems``)."""
    def ok(key, v):
        if key in ("memory_budget", "devices"):
            return is_int(v) and v >= 1
        if key == "shard":
            i, _, n = v.partition("/") if isinstance(v, str) else ("", "", "")
            return i.isdigit() and n.isdigit() and int(i) < int(n)
        if key == "platform":
            return isinstance(v, str)
        return isinstance(v, list) and all(isinstance(x, str) for x in v)

    return [f"meta: plan setting {key} = {errors.show(v)} is not {_PLAN_TYPES[key]}"
            for key, v in settings.items() if key in _PLAN_TYPES and not ok(key, v)] \
        + kind.plan_problems(settings)
