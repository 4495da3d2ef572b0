"""Device plumbing: the CPU split into one device per core, the mesh over a batch's groups,
the compiled (and sharded) program of a shape, global arrays and gathering across processes.

Nothing here runs at import: the entry points (CLI, ``parity_jax.run``, the bench) call
``split_cpu`` before JAX's backends start, and a multi-host job starts JAX's distributed
runtime before any backend is touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from parity_jax import core, errors, kernel_check, multihost, race, settings
from parity_jax.errors import ConfigError


def split_cpu() -> None:
    """One JAX CPU device per available core, so a batch's groups train on every core.

    Left alone when the user chose a count already (``jax_num_cpu_devices``,
    ``XLA_FLAGS=--xla_force_host_platform_device_count``), or when JAX's backends have already
    started; ``PARITY_JAX_CPU_DEVICES`` gives the count instead (an integer >= 1, checked).
    """
    count = settings.cpu_devices()  # checked even where it is not used
    if jax.config.jax_num_cpu_devices != -1 or settings.cpu_devices_forced():
        return
    if count is None:
        try:
            count = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            count = os.cpu_count() or 1
    try:
        jax.config.update("jax_num_cpu_devices", max(1, count))
    except RuntimeError:
        pass  # backends already initialised by the caller: keep their devices


def leave(code: int) -> int:
    """Ends the process with exit status ``code`` at once, its output flushed. For a command
    whose XLA work was cut short (a time budget, Ctrl-C): that work may still compile or run
    in another thread, and the interpreter's exit would free what the thread uses under it (a
    segmentation fault). Returns ``code`` only where ``_exit`` does not end the process
    (tests)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _exit(code)
    return code


_exit = os._exit  # what ``leave`` ends the process with (a test replaces it)


def start() -> str:
    """Starts JAX's backends (after ``setup``, and after a multi-host job's runtime): the
    default platform. A ``JAX_PLATFORMS`` naming a platform that cannot start here (unknown,
    or absent from this machine) is a ConfigError naming it, not a traceback."""
    try:
        return jax.default_backend()
    except (RuntimeError, AssertionError) as e:  # jax asserts when no platform was started
        platforms = jax.config.jax_platforms
        if not platforms:
            raise
        reason = str(e).split(" (set JAX_PLATFORMS")[0].strip().splitlines()
        raise ConfigError(
            f"JAX_PLATFORMS = {platforms!r}: JAX cannot start it here"
            f"{f' ({reason[0]})' if reason else ''}; allowed: platforms this machine has "
            "(cpu, or cuda/tpu with their jax plugins installed), or unset") from None


def setup() -> None:
    """What every entry point (CLI, ``run``, the bench) does before JAX's backends start: the
    CPU split and the persistent compilation cache (its directory made when JAX first
    compiles, so setting up creates nothing on disk)."""
    split_cpu()
    compile_cache()


def compile_cache() -> str | None:
    """Turns on JAX's persistent compilation cache, so a warm start compiles nothing; returns
    its directory (None: off).

    ``PARITY_JAX_CACHE``: a directory to use, or ``off``; default
    ``$XDG_CACHE_HOME/parity_jax/jax`` (``~/.cache/parity_jax/jax``). A directory the user set
    through JAX (``jax_compilation_cache_dir``) is kept. A local directory is not made here:
    JAX makes it when it first compiles (after a run has checked its ``--out``, which may hold
    it); one that could not be made turns the cache off. A URL (``gs://bucket/x``) goes to
    JAX as it is; one whose file system this Python cannot reach (``gcsfs`` missing, say)
    turns the cache off with one warning line.
    """
    where = settings.cache()
    if where is None:
        return None
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    if settings.is_url(where):
        why = _unreachable(where)
        if why:
            print(f"warning: {settings.CACHE} = {where!r}: {why}; the compile cache is off",
                  file=sys.stderr, flush=True)
            return None
    elif not _can_make(where):
        return None
    jax.config.update("jax_compilation_cache_dir", where)
    # every program of a study is worth keeping (a small one compiles in a fraction of a second
    # on a CPU, a large one in 6-8 s on a GPU); tiny eager ops are not
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    return where


