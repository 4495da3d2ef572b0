"""A parity study's stored rows: the ``trials`` table (one :class:`Row` per finished trial)
and the ``curves`` table (a trial's test error and train loss at each evaluation, for cells with
``record_curves``), each row checked where it is read.

A cell with ``train.recover`` stores each trial's per-term recovery (``terms``) at its first hit
and at its last evaluation as JSON lists, one number per term (null where not finite), in the
trials columns ``recovery_hit`` and ``recovery_end`` (NULL otherwise). Stores made before these
columns existed have 8 columns; their rows read with both None.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

from parity_jax import errors, stored, targets, terms


class Row(NamedTuple):
    """A finished parity trial, as stored."""

    cell: int
    seed: int
    success: bool
    first_hit: int | None
    test_error: float | None
    train_loss: float | None
    steps_run: int
    diverged: bool
    recovery_hit: str | None = None  # JSON list: per-term recovery at the first hit
    recovery_end: str | None = None  # JSON list: at the last evaluation


OLD_COLUMNS = 8  # a trials row of a store made before the recovery columns


def recovery_json(values) -> str:
    """Per-term recoveries as stored: a JSON list, null where not finite."""
    return json.dumps([float(v) if math.isfinite(v) else None for v in map(float, values)])


def recovery_list(text: str | None) -> list | None:
    """A stored recovery column as a list (None: not measured)."""
    return None if text is None else json.loads(text)


SCHEMA = """
CREATE TABLE trials (
    cell INTEGER NOT NULL REFERENCES cells(cell),
    seed INTEGER NOT NULL,
    success INTEGER NOT NULL,
    first_hit INTEGER,
    test_error REAL,
    train_loss REAL,
    steps_run INTEGER NOT NULL,
    diverged INTEGER NOT NULL,
    recovery_hit TEXT,
    recovery_end TEXT,
    PRIMARY KEY (cell, seed)
);
CREATE TABLE curves (
    cell INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    test_error BLOB NOT NULL,
    train_loss BLOB NOT NULL,
    PRIMARY KEY (cell, seed),
    FOREIGN KEY (cell, seed) REFERENCES trials(cell, seed)
);
"""


def read_row(raw: tuple, grid: list, seeds: int) -> tuple[Row | None, list[str]]:
    """A stored parity trial, or the problems that make it unreadable."""
    if len(raw) not in (OLD_COLUMNS, len(Row._fields)):
        return None, [f"trials row {errors.show(raw[:2])}: {len(raw)} columns, not "
                      f"{len(Row._fields)}"]
    raw = tuple(raw) + (None,) * (len(Row._fields) - len(raw))
    where, bad = stored.where(raw, "trials", len(grid), seeds)
    if not bad:
        _, _, success, first_hit, test_error, train_loss, steps_run, diverged = raw[:8]
        steps = grid[raw[0]].steps
        if not (stored.is_flag(success) and stored.is_flag(diverged)):
            bad.append("success/diverged not a flag")
        wrong = [f"{name} {errors.show(v)} {rule}" for name, v, ok, rule in (
            ("first_hit", first_hit, first_hit is None or stored.is_int(first_hit),
             "is not an integer"),
            (("test_error", test_error, stored.is_fraction(test_error), "outside [0, 1]")
             if targets.metric(grid[raw[0]].target) == "error" else
             ("test_error", test_error, test_error is None or (stored.is_real(test_error)
                                                               and test_error >= 0),
              "is not a normalized MSE >= 0")),
            ("train_loss", train_loss, train_loss is None or stored.is_real(train_loss),
             "is not a number"),
            ("steps_run", steps_run, stored.is_int(steps_run), "is not an integer")) if not ok]
        bad += wrong
        if not wrong:
            if bool(success) != (first_hit is not None):
                bad.append("success and first_hit disagree")
            if not 0 <= steps_run <= steps:
                bad.append(f"steps_run {steps_run} outside [0, {steps}]")
            elif first_hit is not None and not 0 < first_hit <= steps_run:
                bad.append(f"first_hit {first_hit} outside (0, steps_run]")
            if diverged and test_error is not None:
                bad.append("diverged but has a test error")
            bad += _recovery_problems(grid[raw[0]], bool(success), raw[8], raw[9])
    if bad:
        return None, [f"{where}: {b}" for b in bad]
    return Row(*raw[:4], *(None if v is None else float(v) for v in raw[4:6]), *raw[6:]), []


def _recovery_problems(cell, success: bool, hit, end) -> list[str]:
    """What is wrong with a trial's recovery columns: a list of one number (or null) per term
    of its cell's target where the cell has ``recover`` (at the hit: only if it succeeded),
    NULL elsewhere."""
    if cell.recover is None:
        return [] if hit is None and end is None else ["recovery stored for a cell without "
                                                       "train.recover"]
    count = len(terms.terms_of(cell.target, cell.k, dict(cell.params)))
    out = []
    for name, text, want in (("recovery_hit", hit, success), ("recovery_end", end, True)):
        try:
            v = None if not isinstance(text, str) else json.loads(text)
        except ValueError:
            v = None
        ok = (isinstance(v, list) and len(v) == count
              and all(x is None or stored.is_real(x) for x in v))
        if (text is not None) != want or (want and not ok):
            out.append(f"{name} {errors.show(text)} is not "
                       + (f"a JSON list of {count} recoveries" if want else "NULL"))
    return out


def read_curve(raw: tuple, grid: list, seeds: int,
               rows: dict) -> tuple[stored.Curve | None, list[str]]:
    """A recorded curve, or the problems that make it unreadable (``rows``: the sound trials
    by (cell, seed))."""
    if len(raw) != len(stored.Curve._fields):
        return None, [f"curves row {errors.show(raw[:2])}: {len(raw)} columns, not "
                      f"{len(stored.Curve._fields)}"]
    where, bad = stored.where(raw, "curves", len(grid), seeds, curve=True)
    if not bad:
        if raw[:2] not in rows:
            bad.append("no such trial")
        elif not all(isinstance(b, bytes) for b in raw[2:]):
            bad.append("test_error/train_loss are not float32 arrays")
        else:
            evals = math.ceil(rows[raw[:2]].steps_run / grid[raw[0]].eval_every)
            if any(len(b) != 4 * evals for b in raw[2:]):
                bad.append(f"{len(raw[2]) / 4:g} and {len(raw[3]) / 4:g} points, the trial ran "
                           f"{evals} evaluations")
    if bad:
        return None, [f"{where}: {b}" for b in bad]
    return stored.Curve(*raw), []
