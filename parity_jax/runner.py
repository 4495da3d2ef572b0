"""The study runner: plan -> engine -> store, with progress and resume."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TextIO

import jax
import numpy as np

from parity_jax import plan as planning
from parity_jax import reduce
from parity_jax.config import Study
from parity_jax.engine import train_batch
from parity_jax.store import Store


class Results:
    """Reads a results store: per-cell summaries, per-trial records, frontiers.

    ``cells()`` / ``trials()`` return lists of dicts, or pandas DataFrames with ``frame=True``.
    """

    def __init__(self, out: str | Path):
        self.out = Path(out)
        store = Store.open(self.out)
        try:
            self._cells = store.cells()
            self._trials = store.trials()
            self.study = store.study()
        finally:
            store.close()

    def cells(self, frame: bool = False):
        return _maybe_frame(reduce.summarize(self._cells, self._trials), frame)

    def trials(self, frame: bool = False):
        by_id = {c["cell"]: c for c in self._cells}
        return _maybe_frame([{**by_id[t["cell"]], **t} for t in self._trials], frame)

    def frontier(self, target: float = 0.5, over: str = "m", frame: bool = False):
        return _maybe_frame(reduce.frontier(self.cells(), target, over), frame)


def _maybe_frame(records: list[dict], frame: bool):
    if not frame:
        return records
    import pandas as pd  # optional dependency

    return pd.DataFrame.from_records(records)


class _Progress:
    """One status line on stderr: trials done/total, trial-steps per second, ETA."""

    def __init__(self, total: int, done: int, stream: TextIO | None):
        self.total, self.done, self.stream = total, done, stream
        self.start = time.perf_counter()
        self.run_trials = 0
        self.trial_steps = 0
        self.tty = bool(stream and stream.isatty())

    def update(self, n_trials: int, trial_steps: int) -> None:
        self.done += n_trials
        self.run_trials += n_trials
        self.trial_steps += trial_steps
        if self.stream is None:
            return
        elapsed = time.perf_counter() - self.start
        rate = self.trial_steps / max(elapsed, 1e-9)
        left = self.total - self.done
        eta = left * elapsed / max(self.run_trials, 1)
        width = 24
        fill = int(width * self.done / max(self.total, 1))
        line = (f"[{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} trials  "
                f"{rate:,.0f} trial-steps/s  elapsed {_fmt(elapsed)}  ETA {_fmt(eta)}")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.tty:
            self.stream.write("\n")


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def run(study: Study, out: str | Path, *, memory_budget: int | None = None,
        progress: TextIO | None = sys.stderr) -> Results:
    """Runs (or resumes) ``study`` into ``out``/results.sqlite and returns its results.

    Args:
      study: the study; validated first (ConfigError on bad settings).
      out: output directory; resumed when it holds part of the same study, refused when it
        holds another study.
      memory_budget: bytes batches are sized to (default: half of the available RAM). A resumed
        run reuses the budget it started with, so it rebuilds exactly the same batches.
      progress: stream for the progress line (None: silent).
    """
    study.validate()
    cells = study.cells()
    settings = {"memory_budget": memory_budget or planning.default_memory_budget(),
                "devices": jax.device_count()}
    store = Store.open_for_run(out, study, cells, settings)
    try:
        stored = store.plan_settings()
        plan = planning.make_plan(study, stored["memory_budget"], stored.get("devices", 1))
        done = store.done()
        todo = [b for b in plan.batches
                if not all((t.cell, t.seed) in done for t in b.trials)]
        bar = _Progress(plan.n_trials, len(done), progress)
        for pb in todo:
            skip = {t for t in pb.trials if (t.cell, t.seed) in done}
            outcome, _ = train_batch(pb.shape, planning.batch_inputs(study, cells, pb, skip))
            outcome = jax.device_get(outcome)
            rows = []
            for g, row in enumerate(pb.slots):
                for p, t in enumerate(row):
                    if t is None or t in skip:
                        continue
                    rows.append((
                        t.cell, t.seed, bool(outcome.success[g, p]),
                        int(outcome.first_hit[g, p]) if outcome.success[g, p] else None,
                        _real(outcome.test_error[g, p]), _real(outcome.train_loss[g, p]),
                        int(outcome.steps_run[g, p]), bool(outcome.diverged[g, p]),
                    ))
            store.add_trials(rows)
            bar.update(len(rows), int(np.sum(np.where(pb_valid(pb, skip),
                                                          outcome.steps_run, 0))))
        bar.close()
    finally:
        store.close()
    return Results(out)


def pb_valid(pb: planning.PlannedBatch, skip: set) -> np.ndarray:
    """(G, P) mask of the slots a batch actually computes for the store."""
    return np.array([[t is not None and t not in skip for t in row] for row in pb.slots])


def _real(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