def _can_make(path: str) -> bool:
    """Whether ``path`` is a directory that can be written, or one that can be made: its
    nearest existing ancestor is a directory this process may write in."""
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def _unreachable(url: str) -> str | None:
    """Why JAX could not reach the file system of ``url`` here (None: it can, as far as
    importing its implementation tells)."""
    try:
        import fsspec  # JAX's remote caches go through etils.epath, which uses fsspec
        fsspec.get_filesystem_class(url.split("://", 1)[0])
    except Exception as e:  # noqa: BLE001 -- ImportError, ValueError of an unknown protocol
        return errors.error_line(e)
    return None


class CompileStats:
    """Counts what JAX compiles while it is open (``with CompileStats() as c``): ``programs``
    (compiled training programs), ``seconds`` (their tracing, lowering and compiling, or
    loading from the persistent cache) and ``cache_hits`` (those of them loaded from the
    persistent cache)."""

    _open: list[CompileStats] = []
    _listening = False

    def __init__(self):
        self.programs, self.seconds, self.cache_hits = 0, 0.0, 0

    def __enter__(self) -> CompileStats:
        if not CompileStats._listening:
            jax.monitoring.register_event_duration_secs_listener(CompileStats._duration)
            jax.monitoring.register_event_listener(CompileStats._event)
            CompileStats._listening = True
        CompileStats._open.append(self)
        return self

    def __exit__(self, *exc) -> None:
        CompileStats._open.remove(self)

    # persistent-cache hits seen since the last compile ended: a compile's hit is recorded
    # inside its backend_compile_duration, which then says whether it was a training program
    _pending_hits = 0

    @staticmethod
    def _duration(event: str, seconds: float, **kw) -> None:
        if not event.startswith("/jax/core/compile/"):
            return
        compiled = event.endswith("backend_compile_duration")
        hits = CompileStats._pending_hits if compiled else 0
        if compiled:
            CompileStats._pending_hits = 0
        if kw.get("fun_name", "").removeprefix("jit(").rstrip(")") not in _PROGRAMS:
            return  # small helper computations (key derivation, ...) are not counted
        for stats in CompileStats._open:
            stats.seconds += seconds
            stats.programs += compiled
            stats.cache_hits += hits

    @staticmethod
    def _event(event: str, **kw) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            CompileStats._pending_hits += 1


_PROGRAMS = ("train", "sharded")  # the names of the jitted training programs (``_program``)


def mesh(n_devices: int) -> jax.sharding.Mesh:
    """The first ``n_devices`` devices (of all processes) on one axis, "g": a batch's groups."""
    return jax.sharding.Mesh(np.array(jax.devices()[:n_devices]), ("g",))


