"""The study runner: plan -> engine -> store, with progress and resume."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import jax
import numpy as np

from parity_jax import engine, reduce
from parity_jax import plan as planning
from parity_jax.config import ConfigError, Study, TabularStudy, stable_int
from parity_jax.store import Store, StoreError


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
            self._curves = store.curve_rows()
            self.study = store.study()
        finally:
            store.close()

    def cells(self, frame: bool = False):
        return _maybe_frame(reduce.summarize(self._cells, self._trials), frame)

    def trials(self, frame: bool = False):
        by_id = {c["cell"]: c for c in self._cells}
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
    available = jax.device_count()
    if devices is None:
        return available
    if not 1 <= devices <= available:
        raise ConfigError(f"--devices = {devices}: must be between 1 and {available} "
                          f"(the {jax.default_backend()} devices JAX sees)")
    return devices


def run(study: Study, out: str | Path, *, memory_budget: int | None = None,
        devices: int | None = None, shard: str | tuple[int, int] | None = None,
        progress: TextIO | None = sys.stderr) -> Results:
    """Runs (or resumes) ``study`` into ``out``/results.sqlite and returns its results.

    Args:
      study: the study; validated first (ConfigError on bad settings).
      out: output directory; resumed when it holds part of the same study (and shard),
        refused when it holds another.
      memory_budget: bytes batches are sized to (default: a safe fraction of the device's
        memory, or half of the available RAM). A resumed run reuses the budget it started with.
      devices: how many devices share each batch (default: all; see ``engine.train_batch``).
        Outcomes do not depend on it.
      shard: ``"i/N"`` or (i, N): run only a deterministic 1/N of the trials (for job arrays;
        ``parity-jax merge`` combines the stores).
      progress: stream for the progress line (None: silent).

    Ctrl-C (SIGINT) stops after the batch in flight is stored and raises ``Interrupted``;
    running the same call again resumes.
    """
    study.validate()
    cells = study.cells()
    devices = check_devices(devices)
    if jax.process_count() > 1 and devices != jax.device_count():
        raise ConfigError(f"--devices = {devices}: a multi-host job uses all "
                          f"{jax.device_count()} devices of its processes")
    shard = planning.parse_shard(shard or (0, 1))
    shard_text = f"{shard[0]}/{shard[1]}"
    settings = {"memory_budget": memory_budget or planning.default_memory_budget(),
                "devices": devices, "shard": shard_text}
    lead = jax.process_index() == 0  # in a multi-host job only process 0 touches the store
    store, done, error = None, set(), None
    if lead:
        try:
            store = Store.open_for_run(out, study, cells, settings)
            stored = store.plan_settings()  # a merged store has none: it is whole
            if stored.get("shard", "0/1") != shard_text:
                raise StoreError(f"out: {out} holds shard {stored.get('shard', '0/1')} of "
                                 f"this study, not {shard_text}; resume with that --shard or "
                                 "use another --out")
            settings["memory_budget"] = stored.get("memory_budget", settings["memory_budget"])
            done = store.done()
        except BaseException as e:  # noqa: BLE001 -- re-raised below, after telling the others
            error = e
    done, budget = _from_process_0(None if error else done, settings["memory_budget"])
    if error:
        if store is not None:
            store.close()
        raise error
    try:
        plan = planning.make_plan(study, budget, devices, shard,
                                  whole=jax.process_count() > 1)
        todo = [b for b in plan.batches
                if not all((t.cell, t.seed) in done for t in b.trials)]
        bar = _Progress(plan.n_trials, len(done & plan.trial_ids()),
                        progress if lead else None)
        with _StopOnSigint(progress if lead else None) as sigint:
            for pb in todo:
                # process 0 decides for all: go on, stop (Ctrl-C) or give up (its store failed)
                verdict = _lead_says(2 if error else 1 if sigint.requested else 0)
                if verdict == 2:
                    raise error or StoreError("out: process 0 could not store a batch "
                                              "(see its error)")
                if verdict == 1:
                    raise Interrupted(f"stopped: {bar.done} of {bar.total} trials stored in "
                                      f"{out}")
                try:
                    _run_batch(study, cells, pb, done, devices, store, bar)
                except StoreError as e:
                    if jax.process_count() == 1:
                        raise
                    error = e  # the others hear it at the next batch (or at the end)
            if error:
                raise error
        bar.close()
    finally:
        if store is not None:
            store.close()
    return Results(out) if lead else None


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


def _run_batch(study, cells, pb, done, devices, store, bar) -> None:
    """Trains one planned batch (its not-yet-stored trials) and stores their outcomes."""
    skip = {t for t in pb.trials if (t.cell, t.seed) in done}
    inputs = planning.batch_inputs(study, cells, pb, skip)
    if jax.process_count() > 1:
        inputs = engine.global_batch(pb.shape, inputs, devices)
    outcome, _ = engine.train_batch(pb.shape, inputs, devices)
    outcome = engine.fetch(outcome)
    if store is None:
        return
    rows, curves = [], []
    for g, row in enumerate(pb.slots):
        for p, t in enumerate(row):
            if t is None or t in skip:
                continue
            cell = cells[t.cell]
            if cell.record_curves:
                evals = math.ceil(int(outcome.steps_run[g, p]) / cell.eval_every)
                curves.append((t.cell, t.seed) + tuple(
                    np.asarray(c[g, p, :evals], "<f4").tobytes()
                    for c in (outcome.curve_error, outcome.curve_loss)))
            rows.append((
                t.cell, t.seed, bool(outcome.success[g, p]),
                int(outcome.first_hit[g, p]) if outcome.success[g, p] else None,
                _real(outcome.test_error[g, p]), _real(outcome.train_loss[g, p]),
                int(outcome.steps_run[g, p]), bool(outcome.diverged[g, p]),
            ))
    store.add_trials(rows, curves)
    bar.update(len(rows), int(np.sum(np.where(pb_valid(pb, skip), outcome.steps_run, 0))))


def pb_valid(pb: planning.PlannedBatch, skip: set) -> np.ndarray:
    """(G, P) mask of the slots a batch actually computes for the store."""
    return np.array([[t is not None and t not in skip for t in row] for row in pb.slots])


def _real(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# ---- the tabular benchmark: MLPs (engine.train_xy) and tuned forests per dataset ------------

# Floats of parameters, optimizer state and activations one tabular program call may hold.
XY_FLOATS = 1 << 27


def run_tabular(study: TabularStudy, out: str | Path, *,
                progress: TextIO | None = sys.stderr) -> list[dict]:
    """Runs (or resumes) a tabular study into ``out``/tabular/; returns every trial record.

    Per dataset: load and split it (``tabular``), train the MLP grid (one program per
    (optimizer, depth, width), trials = seeds x fractions x inits x lr, in chunks), then the random
    forests (one random search per (fraction, seed)), each part saved to
    ``out/tabular/DATASET.json`` as soon as it is done, so a crash loses at most the part in
    flight and the same call resumes. Records: {"model": "mlp" | "forest", "dataset",
    "fraction", "m", "seed", ..., "val_loss", "val_error", "test_error"}.
    """
    from parity_jax import tabular

    study.validate()
    out = Path(out) / "tabular"
    # Every dataset is loaded, split and checked before any training: a bad one is an error
    # now, not after hours of work on the others.
    data = []
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
        data.append((spec, splits))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"out: cannot create {out}: {e.strerror}") from None
    records = []
    for spec, splits in data:
        path = out / f"{tabular._safe(spec)}-{stable_int(spec):08x}.json"
        saved = _load_part(path, study, splits)
        _mlp_trials(study, spec, splits, saved, path, progress)
        _forest_trials(study, spec, splits, saved, path, progress)
        records += [r for part in saved["parts"].values() for r in part]
    return records


def _load_part(path: Path, study, splits) -> dict:
    """The saved parts of one dataset's results, or a fresh record if there are none."""
    from parity_jax import tabular

    head = {"study": study.fingerprint(), "data": tabular.fingerprint(splits)}
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise StoreError(f"out: {path} is not readable JSON ({e}); move it away to rerun "
                             "that dataset") from None
        if {k: saved.get(k) for k in head} != head:
            raise StoreError(f"out: {path} holds results of another study or other data; use "
                             "another --out")
        return saved
    return {**head, "parts": {}}


