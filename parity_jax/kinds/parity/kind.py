"""The parity study kind: (n, k) sparse-target grids (``kinds.parity.config.Study``), planned
into batches of groups sharing one data stream (``batches``), trained by the core, stored one
row per trial (``rows``), reported per cell (``report``) (docs/DESIGN.md §1, §2.2).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import jax
import numpy as np

from parity_jax import devices, plan, stored
from parity_jax.errors import ConfigError
from parity_jax.kinds.parity import adaptive, report, sample
from parity_jax.kinds.parity.batches import batch_inputs, make_plan
from parity_jax.kinds.parity.config import DEFAULT_STUDY, Study, cell_record
from parity_jax.kinds.parity.rows import (
    SCHEMA,
    Row,
    read_curve,
    read_row,
    recovery_json,
    recovery_list,
)
from parity_jax.kinds.protocol import Decoded, Round

# -- the kind ----------------------------------------------------------------------------------

def _real(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


class ParityWork:
    """A parity study as work units: planned batches of the core."""

    def __init__(self, study: Study):
        self.study = study
        self.cells = study.cells()
        sample.check_study(study, self.cells)  # every target's labels, before anything runs

    def data_ids(self) -> None:
        return None

    def plan_settings(self, memory_budget: int) -> dict:
        return {"memory_budget": memory_budget}

    def plan(self, memory_budget, n_devices, shard, whole) -> plan.Plan:
        if self.study.adaptive is not None and shard[1] > 1:
            raise ConfigError(f"--shard = {shard[0]}/{shard[1]}: an adaptive study decides "
                              "from all of a cell's seeds; run it whole (no --shard), or "
                              "without [adaptive]")
        return make_plan(self.study, memory_budget, n_devices, shard, whole=whole,
                         platform=jax.default_backend())

    def select(self, units: plan.Plan, want: set) -> list[plan.PlannedBatch]:
        """A round of an adaptive study: the groups of ``units`` holding a trial of ``want``,
        repacked into batches of their programs' shapes (G groups each). A group keeps its
        trials and slots, so every trial computes the bits it computes in the full study
        (a group's numbers do not depend on its batch, DESIGN §1.7), and no program is
        compiled anew; a group whose trials are all settled takes no slot."""
        groups: dict = {}  # shape -> its groups holding wanted trials, in plan order
        for b in units.batches:
            for row in b.slots:
                if any(t is not None and (t.cell, t.seed) in want for t in row):
                    groups.setdefault(b.shape, []).append(row)
        batches = []
        for shape, rows in groups.items():
            for i in range(0, len(rows), shape.G):
                part = rows[i:i + shape.G]
                part += [(None,) * shape.P] * (shape.G - len(part))
                batches.append(plan.PlannedBatch(shape=shape, slots=tuple(part)))
        return batches

    def check_out(self, out: Path) -> None:
        pass  # any directory the store accepts

    def describe(self, pb: plan.PlannedBatch) -> str:
        return f"G x P = {pb.shape.G} x {pb.shape.P}, width {pb.shape.W}"

    def compute(self, pb: plan.PlannedBatch, skip: set, n_devices: int, lead: bool,
                train) -> Decoded:
        """Trains one planned batch (its not-yet-stored trials) with ``train`` (a
        ``devices.FailSafe``'s, or ``devices.train_on_devices``): its rows, curves and
        trial-steps."""
        inputs = batch_inputs(self.study, self.cells, pb, skip)
        if jax.process_count() > 1:
            inputs = devices.global_batch(pb.shape, inputs, n_devices)
        outcome, _ = train(pb.shape, inputs, n_devices)
        outcome = devices.fetch(outcome)
        rows, curves = [], []
        for g, row in enumerate(pb.slots):
            for p, t in enumerate(row):
                if t is None or t in skip:
                    continue
                cell = self.cells[t.cell]
                if cell.record_curves:
                    evals = math.ceil(int(outcome.steps_run[g, p]) / cell.eval_every)
                    curves.append(stored.Curve(t.cell, t.seed, *(
                        np.asarray(c[g, p, :evals], "<f4").tobytes()
                        for c in (outcome.curve_error, outcome.curve_loss))))
                recovery = (None, None)
                if cell.recover is not None:  # per-term recovery: at the hit, at the end
                    recovery = (recovery_json(outcome.recovery_hit[g, p])
                                if outcome.success[g, p] else None,
                                recovery_json(outcome.recovery_end[g, p]))
                rows.append(Row(
                    t.cell, t.seed, bool(outcome.success[g, p]),
                    int(outcome.first_hit[g, p]) if outcome.success[g, p] else None,
                    _real(outcome.test_error[g, p]), _real(outcome.train_loss[g, p]),
                    int(outcome.steps_run[g, p]), bool(outcome.diverged[g, p]), *recovery,
                ))
        valid = np.array([[t is not None and t not in skip for t in row] for row in pb.slots])
        return Decoded(rows, curves, int(np.sum(np.where(valid, outcome.steps_run, 0))))


class ParityKind:
    """The parity study kind (``kinds.StudyKind``)."""

    name: ClassVar[str] = "parity"
    study_type: ClassVar[type] = Study
    schema: ClassVar[str] = SCHEMA
    rows_table: ClassVar[str] = "trials"
    curves_table: ClassVar[str | None] = "curves"
    Row: ClassVar[type] = Row
    needs_data: ClassVar[bool] = False
    default_study: ClassVar[Study] = DEFAULT_STUDY  # the built-in study (kinds.default_study)

    def claims(self, config: dict) -> bool:
        return "datasets" not in config

    def work(self, study: Study) -> ParityWork:
        return ParityWork(study)

    def expected(self, study: Study, settings: dict, shard: tuple[int, int]) -> set:
        # grouped as on the platform it ran on (stores before this setting: this one's)
        return make_plan(study, settings.get("memory_budget"), 1, shard,
                         platform=settings.get("platform")).trial_ids()

    def plan_problems(self, settings: dict) -> list[str]:
        return []  # memory_budget and platform: settings every kind has (the store checks them)

    def cell_record(self, settings: dict) -> dict:
        return cell_record(settings)

    def read_row(self, raw, grid, seeds):
        return read_row(raw, grid, seeds)

    def read_curve(self, raw, grid, seeds, rows):
        return read_curve(raw, grid, seeds, rows)

    def record(self, row: Row) -> dict:
        return {**row._asdict(), "success": bool(row.success), "diverged": bool(row.diverged),
                "recovery_hit": recovery_list(row.recovery_hit),
                "recovery_end": recovery_list(row.recovery_end)}

    def wanted(self, study: Study, rows: dict) -> Round | None:
        if study.adaptive is None:
            return None
        n_cells = len(study.cells())
        success = {k: bool(r.success) for k, r in rows.items()}
        want = adaptive.wanted(study, n_cells, success)
        rnd, open_cells = adaptive.round_of(study, n_cells, success)
        rounds = len(adaptive.looks(study.adaptive.first, study.seeds))
        return Round(want, f"round {rnd} of at most {rounds}, {open_cells} cells open",
                     open_cells)

    def cells(self, cells: list[dict], trials: list[dict], study: Study) -> list[dict]:
        return report.summarize(cells, trials, study.adaptive, study.seeds, study.select)

    def trials(self, cells: dict, trials: list[dict]) -> list[dict]:
        return report.trial_records(cells, trials)

    def frontier(self, results, target: float, over: str) -> list[dict]:
        return report.checked_frontier(results.cells(), target, over)

    def summary_table(self, records: list[dict], target: float) -> str:
        return report.cells_table(records, target)

    def plot(self, records: list[dict], out: Path, target: float) -> list[Path]:
        return report.figures(records, out, target)


KIND = ParityKind()