def used(shape: core.Shape, n_devices: int | None = None) -> int:
    """How many devices a batch of ``shape`` runs on: ``gcd(G / chunk, n_devices)`` (default:
    all), so each device holds whole chunks."""
    return math.gcd(shape.G // shape.chunk, n_devices or jax.device_count())


def program(shape: core.Shape, n_devices: int | None = None):
    """The jitted function that trains a batch of ``shape`` on the first ``n_devices`` devices
    (of all processes, in a multi-host job): ``program(shape)(batch) -> (outcome, params)``.

    The G groups are split over ``used(shape, n_devices)`` devices; each runs the same program
    on its share, with its own early exit. A group computes the same numbers on any of them.
    """
    return _program(shape, used(shape, n_devices))


def train_on_devices(shape: core.Shape, b: core.Batch, n_devices: int | None = None):
    """Trains a batch to completion on the first ``n_devices`` devices (``core.train`` sharded
    over its groups, ``program``): (outcome, final parameters)."""
    return program(shape, n_devices)(b)


class FailSafe:
    """``train_on_devices`` on each program's engine, decided at the program's first use in a
    run, with the fused kernel's fail-safe.

    The engine: the one the study's store recorded for the program (``recorded``, by
    ``race.program_key``: a resumed study keeps it, whatever a new race would say); else,
    where the program has a choice ("auto" mode: ``race.candidates``), the engine race's
    verdict (cached, or measured now: ``race.race``; process 0 decides for a multi-host job);
    else its own (a forced ``PARITY_JAX_KERNEL``, or nothing to choose). A recorded engine
    that cannot run here (another platform, a forced ``PARITY_JAX_KERNEL``) gives way with one
    warning line.

    In ``kernel_check.failsafe()`` modes a kernel engine is then checked: its geometry's
    verdict (``kernel_check.verdict``) and its own lowering and compiling decide whether it
    may run; a program whose kernel disagrees with the XLA step, or fails to lower, compile or
    run, trains on the XLA step instead (the same shape with ``kernel="off"``) after one line
    to ``warn`` naming it, the error and ``PARITY_JAX_KERNEL=off``. A failed lowering or
    compile is recorded as its geometry's verdict; an error while running holds for this run
    only. ``engines``: the engine each program's first batch ran with in this run, by program
    key ({"engine", "program"}: what the runner stores).
    """

    def __init__(self, warn: Callable[[str], None] | None = None,
                 recorded: dict[str, dict] | None = None):
        self.warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
        self.recorded = {k: v["engine"] for k, v in (recorded or {}).items()}
        self.engines: dict[str, dict] = {}
        # (shape, devices) -> the shape it runs and its engine's name
        self._runs: dict[tuple[core.Shape, int], tuple[core.Shape, str]] = {}

    def train(self, shape: core.Shape, b: core.Batch, n_devices: int | None = None):
        """``train_on_devices``, on the program's engine (the XLA step where a kernel is not
        safe)."""
        key = (shape, used(shape, n_devices))
        if key not in self._runs:
            self._runs[key] = self._first_use(shape, b, n_devices)
        runs, name = self._runs[key]
        if runs.kernel == "off" or not kernel_check.failsafe():
            self._note(shape, name)
            return train_on_devices(runs, b, n_devices)
        try:  # errors while running surface here, not at the fetch
            outcome = jax.block_until_ready(train_on_devices(runs, b, n_devices))
            self._note(shape, name)
            return outcome
        except Exception as e:
            # out of memory is the budget's (the runner's memory error); in a multi-host job
            # one process alone cannot change its program
            if errors.out_of_memory(e) or jax.process_count() > 1:
                raise
            self.warn(kernel_check.warning(shape, kernel_check.failure(e)))
            self._runs[key] = dataclasses.replace(shape, kernel="off"), race.XLA
            self._note(shape, race.XLA)
            return train_on_devices(self._runs[key][0], b, n_devices)

    def _note(self, shape: core.Shape, name: str) -> None:
        """Notes that a batch of the program ran on engine ``name``: its record is every engine
        its trials ran on, the store's and this run's, joined by "+" ("pallas+xla")."""
        key = race.program_key(shape)
        before = self.engines.get(key, {}).get("engine") or self.recorded.get(key)
        ran = set(before.split("+")) if before else set()
        self.engines[key] = {"engine": "+".join(sorted(ran | {name})),
                             "program": race.program_text(shape)}

    def _first_use(self, shape: core.Shape, b: core.Batch, n_devices: int | None
                   ) -> tuple[core.Shape, str]:
        """(the shape a program's batches run, its engine's name): its engine's, or the XLA
        step's (warned)."""
        engines = {e.name: e for e in race.candidates(shape)}
        names = list(engines)
        want = self.recorded.get(race.program_key(shape))
        if want is not None and want not in engines:
            ran = f"ran on {want.replace('+', ' and ')}"
            now = ("its engines race again" if len(names) > 1 else
                   f"it runs on {names[0]} here (another device or PARITY_JAX_KERNEL)")
            self.warn(f"warning: the study's program ({kernel_check.describe(shape)}) {ran}; "
                      f"{now}: its new trials agree with the stored ones only within float32 "
                      "rounding")
            want = None
        if len(names) > 1:  # process 0 decides: its store's record, or the race
            want = names[self._decided(shape, names, want)]
        engine = engines[want or names[0]]
        runs = dataclasses.replace(shape, kernel=engine.runs)
        if runs.kernel == "off" or not kernel_check.failsafe() or engine.check is not None:
            return runs, engine.name
        runs = self._checked(runs, b, n_devices)
        return runs, engine.name if runs.kernel != "off" else race.XLA

    def _decided(self, shape: core.Shape, names: list[str], want: str | None) -> int:
        """The index of process 0's engine in ``names`` on every process: ``want`` (the
        store's record), or the race's choice (one line to ``warn``). A race that fails on
        process 0 fails on every process (they would wait for it forever)."""
        code = 0
        if jax.process_index() == 0:
            try:
                if want is None:
                    verdict = race.race(shape, verdicts_file(), self.warn)
                    want = verdict.engine
                    self.warn(f"engine race for the program ({kernel_check.describe(shape)})"
                              + (" (cached)" if verdict.cached else "")
                              + f", trial-steps/s: {verdict.table()}")
                code = names.index(want)
            except BaseException:
                multihost.lead_says(-1)
                raise
        code = multihost.lead_says(code)
        if code < 0:
            raise RuntimeError("the engine race failed on process 0 of this job (see its error)")
        return code

    def _checked(self, shape: core.Shape, b: core.Batch, n_devices: int | None
                 ) -> core.Shape:
        """``shape`` where its kernel passes its check and compiles, else the XLA step's."""
        where = verdicts_file()
        ok, detail = kernel_check.verdict(shape, where)
        if ok:
            try:  # the first call reuses this executable
                program(shape, n_devices).lower(b).compile()
            except Exception as e:  # noqa: BLE001 -- any error of the kernel is its verdict
                if errors.out_of_memory(e):  # the batch's size, not the kernel's geometry
                    raise
                ok, detail = False, kernel_check.failure(e)
                kernel_check.record(shape, False, math.nan, detail, where)
        if _on_every_process(ok):
            return shape
        self.warn(kernel_check.warning(shape, detail if not ok else
                                       "its check failed on another process of this job"))
        return dataclasses.replace(shape, kernel="off")


def _on_every_process(ok: bool) -> bool:
    """``ok`` on every process of a multi-host job (they must run the same program)."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))


def verdicts_file() -> str | None:
    """Where the kernel's verdicts are kept: ``kernel_check.VERDICTS_FILE`` beside the compile cache
    (``~/.cache/parity_jax/kernel_checks.json`` by default); None -- this process only -- with
    ``PARITY_JAX_CACHE=off`` or no compile cache."""
    where = jax.config.jax_compilation_cache_dir
    if (settings.cache() is None or not where
            or settings.is_url(where)):  # a remote cache (gs://...): this process only
        return None
    return os.path.join(os.path.dirname(os.path.abspath(where)), kernel_check.VERDICTS_FILE)


def _specs(b: core.Batch):
    """Partition specs of a batch: every leaf split over groups, the shared arrays copied."""
    split, copy = jax.sharding.PartitionSpec("g"), jax.sharding.PartitionSpec()
    return jax.tree.map(lambda _: split, b).replace(shared=jax.tree.map(lambda _: copy, b.shared))


@functools.cache
def _program(shape: core.Shape, n_devices: int):
    if n_devices == 1:
        return jax.jit(functools.partial(core.train, shape))
    local = core.Shape(**{**shape.__dict__, "G": shape.G // n_devices})

    def sharded(b):
        # check_vma=False: the body is per-shard code (its loops' carries are device-local).
        return jax.shard_map(functools.partial(core.train, local), mesh=mesh(n_devices),
                             in_specs=(_specs(b),), out_specs=jax.sharding.PartitionSpec("g"),
                             check_vma=False)(b)

    return jax.jit(sharded)


def global_batch(shape: core.Shape, b: core.Batch, n_devices: int | None = None
                 ) -> core.Batch:
    """``b`` as arrays spread over the devices of all processes (multi-host: each process
    passes the same host values, the call reads its own devices' share). Keys travel as raw
    key data (``core.typed`` wraps them again)."""
    m = mesh(used(shape, n_devices))

    def put(x, spec):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        x = np.asarray(x)
        sharding = jax.sharding.NamedSharding(m, spec)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, b, _specs(b))


def fetch(tree):
    """Outcomes as host numpy arrays (gathered from every process in a multi-host job)."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)
