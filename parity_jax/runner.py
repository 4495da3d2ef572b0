"""The one driver: plan -> program -> store for every kind of study, with progress, resume,
Ctrl-C and the OOM message (docs/DESIGN.md §2.12).

A study becomes its kind's work units (``kinds.StudyKind.work``) -- compiled batches of trials,
and for tabular studies the tuned forests -- run one after another; each unit's outcomes are
stored in one transaction, so a crash loses at most the unit in flight, and the same call
resumes by trial identity (cell, seed). Multi-host jobs: ``multihost``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import NamedTuple, TextIO

import jax

from parity_jax import costs, devices, kinds, multihost, plan, render
from parity_jax.errors import ConfigError, StoreError, out_of_memory
from parity_jax.lock import lock
from parity_jax.progress import Progress
from parity_jax.results import Results
from parity_jax.store import Store


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


def check_devices(n_devices: int | None) -> int:
    """``n_devices`` (default: all of them) checked against the devices JAX sees."""
    devices.setup()  # an entry point: CPU split and compile cache, before JAX starts
    devices.start()  # a JAX_PLATFORMS that cannot start: one error line
    available = jax.device_count()
    if n_devices is None:
        return available
    if not 1 <= n_devices <= available:
        raise ConfigError(f"--devices = {n_devices}: must be between 1 and {available} "
                          f"(the {jax.default_backend()} devices JAX sees)")
    return n_devices


# run()'s default progress stream: sys.stderr when it is called (a default bound when this
# module is imported would keep a stream replaced since, e.g. by pytest's capture)
_STDERR: TextIO = object()  # type: ignore[assignment]


class Prepared(NamedTuple):
    """A study made ready to run or plan (``prepare``): its kind, work and plan."""

    kind: kinds.StudyKind
    work: kinds.Work
    n_devices: int
    shard: tuple[int, int]
    settings: dict  # the plan settings a store keeps (devices, shard, platform, the kind's)
    units: plan.Plan  # planned with the budget asked for (a resume may plan again with its own)

    @property
    def shard_text(self) -> str:
        return f"{self.shard[0]}/{self.shard[1]}"


def prepare(study, *, memory_budget: int | None = None, n_devices: int | None = None,
            shard: str | tuple[int, int] | None = None) -> Prepared:
    """What ``run`` and ``plan`` do before anything is stored: the study validated (and a
    tabular study's data loaded), the devices started and checked, the shard parsed, the plan
    settings made and every unit planned -- a trial that cannot fit the budget is refused
    here. ConfigError on bad input."""
    kind = kinds.of(study)
    for name, value in (("memory_budget", memory_budget), ("n_devices", n_devices)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ConfigError(f"{name} = {value!r}: must be a positive integer (or None)")
    study.validate()
    work = kind.work(study)
    n_devices = check_devices(n_devices)
    if jax.process_count() > 1 and n_devices != jax.device_count():
        raise ConfigError(f"--devices = {n_devices}: a multi-host job uses all "
                          f"{jax.device_count()} devices of its processes")
    shard = plan.parse_shard(shard or (0, 1))
    settings = {"devices": n_devices, "shard": f"{shard[0]}/{shard[1]}",
                "platform": jax.default_backend(),
                **work.plan_settings(memory_budget or costs.default_memory_budget())}
    units = work.plan(settings.get("memory_budget"), n_devices, shard,
                      jax.process_count() > 1)
    return Prepared(kind, work, n_devices, shard, settings, units)


def _open_store(out: str | Path, study, prep: Prepared, memory_budget: int | None,
                held: contextlib.ExitStack) -> tuple[Store, set]:
    """Process 0's side of a run: OUT locked (in ``held``) and its store opened or created,
    the shard it holds checked, the budget of a resumed run taken from it; (store, done)."""
    held.enter_context(lock(out))  # in use, or not writable: refused at once
    store = Store.open_for_run(out, study, prep.work.cells, prep.settings, prep.work.data_ids())
    try:
        stored = store.plan_settings()  # a merged store has none: it is whole
        if stored.get("shard", "0/1") != prep.shard_text:
            raise StoreError(f"out: {out} holds shard {stored.get('shard', '0/1')} of "
                             f"this study, not {prep.shard_text}; resume with that --shard or "
                             "use another --out")
        if memory_budget is None:  # a resume keeps its budget unless given another
            prep.settings["memory_budget"] = stored.get("memory_budget",
                                                        prep.settings.get("memory_budget"))
        return store, store.done()
    except BaseException:
        store.close()
        raise


def run(study, out: str | Path, *, memory_budget: int | None = None,
        n_devices: int | None = None, shard: str | tuple[int, int] | None = None,
        progress: TextIO | None = _STDERR, **renamed) -> Results | None:
    """Runs (or resumes) ``study`` into ``out``/results.sqlite and returns its results.

    Args:
      study: a parity ``Study`` or a ``TabularStudy`` (any registered kind, ``kinds``);
        validated first (ConfigError on bad settings; a tabular study's datasets are all
        loaded and split before any training).
      out: output directory; resumed when it holds part of the same study (and shard),
        refused when it holds another.
      memory_budget: bytes batches are sized to (default: a safe fraction of the device's
        memory, or half of the available RAM). A resumed run reuses the budget it started with.
      n_devices: how many devices share each batch (default: all; see ``devices.program``).
        Outcomes do not depend on it.
      shard: ``"i/N"`` or (i, N): run only a deterministic 1/N of the trials (for job arrays;
        ``parity-jax merge`` combines the stores).
      progress: stream for the progress line (default: ``sys.stderr`` as it is at the call;
        None: silent).
      renamed: ``devices=``, the earlier name of ``n_devices`` (a DeprecationWarning).

    Returns ``Results`` (None on the processes other than 0 of a multi-host job). Ctrl-C
    (SIGINT) stops after the unit in flight is stored and raises ``Interrupted``; running the
    same call again resumes.
    """
    if progress is _STDERR:
        progress = sys.stderr
    for name in renamed:
        if name != "devices":
            raise TypeError(f"run() got an unexpected keyword argument {name!r}")
        warnings.warn("run(devices=...) is run(n_devices=...) now", DeprecationWarning,
                      stacklevel=2)
        n_devices = renamed["devices"] if n_devices is None else n_devices
    kinds.of(study)  # no study: one error before anything else
    if not isinstance(out, str | os.PathLike):
        raise ConfigError(f"out = {out!r}: must be a directory path")
    if progress is not None and not callable(getattr(progress, "write", None)):
        raise ConfigError(f"progress = {progress!r}: must be a text stream (or None)")
    prep = prepare(study, memory_budget=memory_budget, n_devices=n_devices, shard=shard)
    prep.work.check_out(Path(out))
    requested = prep.settings.get("memory_budget")
    lead = jax.process_index() == 0  # in a multi-host job only process 0 touches the store
    store, done, error = None, set(), None
    held = contextlib.ExitStack()  # process 0 holds OUT's lock (one writer) until the end
    if lead:
        try:
            store, done = _open_store(out, study, prep, memory_budget, held)
        except BaseException as e:  # noqa: BLE001 -- re-raised below, after telling the others
            error = e
    done, budget = multihost.from_process_0(None if error else done,
                                            prep.settings.get("memory_budget") or 0)
    if error:
        held.close()
        raise error
    try:
        units = prep.units
        if requested is not None and budget != requested:  # resumed with its own budget
            units = prep.work.plan(budget, prep.n_devices, prep.shard, jax.process_count() > 1)
        compiled = _train(prep, study, units, done, store, budget, out,
                          progress if lead else None)
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


def _train(prep: Prepared, study, units: plan.Plan, done: set, store: Store | None,
           budget: int, out: str | Path, progress: TextIO | None) -> devices.CompileStats:
    """Trains every unit not yet stored, storing each as it finishes (process 0); returns
    the compile statistics. An adaptive study (its kind's ``wanted``) runs in rounds: process
    0 decides from the stored rows what the next round runs, until nothing more is wanted."""
    kind = prep.kind
    rounds = kind.wanted(study, {}) is not None  # adaptive: known from the study alone
    with (Progress(units.n_trials, len(done & units.trial_ids()), progress) as bar,
          _StopOnSigint(progress) as sigint,
          devices.CompileStats() as compiled):
        rows = {r[:2]: r for r in store.rows()} if rounds and store is not None else None
        state = _State(prep, done, rows, store, budget, out, bar, sigint,
                       devices.FailSafe(warn=bar.warn,
                                        recorded=store.engines() if store is not None else None))
        while True:
            want = None
            if rounds:  # process 0 decides what this round runs, from the stored rows
                ahead = kind.wanted(study, state.rows) if store is not None else None
                want = multihost.lead_set(None if ahead is None else ahead.want)
                if ahead is not None:
                    bar.retotal(len(want | (done & units.trial_ids())), ahead.label)
            batches = units.batches if want is None else prep.work.select(units, want - done)
            todo = [u for u in batches if any((t.cell, t.seed) not in done
                                              and (want is None or (t.cell, t.seed) in want)
                                              for t in u.trials)]
            for unit in todo:
                state.train(unit, want)
            # every process hears whether process 0 stored them all (before a next round)
            if multihost.lead_says(2 if state.error else 0) == 2:
                raise state.error or StoreError("out: process 0 could not store a batch (see "
                                                "its error)")
            if want is None or not todo:
                break
    return compiled


@dataclasses.dataclass
class _State:
    """What one run's units share: the stored (cell, seed) and rows, the store (process 0)."""

    prep: Prepared
    done: set
    rows: dict | None  # the stored rows by (cell, seed): kept for an adaptive study's rounds
    store: Store | None
    budget: int
    out: str | Path
    bar: Progress
    sigint: _StopOnSigint
    failsafe: devices.FailSafe
    error: BaseException | None = None  # process 0 could not store (multi-host: told later)

    def train(self, unit, want: set | None) -> None:
        """Trains one unit's trials that are wanted and not yet stored, and stores them."""
        prep, bar = self.prep, self.bar
        # process 0 decides for all: go on, stop (Ctrl-C) or give up (its store failed)
        verdict = multihost.lead_says(2 if self.error else 1 if self.sigint.requested else 0)
        if verdict == 2:
            raise self.error or StoreError("out: process 0 could not store a batch (see its "
                                           "error)")
        if verdict == 1:
            raise Interrupted(f"stopped: {bar.done} of {bar.total} trials stored in "
                              f"{self.out}")
        skip = {t for t in unit.trials if (t.cell, t.seed) in self.done
                or (want is not None and (t.cell, t.seed) not in want)}
        try:
            new, curves, trial_steps = prep.work.compute(unit, skip, prep.n_devices,
                                                         self.store is not None,
                                                         self.failsafe.train)
        except (jax.errors.JaxRuntimeError, MemoryError) as e:
            if not out_of_memory(e):
                raise
            raise ConfigError(
                f"memory: the device ran out of memory in a batch "
                f"({prep.work.describe(unit)}) with a memory budget of "
                f"{render.size(self.budget)}; the {bar.done} trials stored are intact: "
                "rerun with a smaller --memory-budget"
            ) from None
        self.done |= {(t.cell, t.seed) for t in unit.trials if t not in skip}
        if self.rows is not None:
            self.rows.update({r[:2]: r for r in new})
        if self.store is None:
            return
        try:
            self.store.add_trials(new, curves, self.failsafe.engines)
        except StoreError as e:
            if jax.process_count() == 1:
                raise
            self.error = e  # the others hear it at the next unit (or at the end)
            return
        bar.update(len(new), trial_steps)
