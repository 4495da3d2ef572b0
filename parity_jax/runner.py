"""The one driver: plan -> program -> store for every kind of study, with progress, resume,
Ctrl-C, shards and multi-host (docs/DESIGN.md §2).

A study (parity or tabular) becomes a plan of work units -- compiled batches of trials, and for
tabular studies the tuned forests -- run one after another; each unit's outcomes are stored in
one transaction, so a crash loses at most the unit in flight, and the same call resumes by
trial identity (cell, seed).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

import jax
import numpy as np

from parity_jax import devices as devices_
from parity_jax import plan as planning
from parity_jax import reduce, render
from parity_jax.config import ConfigError, Study, TabularStudy
from parity_jax.progress import Progress
from parity_jax.store import Curve, Store, StoreError, TabularTrial, Trial
from parity_jax.store import lock as store_lock


class Results:
    """Reads a results store: per-cell summaries, per-trial records, frontiers.

    ``cells()`` / ``trials()`` return lists of dicts, or pandas DataFrames with ``frame=True``.
    For a tabular store, ``trials()`` has one record per MLP trial and per tuned forest and
    ``cells()`` the selected best of each family per (dataset, fraction) (``reduce.select``).
    """

    def __init__(self, out: str | Path):
        if not isinstance(out, str | os.PathLike):
            raise ConfigError(f"out = {out!r}: must be a directory path")
        self.out = Path(out)
        self.compiled: dict | None = None  # set by run(): programs, seconds, cache_hits
        store = Store.open(self.out)
        try:
            self.kind = store.kind
            self._cells = store.cells()
            self._trials = store.trials()
            self._curves = store.curve_rows()
            self.study = store.study()
        finally:
            store.close()

    def cells(self, frame: bool = False):
        if self.kind == "tabular":
            return _maybe_frame(reduce.select(self.trials()), frame)
        return _maybe_frame(reduce.summarize(self._cells, self._trials), frame)

    def trials(self, frame: bool = False):
        by_id = {c["cell"]: c for c in self._cells}
        if self.kind == "tabular":
            return _maybe_frame([_tabular_record(by_id[t["cell"]], t) for t in self._trials],
                                frame)
        return _maybe_frame([{**by_id[t["cell"]], **t} for t in self._trials], frame)

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
        reaches ``target`` (parity studies: a tabular study has no success probability)."""
        if self.kind == "tabular":
            raise ConfigError(f"frontier: {self.out} holds a tabular study, which has no "
                              "success probability; its comparison is cells() (the selected "
                              "models per dataset and fraction)")
        if isinstance(target, bool) or not isinstance(target, int | float) \
                or not 0 < target <= 1:
            raise ConfigError(f"target = {target!r}: must be a number in (0, 1]")
        if over not in reduce.CELL_FIELDS:
            raise ConfigError(f"over = {over!r}: must be one of {', '.join(reduce.CELL_FIELDS)}")
        return _maybe_frame(reduce.frontier(self.cells(), target, over), frame)


_MLP_FIELDS = ("dataset", "fraction", "m", "init", "s", "lr", "seed", "width", "depth",
               "optimizer", "val_loss", "val_error", "test_error", "best_step",
               "final_test_error", "diverged")
_FOREST_FIELDS = ("dataset", "fraction", "m", "seed", "val_error", "val_loss", "test_error")


def _tabular_record(cell: dict, trial: dict) -> dict:
    """A stored tabular trial as the benchmark's record ({"model": "mlp" | "forest", ...})."""
    both = {**cell, **trial}
    if cell["model"] == "forest":
        return {"model": "forest", **{f: both[f] for f in _FOREST_FIELDS},
                "params": trial.get("params"), "iterations": cell["iterations"]}
    return {"model": "mlp", **{f: both[f] for f in _MLP_FIELDS}}