def _save_part(path: Path, saved: dict) -> None:
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(saved))
        os.replace(tmp, path)  # the file is always a whole, earlier or later, version
    except OSError as e:
        raise StoreError(f"out: cannot write {path}: {e.strerror}") from None


def _mlp_trials(study, spec, splits, saved, path, progress) -> None:
    """Trains the dataset's MLP grid, one saved part per program call."""
    import jax.numpy as jnp

    from parity_jax import tabular

    n_train = len(splits.y_train)
    inits = [(i, s) for i in study.axis("mlp.init")
             for s in (study.axis("mlp.s") if i == "sparse" else [None])]
    trials = [dict(fraction=f, m=tabular.train_rows(n_train, f), init=i, s=s, lr=lr, seed=seed)
              for f in study.axis("fractions") for i, s in inits
              for lr in study.axis("mlp.lr") for seed in range(study.seeds)]
    data = engine.XYData.from_splits(splits)
    perms = np.stack([tabular.permutation(n_train, seed) for seed in range(study.seeds)])
    mlp = study.mlp
    programs = [(opt, depth, width) for opt in study.axis("mlp.optimizer")
                for depth in study.axis("mlp.depth") for width in study.axis("mlp.width")]
    def ident(r, opt, depth, width):
        return (opt, depth, width, r["fraction"], r["init"], r["s"], r["lr"], r["seed"])

    # Resume by trial identity (not by chunk), so a different chunk size never repeats a trial.
    done = {ident(r, r["optimizer"], r["depth"], r["width"])
            for k, part in saved["parts"].items() if k.startswith("mlp") for r in part}
    bar = _Progress(len(trials) * len(programs), len(done), progress)
    base = jax.random.key(study.seed)
    for opt, depth, width in programs:
        todo = [t for t in trials if ident(t, opt, depth, width) not in done]
        per_trial = (width * (splits.d + (depth - 1) * width + 2) * 4  # params, grads, state
                     + mlp.batch * width * depth * 3)  # activations
        T = max(1, min(len(trials), XY_FLOATS // per_trial))
        shape = engine.XYShape(d=splits.d, depth=depth, W=width, T=T, n_train=n_train,
                               batch=mlp.batch, steps=mlp.steps, eval_every=mlp.eval_every,
                               optimizer=opt)
        for start in range(0, len(todo), T):
            key = f"mlp/{1 + max(_mlp_parts(saved), default=-1)}"
            chunk = todo[start:start + T]
            padded = chunk + [chunk[-1]] * (T - len(chunk))  # one shape for every chunk
            ids = [stable_int(spec, t["fraction"], width, depth, t["init"], t["s"], opt,
                              t["lr"], t["seed"]) for t in padded]
            keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.array(ids, jnp.uint32))
            b = engine.XYBatch(
                init_key=jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys),
                order_key=jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys),
                rows=jnp.asarray(perms[[t["seed"] for t in padded]]),
                m=jnp.array([t["m"] for t in padded], jnp.int32),
                width=jnp.full((T,), width, jnp.int32),
                sparse=jnp.array([t["init"] == "sparse" for t in padded]),
                s=jnp.array([t["s"] or 1 for t in padded], jnp.int32),
                lr=jnp.array([t["lr"] for t in padded], jnp.float32),
                wd=jnp.full((T,), mlp.wd, jnp.float32))
            o = jax.device_get(engine.train_xy(shape, data, b))
            saved["parts"][key] = [
                {"model": "mlp", "dataset": spec, **t, "width": width, "depth": depth,
                 "optimizer": opt, "val_loss": _real(o.val_loss[i]),
                 "val_error": _real(o.val_error[i]), "test_error": _real(o.test_error[i]),
                 "best_step": int(o.best_step[i]),
                 "final_test_error": _real(o.final_test_error[i]),
                 "diverged": bool(o.diverged[i])}
                for i, t in enumerate(chunk)]
            _save_part(path, saved)
            bar.update(len(chunk), len(chunk) * mlp.steps)
    bar.close()


def _mlp_parts(saved: dict) -> list[int]:
    return [int(k.split("/")[1]) for k in saved["parts"] if k.startswith("mlp/")]


def _forest_trials(study, spec, splits, saved, path, progress) -> None:
    """The tuned forest of every (fraction, seed), one saved part each."""
    from parity_jax import forest, tabular

    if study.forest.iterations == 0:
        return
    n_train = len(splits.y_train)
    for fraction in study.axis("fractions"):
        m = tabular.train_rows(n_train, fraction)
        for seed in range(study.seeds):
            key = f"forest/{fraction}/{seed}"
            if key in saved["parts"]:
                continue
            rows = tabular.permutation(n_train, seed)[:m]
            best = forest.tune(splits.x_train[rows], splits.y_train[rows], splits.x_val,
                               splits.y_val, splits.x_test, splits.y_test,
                               iterations=study.forest.iterations, seed=seed,
                               n_estimators_max=study.forest.n_estimators_max, n_jobs=-1)
            saved["parts"][key] = [{"model": "forest", "dataset": spec, "fraction": fraction,
                                    "m": m, "seed": seed, **best}]
            _save_part(path, saved)
        if progress is not None:
            progress.write(f"{spec}: forests of fraction {fraction} done\n")
            progress.flush()
