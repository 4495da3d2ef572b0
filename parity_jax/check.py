"""``check``: the integrity of a results store and its consistency with its study."""

from __future__ import annotations

import contextlib
from pathlib import Path

from parity_jax import plan
from parity_jax.errors import CorruptStore, StoreError
from parity_jax.store import Store


def check(out: str | Path, expected: set[tuple[int, int]] | None = None) -> tuple[list[str], dict]:
    """Integrity check of a store: SQLite's own, then its meta, cells and every trial.

    ``expected``: the (cell, seed) this store should end up holding (its shard of the study);
    a stored trial outside it is a problem, a missing one only makes the store incomplete.
    Returns (problems, summary); a store with no problems may still be incomplete, and a
    store SQLite cannot read has the one problem "database is corrupt" and no summary. A
    directory without a store, or a file that is no store, is a StoreError.
    """
    try:
        return _check(out, expected)
    except CorruptStore as e:  # unreadable, or its meta is: the rows cannot be checked
        return getattr(e, "problems", None) or [str(e).removeprefix("out: ")], {}


def _check(out: str | Path, expected: set[tuple[int, int]] | None) -> tuple[list[str], dict]:
    store = Store.open(out)
    problems: list[str] = []
    try:
        try:
            status = [r[0] for r in store.query("PRAGMA integrity_check")]
        except CorruptStore:
            raise
        except StoreError as e:
            status = [str(e)]
        if status != ["ok"]:
            lines = [line for s in status for line in str(s).splitlines() if line][:5]
            return [f"{store.path}: database is corrupt (sqlite integrity_check: "
                    f"{'; '.join(lines)})"], {}
        problems += [f"{r[0]} row {r[1]}: the row it refers to is not in {r[2]}"
                     for r in store.query("PRAGMA foreign_key_check")]
        study = store.study()  # unreadable: the one problem (the rows cannot be checked)
        if study.fingerprint() != store.meta.get("fingerprint"):
            problems.append("meta: the stored study does not match its fingerprint")
        for read in (store.plan_settings, store.data):
            try:
                read()
            except CorruptStore as e:
                problems += e.problems
        with contextlib.suppress(CorruptStore):
            if store.study_kind.needs_data and store.data() is None:
                problems.append("meta: its datasets' fingerprints are missing (a run cannot "
                                "resume it)")
        contents = store.contents(strict=False)
        problems += contents.problems
        ids = {r[:2] for r in contents.rows}
        if expected is not None:
            problems += [f"trial (cell {c}, seed {i}): not part of this store's shard"
                         for c, i in sorted(ids - expected)]
        else:
            expected = {(c, i) for c in range(len(study.cells())) for i in range(study.seeds)}
        ahead = store.study_kind.wanted(study, {r[:2]: r for r in contents.rows})
        if ahead is not None:  # an adaptive study: what its rule wants, given what is stored
            expected = ahead.want
            problems += [f"trial (cell {c}, seed {i}): stored, but the study's adaptive rule "
                         "stopped its cell before this seed" for c, i in sorted(ids - expected)]
        summary = {"study": study.name, "trials": len(ids), "expected": len(expected),
                   "complete": expected <= ids and (ahead is None or not ahead.open_cells)}
    finally:
        store.close()
    return problems, summary



def expected_trials(out: str | Path) -> set | None:
    """The (cell, seed) a sharded store should end up holding (None: every trial), planned
    again by its kind from the plan settings it stored."""
    with_store = Store.open(out)
    try:
        study, settings, kind = with_store.study(), with_store.plan_settings(), \
            with_store.study_kind
    finally:
        with_store.close()
    if "shard" not in settings:
        return None
    return kind.expected(study, settings, plan.parse_shard(settings["shard"]))
