"""Merging stores of one study (the shards of a job array, say) into one."""

from __future__ import annotations

from pathlib import Path

from parity_jax.errors import StoreError
from parity_jax.lock import lock
from parity_jax.store import FILENAME, Store


def merge(inputs: list[str | Path], out: str | Path) -> tuple[int, int]:
    """Combines stores of one study (e.g. the shards of a job array) into ``out``.

    ``out`` is created, or must already hold the same study (its trials then count as one more
    input). Refused, with nothing written, when the inputs hold different studies or a trial
    stored twice with different outcomes; a trial stored identically twice is kept once.
    Returns (trials written, duplicates skipped).
    """
    if not inputs:
        raise StoreError("merge: give at least one results directory")
    stores = []
    try:
        for p in inputs:  # a bad input is named as one, not as --out
            try:
                stores.append(Store.open(p))
            except StoreError as e:
                raise type(e)(f"merge: input {p}: {str(e).removeprefix('out: ')}") from None
        first = stores[0]
        for other in stores[1:]:
            if other.meta["fingerprint"] != first.meta["fingerprint"]:
                raise StoreError(
                    f"merge: {other.path} holds another study "
                    f"({other.study().name!r}) than {first.path} ({first.study().name!r})")
            if other.data() != first.data():
                raise StoreError(f"merge: {other.path} holds this study on other data than "
                                 f"{first.path}")
        study = first.study()
        rows: dict[tuple[int, int], tuple] = {}
        origin: dict[tuple[int, int], Path] = {}
        duplicates = 0
        for store in stores:
            for row in store.rows():
                key = row[:2]
                if key in rows:
                    if rows[key] != row:
                        raise StoreError(
                            f"merge: trial (cell {key[0]}, seed {key[1]}) differs between "
                            f"{origin[key]} and {store.path}; nothing written")
                    duplicates += 1
                    continue
                rows[key], origin[key] = row, store.path
        curves = {r[:2]: r for store in stores for r in store.curve_rows()}
        engines = _engines([store.engines() for store in stores])
        settings = {"merged_from": [str(s.path) for s in stores]}
        data = first.data()
    except StoreError as e:  # an input that cannot be read: not --out's fault
        if not str(e).startswith("out: "):
            raise
        raise type(e)(f"merge: reading an input: {str(e).removeprefix('out: ')}") from None
    finally:
        for store in stores:
            store.close()
    out = Path(out)
    with lock(out):  # one writer: a run or another merge into ``out`` is refused at once
        return _merge_into(out, study, rows, origin, curves, settings, data, duplicates,
                           engines)


def _engines(records: list[dict[str, dict]]) -> dict[str, dict]:
    """The engines each program ran with, over stores' records (``Store.engines``): where
    shards ran one program on different engines (other devices), all of them, joined by "+"
    (a resume races again)."""
    out: dict[str, dict] = {}
    for engines in records:
        for key, record in engines.items():
            seen = out.setdefault(key, dict(record))
            names = set(seen["engine"].split("+")) | set(record["engine"].split("+"))
            seen["engine"] = "+".join(sorted(names))
    return out


def _merge_into(out: Path, study, rows: dict, origin: dict, curves: dict, settings: dict,
                data: dict | None, duplicates: int, engines: dict) -> tuple[int, int]:
    created = not (out / FILENAME).exists()
    target = Store.open_for_run(out, study, study.cells(), settings, data)
    try:
        shard = target.plan_settings().get("shard", "0/1")
        if shard != "0/1":
            raise StoreError(f"merge: --out {out} holds shard {shard} of the study; merge into "
                             "a new directory")
        existing = {r[:2]: r for r in target.rows()}
        for key, row in existing.items():
            if key in rows and rows[key] != row:
                raise StoreError(f"merge: trial (cell {key[0]}, seed {key[1]}) differs between "
                                 f"{origin[key]} and {target.path}; nothing written")
        new = [row for key, row in sorted(rows.items()) if key not in existing]
        target.add_trials(new, [curves[r[:2]] for r in new if r[:2] in curves],
                          _engines([target.engines(), engines]))
    except BaseException:
        target.close()
        if created:  # leave no empty store behind (nor a directory ``lock`` made)
            target.path.unlink(missing_ok=True)
        raise
    target.close()
    return len(new), duplicates + len(rows) - len(new)