def _maybe_frame(records: list[dict], frame: bool):
    if not frame:
        return records
    import pandas as pd  # optional dependency

    return pd.DataFrame.from_records(records)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run after its batch in flight was stored."""


class _StopOnSigint:
    """While active (main thread only): the first Ctrl-C asks the run to stop after the batch
    in flight is stored; a second one gives that batch up (Python sees signals only between
    compiled calls, so neither interrupts a batch's computation itself)."""

    _UNSET = object()

    def __init__(self, progress: TextIO | None):
        self.requested = False
        self.progress = progress
        self.previous = self._UNSET

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.progress is not None:
            self.progress.write("\nstopping once the batch in flight is stored "
                                "(Ctrl-C again: give that batch up)\n")
            self.progress.flush()

    def __exit__(self, *exc):
        if self.previous is not self._UNSET:
            signal.signal(signal.SIGINT, self.previous if self.previous is not None
                          else signal.default_int_handler)


def init_distributed(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None) -> None:
    """Joins a multi-host job (JAX's multi-controller runtime) when asked to: by the arguments,
    or by ``JAX_COORDINATOR_ADDRESS`` (with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or
    what JAX detects itself under Slurm / Open MPI). Otherwise a no-op: one process."""
    env = os.environ
    coordinator = coordinator or env.get("JAX_COORDINATOR_ADDRESS")
    if coordinator is None and num_processes is None and process_id is None:
        return
    try:
        if num_processes is None and "JAX_NUM_PROCESSES" in env:
            num_processes = int(env["JAX_NUM_PROCESSES"])
        if process_id is None and "JAX_PROCESS_ID" in env:
            process_id = int(env["JAX_PROCESS_ID"])
        jax.distributed.initialize(coordinator, num_processes, process_id)
    except (ValueError, TypeError, RuntimeError) as e:
        raise ConfigError(f"--coordinator/--num-processes/--process-id: {e}") from None


def check_devices(devices: int | None) -> int:
    """``devices`` (default: all of them) checked against the devices JAX sees."""
    devices_.setup()  # an entry point: CPU split and compile cache, before JAX starts
    devices_.start()  # a JAX_PLATFORMS that cannot start: one error line
    available = jax.device_count()
    if devices is None:
        return available
    if not 1 <= devices <= available:
        raise ConfigError(f"--devices = {devices}: must be between 1 and {available} "
                          f"(the {jax.default_backend()} devices JAX sees)")
    return devices


# run()'s default progress stream: sys.stderr when it is called (a default bound when this
# module is imported would keep a stream replaced since, e.g. by pytest's capture)
_STDERR: TextIO = object()  # type: ignore[assignment]


def run(study: Study | TabularStudy, out: str | Path, *, memory_budget: int | None = None,
        devices: int | None = None, shard: str | tuple[int, int] | None = None,
        progress: TextIO | None = _STDERR) -> Results | None:
    """Runs (or resumes) ``study`` into ``out``/results.sqlite and returns its results.

    Args:
      study: a parity ``Study`` or a ``TabularStudy``; validated first (ConfigError on bad
        settings; a tabular study's datasets are all loaded and split before any training).
      out: output directory; resumed when it holds part of the same study (and shard),
        refused when it holds another.
      memory_budget: bytes batches are sized to (default: a safe fraction of the device's
        memory, or half of the available RAM). A resumed run reuses the budget it started with.
      devices: how many devices share each batch (default: all; see ``devices.program``).
        Outcomes do not depend on it.
      shard: ``"i/N"`` or (i, N): run only a deterministic 1/N of the trials (for job arrays;
        ``parity-jax merge`` combines the stores).
      progress: stream for the progress line (default: ``sys.stderr`` as it is at the call;
        None: silent).

    Returns ``Results`` (None on the processes other than 0 of a multi-host job). Ctrl-C
    (SIGINT) stops after the unit in flight is stored and raises ``Interrupted``; running the
    same call again resumes.
    """
    if progress is _STDERR:
        progress = sys.stderr
    if not isinstance(study, Study | TabularStudy):
        raise ConfigError(f"study = {study!r}: must be a parity_jax.Study or TabularStudy")
    if not isinstance(out, str | os.PathLike):
        raise ConfigError(f"out = {out!r}: must be a directory path")
    for name, value in (("memory_budget", memory_budget), ("devices", devices)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ConfigError(f"{name} = {value!r}: must be a positive integer (or None)")
    if progress is not None and not callable(getattr(progress, "write", None)):
        raise ConfigError(f"progress = {progress!r}: must be a text stream (or None)")
    study.validate()
    work = work_of(study)
    devices = check_devices(devices)
    if jax.process_count() > 1 and devices != jax.device_count():
        raise ConfigError(f"--devices = {devices}: a multi-host job uses all "
                          f"{jax.device_count()} devices of its processes")
    shard = planning.parse_shard(shard or (0, 1))
    shard_text = f"{shard[0]}/{shard[1]}"
    settings = {"memory_budget": memory_budget or planning.default_memory_budget(),
                "devices": devices, "shard": shard_text, "platform": jax.default_backend()}
    if isinstance(study, TabularStudy):
        del settings["memory_budget"]  # tabular batches are sized by planning.XY_FLOATS
        settings["sizes"] = work.sizes  # what `check` replans a shard with
    _refuse_old_tabular_parts(Path(out))
    whole = jax.process_count() > 1
    # Planned before anything is written: a trial that cannot fit the budget is refused here.
    requested = settings.get("memory_budget")
    plan = work.plan(requested, devices, shard, whole=whole)
    lead = jax.process_index() == 0  # in a multi-host job only process 0 touches the store
    store, done, error = None, set(), None
    held = contextlib.ExitStack()  # process 0 holds OUT's lock (one writer) until the end
    if lead:
        try:
            held.enter_context(store_lock(out))  # in use, or not writable: refused at once
            store = Store.open_for_run(out, study, work.cells, settings, work.data_ids())
            stored = store.plan_settings()  # a merged store has none: it is whole
            if stored.get("shard", "0/1") != shard_text:
                raise StoreError(f"out: {out} holds shard {stored.get('shard', '0/1')} of "
                                 f"this study, not {shard_text}; resume with that --shard or "
                                 "use another --out")
            if memory_budget is None:  # a resume keeps its budget unless given another
                settings["memory_budget"] = stored.get("memory_budget",
                                                       settings.get("memory_budget"))
            done = store.done()
        except BaseException as e:  # noqa: BLE001 -- re-raised below, after telling the others
            error = e
    done, budget = _from_process_0(None if error else done, settings.get("memory_budget") or 0)
    if error:
        if store is not None:
            store.close()
        held.close()
        raise error
    try:
        if requested is not None and budget != requested:  # resumed with its own budget
            plan = work.plan(budget, devices, shard, whole=whole)
        todo = [u for u in plan.batches
                if not all((t.cell, t.seed) in done for t in u.trials)]
        with (Progress(plan.n_trials, len(done & plan.trial_ids()),
                       progress if lead else None) as bar,
              _StopOnSigint(progress if lead else None) as sigint,
              devices_.CompileStats() as compiled):
            failsafe = devices_.FailSafe(warn=bar.warn)  # the kernel: checked, else XLA
            for unit in todo:
                # process 0 decides for all: go on, stop (Ctrl-C) or give up (its store failed)
                verdict = _lead_says(2 if error else 1 if sigint.requested else 0)
                if verdict == 2:
                    raise error or StoreError("out: process 0 could not store a batch "
                                              "(see its error)")
                if verdict == 1:
                    raise Interrupted(f"stopped: {bar.done} of {bar.total} trials stored in "
                                      f"{out}")
                skip = {t for t in unit.trials if (t.cell, t.seed) in done}
                try:
                    rows, curves, trial_steps = work.compute(unit, skip, devices, lead,
                                                              failsafe.train)
                except (jax.errors.JaxRuntimeError, MemoryError) as e:
                    if not devices_.out_of_memory(e):
                        raise
                    raise ConfigError(
                        f"memory: the device ran out of memory in a batch ({_describe(unit)}) "
                        f"with a memory budget of {render.size(budget)}; the {bar.done} "
                        "trials stored are intact: rerun with a smaller --memory-budget"
                    ) from None
                if store is None:
                    continue
                try:
                    store.add_trials(rows, curves)
                except StoreError as e:
                    if jax.process_count() == 1:
                        raise
                    error = e  # the others hear it at the next unit (or at the end)
                bar.update(len(rows), trial_steps)
            if error:
                raise error
    finally:
        if store is not None:
            store.close()
        held.close()
    if not lead:
        return None
    results = Results(out)
    results.compiled = {"programs": compiled.programs, "seconds": compiled.seconds,
                        "cache_hits": compiled.cache_hits}
    return results


def _describe(unit) -> str:
    shape = getattr(unit, "shape", None)
    if shape is None:
        return "a forest"
    return f"G x P = {shape.G} x {shape.P}, width {shape.W}"


def _refuse_old_tabular_parts(out: Path) -> None:
    """A directory of the earlier tabular format (``OUT/tabular/*.json``) is never mixed."""
    parts = out / "tabular"
    if parts.is_dir() and any(parts.glob("*.json")):
        raise StoreError(f"out: {out} holds tabular results in the earlier JSON-parts format "
                         f"({parts}/*.json); rerun into a new --out directory")


def work_of(study: Study | TabularStudy):
    """The work units of a study: how it is planned and how a unit is computed."""
    return _Tabular(study) if isinstance(study, TabularStudy) else _Parity(study)


class _Parity:
    """A parity study as work units: planned batches of the core."""

    def __init__(self, study: Study):
        self.study = study
        self.cells = study.cells()

    def data_ids(self) -> None:
        return None

    def plan(self, budget, devices, shard, whole) -> planning.Plan:
        return planning.make_plan(self.study, budget, devices, shard, whole=whole,
                                  platform=jax.default_backend())

    def compute(self, pb: planning.PlannedBatch, skip: set, devices: int, lead: bool,
                train=None):
        """Trains one planned batch (its not-yet-stored trials) with ``train`` (a
        ``devices.FailSafe``'s, or ``devices.train``): (trials, curves, steps)."""
        train = train or devices_.train
        inputs = planning.batch_inputs(self.study, self.cells, pb, skip)
        if jax.process_count() > 1:
            inputs = devices_.global_batch(pb.shape, inputs, devices)
        outcome, _ = train(pb.shape, inputs, devices)
        outcome = devices_.fetch(outcome)
        rows, curves = [], []
        for g, row in enumerate(pb.slots):
            for p, t in enumerate(row):
                if t is None or t in skip:
                    continue
                cell = self.cells[t.cell]
                if cell.record_curves:
                    evals = math.ceil(int(outcome.steps_run[g, p]) / cell.eval_every)
                    curves.append(Curve(t.cell, t.seed, *(
                        np.asarray(c[g, p, :evals], "<f4").tobytes()
                        for c in (outcome.curve_error, outcome.curve_loss))))
                rows.append(Trial(
                    t.cell, t.seed, bool(outcome.success[g, p]),
                    int(outcome.first_hit[g, p]) if outcome.success[g, p] else None,
                    _real(outcome.test_error[g, p]), _real(outcome.train_loss[g, p]),
                    int(outcome.steps_run[g, p]), bool(outcome.diverged[g, p]),
                ))
        valid = np.array([[t is not None and t not in skip for t in row] for row in pb.slots])
        return rows, curves, int(np.sum(np.where(valid, outcome.steps_run, 0)))


class _Tabular:
    """A tabular study as work units: batches of the core on each dataset's shared splits,
    and the tuned forests. Every dataset is loaded, split and checked before any training: a
    bad one is an error now, not after hours of work on the others."""

    def __init__(self, study: TabularStudy):
        from parity_jax import tabular

        self.study = study
        self.cells = study.cells()
        self.splits = {}
        for spec in study.axis("datasets"):
            try:
                splits = tabular.split(tabular.load(spec), study.seed,
                                       max_train=study.split.max_train,
                                       max_eval=study.split.max_eval)
            except tabular.DataError as e:
                raise ConfigError(f"datasets: {e}") from None
            if "sparse" in study.axis("mlp.init") and max(study.axis("mlp.s")) > splits.d:
                raise ConfigError(f"mlp.s = {max(study.axis('mlp.s'))}: must be at most the "
                                  f"number of features of dataset {spec!r} ({splits.d})")
            tabular.check_study(study, spec, splits)  # fractions' rows, width x features
            self.splits[spec] = splits
        self._shared = {}  # dataset -> its splits as device arrays, made once

    def data_ids(self) -> dict:
        from parity_jax import tabular

        return {spec: tabular.fingerprint(s) for spec, s in self.splits.items()}

    @property
    def sizes(self) -> dict[str, tuple[int, int]]:
        """(features, training rows) of each dataset."""
        return {spec: (s.d, len(s.y_train)) for spec, s in self.splits.items()}

    def plan(self, budget, devices, shard, whole) -> planning.Plan:
        return planning.make_tabular_plan(self.study, self.sizes, devices, shard, whole=whole)

    def compute(self, unit, skip: set, devices: int, lead: bool, train=None):
        train = train or devices_.train
        if isinstance(unit, planning.ForestUnit):
            return (self._forest(unit.trial) if lead else []), [], 0
        from parity_jax.tasks import xy

        spec = self.cells[unit.trials[0].cell].dataset
        splits = self.splits[spec]
        if spec not in self._shared:
            self._shared = {spec: xy.Shared.from_splits(splits)}  # one dataset at a time
        n_train = len(splits.y_train)
        inputs = planning.xy_batch_inputs(self.study, self.cells, unit, n_train, skip)
        inputs = inputs.replace(shared=self._shared[spec])
        # One device per batch in one process (chosen when a trial's rounding depended on how
        # many trials a device held; chunks have since made it independent, so every device
        # could be used: not measured yet). A multi-host job needs every device.
        if jax.process_count() > 1:
            inputs = devices_.global_batch(unit.shape, inputs, devices)
        else:
            devices = 1
        o = devices_.fetch(train(unit.shape, inputs, devices)[0])
        rows, steps = [], 0
        for g, (t,) in enumerate(unit.slots):
            if t is None or t in skip:
                continue
            rows.append(TabularTrial(
                t.cell, t.seed, int(inputs.task.m[g]), _real(o.val_loss[g]),
                _real(o.val_error[g]), _real(o.test_error[g]), int(o.best_step[g]),
                _real(o.final_test_error[g]), bool(o.diverged[g]), "{}"))
            steps += int(o.steps_run[g])
        return rows, [], steps

    def _forest(self, t: planning.Trial) -> list[TabularTrial]:
        """The tuned forest of one (dataset, fraction, seed)."""
        from parity_jax import forest, tabular

        c = self.cells[t.cell]
        s = self.splits[c.dataset]
        n_train = len(s.y_train)
        m = tabular.train_rows(n_train, c.fraction)
        rows = tabular.permutation(n_train, t.seed)[:m]
        best = forest.tune(s.x_train[rows], s.y_train[rows], s.x_val, s.y_val, s.x_test,
                           s.y_test, iterations=c.iterations, seed=t.seed,
                           n_estimators_max=c.n_estimators_max, n_jobs=-1)
        return [TabularTrial(t.cell, t.seed, m, _real(best["val_loss"]),
                             _real(best["val_error"]), _real(best["test_error"]), None, None,
                             False, json.dumps({"params": best["params"]}))]


def _lead_says(code: int) -> int:
    """Process 0's ``code`` on every process (one process: ``code``)."""
    if jax.process_count() == 1:
        return code
    from jax.experimental.multihost_utils import broadcast_one_to_all

    return int(broadcast_one_to_all(np.int32(code)))


def _from_process_0(done: set | None, budget: int) -> tuple[set | None, int]:
    """Process 0's view of the store -- the stored (cell, seed) pairs and the memory budget --
    on every process of a multi-host job (``done`` None: process 0 could not open it).

    Values travel as int32 (JAX's default): the budget in KiB (up to 2 TiB)."""
    if jax.process_count() == 1:
        return done, budget
    from jax.experimental.multihost_utils import broadcast_one_to_all

    kib = min(budget // 1024, 2**31 - 1)
    head = broadcast_one_to_all(np.array([-1 if done is None else len(done), kib], np.int32))
    if head[0] < 0:
        if done is None:
            return None, budget
        raise StoreError("out: process 0 could not open the results store (see its error)")
    rows = np.array(sorted(done), np.int32).reshape(-1, 2) if jax.process_index() == 0 \
        else np.zeros((int(head[0]), 2), np.int32)
    rows = broadcast_one_to_all(rows)
    return {(int(c), int(s)) for c, s in rows}, int(head[1]) * 1024


def _real(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
