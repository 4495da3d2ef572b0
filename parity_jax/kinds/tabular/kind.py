"""The tabular study kind: MLPs (dense and sparse init) against tuned random forests on
tabular datasets (``kinds.tabular.config.TabularStudy``; docs/DESIGN.md §1.12). Per dataset,
batches of the core on its shared splits, one program per (optimizer, depth, width); then one tuned
forest per (fraction, seed), a work unit of its own.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from parity_jax import costs, datasets, devices, errors, keys, plan, stored
from parity_jax.core import Batch, Shape
from parity_jax.errors import ConfigError
from parity_jax.flops import flops_per_trial_step
from parity_jax.kinds.protocol import Decoded
from parity_jax.kinds.tabular import report
from parity_jax.kinds.tabular.config import TabularStudy
from parity_jax.tasks import xy

# Floats of parameters, optimizer state and activations one tabular program call may hold.
XY_FLOATS = 1 << 27


@dataclasses.dataclass(frozen=True)
class ForestUnit:
    """One tuned random forest (a tabular (dataset, fraction, seed)): trained by scikit-learn,
    not by a compiled program."""

    trial: plan.TrialId

    @property
    def trials(self) -> list[plan.TrialId]:
        return [self.trial]


def _cost(cells: list):
    def cost(shape: Shape, trials: list[plan.TrialId]) -> tuple[int, int]:
        """A program's peak bytes and its trials' FLOPs (steps only)."""
        flops = sum(cells[t.cell].steps * flops_per_trial_step(
            cells[t.cell].width, shape.task.d, cells[t.cell].batch, cells[t.cell].depth)
            for t in trials)
        return costs.batch_bytes(costs.xy_bytes(shape), shape), flops

    return cost


def make_tabular_plan(study: TabularStudy, datasets: dict[str, tuple[int, int]],
                      n_devices: int = 1, shard: tuple[int, int] = (0, 1),
                      whole: bool = False) -> plan.Plan:
    """Deterministic work units for every trial of a tabular study (or of one shard of it).

    ``datasets``: (features, training rows) of each dataset. Per dataset: one program per
    (optimizer, depth, width) -- padding a width-100 trial into a width-1000 program would cost
    10x its work -- holding every fraction, init, s, lr and seed, in batches of T trials (one
    per group) sized to ``XY_FLOATS``; then one ``ForestUnit`` per (fraction, seed). ``shard``
    (i, N): the units whose index over the whole study is i mod N, so a trial runs in the same
    batch in a shard as in the whole study (split by whole batch since before chunks made a
    trial's bits independent of its batch: kept, so stores stay comparable).
    """
    cells = study.cells()
    shard = plan.parse_shard(shard)
    programs: dict[tuple, list[plan.TrialId]] = defaultdict(list)
    forests: dict[str, list[plan.TrialId]] = defaultdict(list)
    for ci, c in enumerate(cells):
        for seed in range(study.seeds):
            if c.model == "forest":
                forests[c.dataset].append(plan.TrialId(ci, seed))
            else:
                programs[c.dataset, c.optimizer, c.depth, c.width].append(plan.TrialId(ci, seed))
    units: list = []
    index = 0  # of the unit over the whole study: a shard holds the units i mod N
    for spec in study.axis("datasets"):
        d, n_train = datasets[spec]
        for (dataset, opt, depth, width), trials in programs.items():
            if dataset != spec:
                continue
            c = cells[trials[0].cell]
            cap = max(1, XY_FLOATS // costs.xy_floats_per_trial(d, width, depth, c.batch))
            T = min(len(trials), cap)
            chunk = plan.chunk_groups(jax.default_backend() == "cpu", "vmapped", 1, width,
                                 study_groups=len(trials), max_groups=cap)
            # whole: a multi-host job gives every device a share (see TabularWork.compute)
            T = plan.round_groups(T, chunk, n_devices if whole else 1, whole)
            shape = Shape(task=xy.XYTask(d=d, n_train=n_train, batch=c.batch), depth=depth,
                          W=width, G=T, P=1, eval_every=c.eval_every, loss="logistic",
                          step=opt, layout="vmapped", tracker="best_validation",
                          curves=c.steps // c.eval_every, chunk=chunk)
            for start in range(0, len(trials), T):
                if plan.in_shard(index, shard):
                    members = trials[start:start + T]
                    slots = tuple((t,) for t in members) + ((None,),) * (T - len(members))
                    units.append(plan.PlannedBatch(shape=shape, slots=slots))
                index += 1
        for t in forests[spec]:
            if plan.in_shard(index, shard):
                units.append(ForestUnit(t))
            index += 1
    return plan.Plan(cells=cells, batches=units, cost=_cost(cells))


def xy_batch_inputs(study: TabularStudy, cells: list, pb: plan.PlannedBatch, n_train: int,
                    skip: set[plan.TrialId] = frozenset()) -> Batch:
    """Host inputs of a planned tabular batch (its ``shared`` data left to the caller);
    padding slots (and ``skip``ped trials) repeat a real trial's inputs, marked invalid."""
    trials = [row[0] for row in pb.slots]
    real = next(t for t in trials if t is not None)
    valid = np.array([t is not None and t not in skip for t in trials])
    trials = [t if t is not None else real for t in trials]
    cs = [cells[t.cell] for t in trials]
    init_key, order_key = keys.tabular_keys(
        study.seed, [keys.tabular_id(c, t.seed) for c, t in zip(cs, trials, strict=True)])
    T = len(trials)
    return Batch(
        task=xy.Inputs(
            order_key=order_key,
            rows=jnp.asarray(np.stack([datasets.permutation(n_train, t.seed) for t in trials])),
            m=jnp.array([datasets.train_rows(n_train, c.fraction) for c in cs], jnp.int32)),
        init_key=init_key,
        width=jnp.array([c.width for c in cs], jnp.int32),
        sparse=jnp.array([c.init == "sparse" for c in cs]),
        s=jnp.array([c.s or 1 for c in cs], jnp.int32),
        lr=jnp.array([c.lr for c in cs], jnp.float32),
        wd=jnp.array([c.wd for c in cs], jnp.float32),
        steps=jnp.full((T,), cs[0].steps, jnp.int32),
        valid=jnp.asarray(valid),
    )


# -- stored rows -------------------------------------------------------------------------------

class Row(NamedTuple):
    """A finished tabular trial (an MLP, or the tuned forest of a (fraction, seed)), as stored.
    ``extra``: JSON of what only forests have (the chosen configuration)."""

    cell: int
    seed: int
    m: int
    val_loss: float | None
    val_error: float | None
    test_error: float | None
    best_step: int | None
    final_test_error: float | None
    diverged: bool
    extra: str


SCHEMA = """
CREATE TABLE tabular_trials (
    cell INTEGER NOT NULL REFERENCES cells(cell),
    seed INTEGER NOT NULL,
    m INTEGER NOT NULL,
    val_loss REAL,
    val_error REAL,
    test_error REAL,
    best_step INTEGER,
    final_test_error REAL,
    diverged INTEGER NOT NULL,
    extra TEXT NOT NULL,
    PRIMARY KEY (cell, seed)
);
"""


def read_row(raw: tuple, grid: list, seeds: int) -> tuple[Row | None, list[str]]:
    """A stored tabular trial, or the problems that make it unreadable."""
    if len(raw) != len(Row._fields):
        return None, [f"tabular_trials row {errors.show(raw[:2])}: {len(raw)} columns, not "
                      f"{len(Row._fields)}"]
    where, bad = stored.where(raw, "tabular_trials", len(grid), seeds)
    if not bad:
        _, _, m, val_loss, val_error, test_error, best_step, final, diverged, extra = raw
        cell = grid[raw[0]]
        if not stored.is_flag(diverged):
            bad.append("diverged not a flag")
        if not (stored.is_int(m) and m >= 1):
            bad.append(f"m = {errors.show(m)} is not a training-set size")
        if not (val_loss is None or stored.is_real(val_loss)):
            bad.append(f"val_loss {errors.show(val_loss)} is not a number")
        bad += [f"{name} {errors.show(v)} outside [0, 1]" for name, v in
                (("val_error", val_error), ("test_error", test_error),
                 ("final_test_error", final)) if not stored.is_fraction(v)]
        if not (best_step is None or stored.is_int(best_step)):
            bad.append(f"best_step {errors.show(best_step)} is not an integer")
        elif cell.model == "mlp" and best_step is not None and not -1 <= best_step <= cell.steps:
            bad.append(f"best_step {best_step} outside [-1, {cell.steps}]")
        try:
            parsed = json.loads(extra) if isinstance(extra, str) else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or not set(parsed) <= {"params"}:
            bad.append("extra is not a JSON object of the forest's params")
    if bad:
        return None, [f"{where}: {b}" for b in bad]
    return Row(*raw[:3], *(None if v is None else float(v) for v in raw[3:6]),
                   raw[6], None if raw[7] is None else float(raw[7]), *raw[8:]), []


def _real(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# -- the kind ----------------------------------------------------------------------------------

class TabularWork:
    """A tabular study as work units: batches of the core on each dataset's shared splits, and
    the tuned forests. Every dataset is loaded, split and checked before any training: a bad
    one is an error now, not after hours of work on the others."""

    def __init__(self, study: TabularStudy):
        self.study = study
        self.cells = study.cells()
        self.splits = {}
        for spec in study.axis("datasets"):
            try:
                splits = datasets.split(datasets.load(spec), study.seed,
                                        max_train=study.split.max_train,
                                        max_eval=study.split.max_eval)
            except datasets.DataError as e:
                raise ConfigError(f"datasets: {e}") from None
            if "sparse" in study.axis("mlp.init") and max(study.axis("mlp.s")) > splits.d:
                raise ConfigError(f"mlp.s = {max(study.axis('mlp.s'))}: must be at most the "
                                  f"number of features of dataset {spec!r} ({splits.d})")
            datasets.check_study(study, spec, splits)  # fractions' rows, width x features
            self.splits[spec] = splits
        self._shared = {}  # dataset -> its splits as device arrays, made once

    def data_ids(self) -> dict:
        return {spec: datasets.fingerprint(s) for spec, s in self.splits.items()}

    @property
    def sizes(self) -> dict[str, tuple[int, int]]:
        """(features, training rows) of each dataset."""
        return {spec: (s.d, len(s.y_train)) for spec, s in self.splits.items()}

    def plan_settings(self, memory_budget: int) -> dict:
        # batches are sized by XY_FLOATS, not the budget; check replans a shard with the sizes
        return {"sizes": self.sizes}

    def plan(self, memory_budget, n_devices, shard, whole) -> plan.Plan:
        return make_tabular_plan(self.study, self.sizes, n_devices, shard, whole=whole)

    def select(self, units: plan.Plan, want: set) -> list:
        return [u for u in units.batches if any((t.cell, t.seed) in want for t in u.trials)]

    def describe(self, unit) -> str:
        if isinstance(unit, ForestUnit):
            return "a forest"
        return f"G x P = {unit.shape.G} x {unit.shape.P}, width {unit.shape.W}"

    def check_out(self, out: Path) -> None:
        """A directory of the earlier tabular format (``OUT/tabular/*.json``) is never mixed."""
        parts = out / "tabular"
        if parts.is_dir() and any(parts.glob("*.json")):
            raise errors.StoreError(f"out: {out} holds tabular results in the earlier "
                                   f"JSON-parts format ({parts}/*.json); rerun into a new "
                                   "--out directory")

    def compute(self, unit, skip: set, n_devices: int, lead: bool, train) -> Decoded:
        if isinstance(unit, ForestUnit):
            return Decoded(self._forest(unit.trial) if lead else [], [], 0)
        spec = self.cells[unit.trials[0].cell].dataset
        splits = self.splits[spec]
        if spec not in self._shared:
            self._shared = {spec: xy.Shared.from_splits(splits)}  # one dataset at a time
        n_train = len(splits.y_train)
        inputs = xy_batch_inputs(self.study, self.cells, unit, n_train, skip)
        inputs = inputs.replace(shared=self._shared[spec])
        # One device per batch in one process (chosen when a trial's rounding depended on how
        # many trials a device held; chunks have since made it independent, so every device
        # could be used: not measured yet). A multi-host job needs every device.
        if jax.process_count() > 1:
            inputs = devices.global_batch(unit.shape, inputs, n_devices)
        else:
            n_devices = 1
        o = devices.fetch(train(unit.shape, inputs, n_devices)[0])
        rows, steps = [], 0
        for g, (t,) in enumerate(unit.slots):
            if t is None or t in skip:
                continue
            rows.append(Row(
                t.cell, t.seed, int(inputs.task.m[g]), _real(o.val_loss[g]),
                _real(o.val_error[g]), _real(o.test_error[g]), int(o.best_step[g]),
                _real(o.final_test_error[g]), bool(o.diverged[g]), "{}"))
            steps += int(o.steps_run[g])
        return Decoded(rows, [], steps)

    def _forest(self, t: plan.TrialId) -> list[Row]:
        """The tuned forest of one (dataset, fraction, seed)."""
        from parity_jax import forest  # scikit-learn: only when a forest is tuned

        c = self.cells[t.cell]
        s = self.splits[c.dataset]
        n_train = len(s.y_train)
        m = datasets.train_rows(n_train, c.fraction)
        rows = datasets.permutation(n_train, t.seed)[:m]
        best = forest.tune(s.x_train[rows], s.y_train[rows], s.x_val, s.y_val, s.x_test,
                           s.y_test, iterations=c.iterations, seed=t.seed,
                           n_estimators_max=c.n_estimators_max, n_jobs=-1)
        return [Row(t.cell, t.seed, m, _real(best["val_loss"]), _real(best["val_error"]),
                        _real(best["test_error"]), None, None, False,
                        json.dumps({"params": best["params"]}))]


class TabularKind:
    """The tabular study kind (``kinds.StudyKind``)."""

    name: ClassVar[str] = "tabular"
    study_type: ClassVar[type] = TabularStudy
    schema: ClassVar[str] = SCHEMA
    rows_table: ClassVar[str] = "tabular_trials"
    curves_table: ClassVar[str | None] = None
    Row: ClassVar[type] = Row
    needs_data: ClassVar[bool] = True

    def claims(self, config: dict) -> bool:
        return "datasets" in config

    def work(self, study: TabularStudy) -> TabularWork:
        return TabularWork(study)

    def expected(self, study: TabularStudy, settings: dict, shard: tuple[int, int]) -> set:
        # the datasets' sizes it was planned with
        sizes = {spec: tuple(v) for spec, v in settings.get("sizes", {}).items()}
        if set(sizes) != set(study.axis("datasets")):
            raise ConfigError(f"sizes are of datasets {', '.join(sorted(sizes))}, not the "
                              "study's")
        return make_tabular_plan(study, sizes, 1, shard).trial_ids()

    def plan_problems(self, settings: dict) -> list[str]:
        sizes = settings.get("sizes")
        ok = sizes is None or isinstance(sizes, dict) and all(
            isinstance(p, list) and len(p) == 2 and all(stored.is_int(x) and x >= 1 for x in p)
            for p in sizes.values())
        return [] if ok else [f"meta: plan setting sizes = {errors.show(sizes)} is not an "
                              "object of [features, rows] pairs"]

    def cell_record(self, settings: dict) -> dict:
        return settings

    def read_row(self, raw, grid, seeds):
        return read_row(raw, grid, seeds)

    def read_curve(self, raw, grid, seeds, rows):
        where, bad = stored.where(raw, "curves", len(grid), seeds, curve=True)
        return None, [f"{where}: {b}" for b in bad or ["no such trial"]]

    def record(self, row: Row) -> dict:
        """The stored row, its ``extra`` (a forest's chosen configuration) merged in."""
        d = {**row._asdict(), "diverged": bool(row.diverged)}
        d.update(json.loads(d.pop("extra")))
        return d

    def trials(self, cells: dict, trials: list[dict]) -> list[dict]:
        return report.trial_records(cells, trials)

    def wanted(self, study: TabularStudy, rows: dict) -> None:
        return None  # every trial (a tabular study is never adaptive)

    def cells(self, cells: list[dict], trials: list[dict], study: TabularStudy) -> list[dict]:
        return report.summarize(cells, trials)

    def frontier(self, results, target: float, over: str) -> list[dict]:
        raise report.no_frontier(results.out)

    def summary_table(self, records: list[dict], target: float) -> str:
        return report.summary_table(records)

    def plot(self, records: list[dict], out: Path, target: float) -> list[Path]:
        raise report.no_plot(out)


KIND = TabularKind()
