"""``Results``: what a results store holds, as records -- per-cell summaries, per-trial records,
curves, frontiers -- whatever kind of study it holds (its kind summarises it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from parity_jax.errors import ConfigError
from parity_jax.store import Store


class Results:
    """Reads a results store: per-cell summaries, per-trial records, frontiers.

    ``cells()`` / ``trials()`` return lists of dicts, or pandas DataFrames with ``frame=True``.
    For a tabular store, ``trials()`` has one record per MLP trial and per tuned forest and
    ``cells()`` the selected best of each family per (dataset, fraction)
    (``kinds.tabular.report.select``).
    """

    def __init__(self, out: str | Path):
        if not isinstance(out, str | os.PathLike):
            raise ConfigError(f"out = {out!r}: must be a directory path")
        self.out = Path(out)
        self.compiled: dict | None = None  # set by run(): programs, seconds, cache_hits
        store = Store.open(self.out)
        try:
            self.kind = store.kind
            self.study_kind = store.study_kind
            self._cells = store.cells()
            self._trials = store.trials()
            self._curves = store.curve_rows()
            self.study = store.study()
            self._engines = store.engines()
        finally:
            store.close()

    def engines(self) -> dict[str, dict]:
        """The engine each program ran with (its first batch's), by program key:
        {"engine": "xla", "pallas", ...; "program": the program in a few words}."""
        return {k: dict(v) for k, v in self._engines.items()}

    def cells(self, frame: bool = False):
        return _maybe_frame(self.study_kind.cells(self._cells, self._trials, self.study), frame)

    def trials(self, frame: bool = False):
        by_id = {c["cell"]: c for c in self._cells}
        return _maybe_frame(self.study_kind.trials(by_id, self._trials), frame)

    def curves(self) -> list[dict]:
        """Recorded curves (cells with ``record_curves``), one record per trial: its cell's
        settings, ``seed``, ``step`` (the evaluation points) and ``test_error`` /
        ``train_loss`` (float32 arrays, NaN where a diverged trial had none)."""
        by_id = {c["cell"]: c for c in self._cells}
        out = []
        for cell, seed, err, loss in self._curves:
            c = by_id[cell]
            e, l_ = np.frombuffer(err, "<f4"), np.frombuffer(loss, "<f4")
            step = np.minimum(np.arange(1, len(e) + 1) * c["eval_every"], c["steps"])
            out.append({**c, "seed": seed, "step": step, "test_error": e, "train_loss": l_})
        return out

    def frontier(self, target: float = 0.5, over: str = "m", frame: bool = False):
        """Per setting of every other field, the smallest ``over`` whose success probability
        reaches ``target`` (a ConfigError for a kind without one: a tabular study). ``reached``
        tells a None ``over`` that reached it (an online cell: no m) from one that never did."""
        return _maybe_frame(self.study_kind.frontier(self, target, over), frame)

    def summary_table(self, target: float = 0.5) -> str:
        """The table ``run`` and ``report`` print."""
        return self.study_kind.summary_table(self.cells(), target)


def _maybe_frame(records: list[dict], frame: bool):
    if not frame:
        return records
    import pandas as pd  # optional dependency

    return pd.DataFrame.from_records(records)
