"""The engine race: on first contact with a device, which engine runs a program, measured.

A program's candidates (``candidates``) are the XLA step ("xla") and, in "auto" mode, each
variant of the fused kernel this device can run for it (``kernel.variants``: the float32 FMA
kernel and the 3xTF32 tensor-core kernel, or on exact ±1 inputs the 2xTF32 one instead; only
where ``kernel.select`` made the program eligible). ``race`` first checks each kernel for
correctness (``kernel_check.verdict``: the numeric self-check against the XLA step, cached);
one that fails to compile, run or agree is out, with one warning line. Then it times every
correct candidate on the program's geometry, interleaved (``Timed``, ``measure``: marginal
rates) and picks the fastest -- the XLA step unless a kernel beats it by ``MARGIN``, so a
choice made on timing noise favours the reference. This is what cuDNN's and Triton's
autotuners and XLA's GEMM autotuner do: measure on the device, keep the choice.

The verdict -- the choice and every candidate's rate (trial-steps per second) -- is cached per
(device kind, jax and jaxlib versions, geometry, candidates) beside the correctness verdicts
(``kernel_check.VERDICTS_FILE``), so a second study on the device races nothing. A study's
store records the engine each program ran with (``program_key``), and a resumed study reuses it
whatever a new race would say: engines agree only within float32 rounding.

``ENGINES`` is the test hook: engines added to every race (a fake that is faster, slower,
wrong or crashing), each running one of the real kernels underneath.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import time
from collections.abc import Callable

import jax
import numpy as np

from parity_jax import core, errors, kernel, kernel_check, timing

MARGIN = 0.10  # a kernel must beat the XLA step's rate by this fraction to be chosen
RACE_SECONDS = 3.0  # the timing budget of one geometry's race (all candidates; compiles apart)
REPEATS = 3  # interleaved (short, long) pairs per candidate; medians of each
MIN_SPAN = 0.02  # seconds: the long runs' extra calls are at least this long (timer noise)
FAILED_TIMED = "the kernel failed while timed"
XLA = "xla"  # the XLA step's name among the engines (its programs' ``Shape.kernel`` is "off")


@dataclasses.dataclass(frozen=True)
class Engine:
    """An engine a program may run on, by ``name``.

    ``runs``: the ``Shape.kernel`` its programs run. ``check(shape) -> (ok, max_rel_err,
    detail)``: its correctness on a program (None: the kernel self-check,
    ``kernel_check.verdict``; the XLA step is the reference and is not checked). ``speed``: a
    factor on its measured rate (1 for real engines; the tests' fakes are faster or slower)."""

    name: str
    runs: str
    check: Callable | None = None
    speed: float = 1.0


ENGINES: dict[str, Engine] = {}  # the test hook: engines added to every race


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A race's outcome: the chosen engine, each candidate's marginal rate (trial-steps per
    second; None: out of the race) and why each one out is out."""

    engine: str
    rates: dict[str, float | None]
    out: dict[str, str]
    cached: bool = dataclasses.field(default=False, compare=False)  # read, not raced now

    def table(self) -> str:
        """The rates in one line: ``xla 1.2M, pallas 0.9M (chosen), pallas-3xtf32 out``."""
        return ", ".join(
            f"{n} " + ("out" if r is None else f"{r / 1e6:.3g}M")
            + (" (chosen)" if n == self.engine else "") for n, r in self.rates.items())


def name(kernel: str) -> str:
    """The engine that runs a ``Shape.kernel``: the XLA step for "off", else the kernel."""
    return XLA if kernel == "off" else kernel


def program_key(shape) -> str:
    """What identifies a program across runs of a study, whatever its batch size, platform or
    engine: a digest of its shape with G (a resume's batches may differ in it), the kernel,
    the layout and the chunk (which the platform picks) left out."""
    text = repr(dataclasses.replace(shape, G=0, kernel="off", layout="", chunk=0))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def program_text(shape) -> str:
    """A program in a few words (reports): its task, sizes, step and precision."""
    task = shape.task
    batch = getattr(task, "batch", None)
    return (f"{task.label}: n={task.features}, M={task.train_rows}, depth {shape.depth}, "
            f"W={shape.W}, P={shape.P}" + (f", batch {batch}" if batch else "")
            + f", {shape.step}, {shape.loss}, {shape.precision}")


def candidates(shape, auto: bool | None = None) -> list[Engine]:
    """The engines a program of ``shape`` races among here: the XLA step first, then in "auto"
    mode the kernel variants ``kernel.select`` made it eligible for, then ``ENGINES``. A
    forced ``PARITY_JAX_KERNEL`` (or an ineligible program) leaves its own engine alone.
    ``auto``: race as in "auto" mode whatever ``PARITY_JAX_KERNEL`` says (the doctor)."""
    own = [Engine(name(shape.kernel), shape.kernel)]
    if auto is None:
        auto = kernel.requested() == "auto"
    if not auto or shape.depth != 1 or shape.step != "fused":
        return own
    out = [Engine(XLA, "off")]
    if shape.kernel != "off":
        prefix = shape.kernel.split("-")[0]  # "pallas" ("interpret" on a CPU: the doctor)
        variants = kernel.variants(shape)
        if "2xtf32" in variants:  # exact inputs: 3xtf32's third pass multiplies x's low part,
            variants = tuple(v for v in variants if v != "3xtf32")  # 0 (the same bits, slower)
        out += [Engine(k, k) for k in (prefix + ("-" + v if v else "") for v in variants)]
    out += ENGINES.values()
    return out if len(out) > 1 else own


def verdict_key(shape, names: list[str]) -> str:
    """What a race's verdict holds for: the device, versions, geometry (and what else moves
    the timing: the steps of an interval, the trials timed as groups x trials, the task's
    rows, inputs and target, as a digest of the task) and the candidates."""
    S = min(shape.eval_every, kernel.CALL_STEPS)
    return (kernel_check.verdict_key(dataclasses.replace(shape, kernel="race"))
            + f", {S} steps an interval, {shape.chunk} x {shape.P} trials, task "
            + f"{hashlib.sha256(repr(shape.task).encode()).hexdigest()[:12]}: "
            + ", ".join(names))


def timed_trials(shape) -> int:
    """Trials a race times: one chunk of the program's groups (what it computes at once)."""
    return shape.chunk * shape.P


def cached(shape, path: str | None) -> Verdict | None:
    """The race's verdict on ``shape``'s geometry from this process or ``path``, if any."""
    names = [e.name for e in candidates(shape)]
    return _cached(verdict_key(shape, names), names, path)


def _cached(key: str, names: list[str], path: str | None) -> Verdict | None:
    entry = kernel_check.cached_entry(key, path)
    if not isinstance(entry, dict) or entry.get("engine") not in names:
        return None
    rates = entry.get("rates")
    if not isinstance(rates, dict) or set(rates) != set(names):
        return None
    out = entry.get("out") if isinstance(entry.get("out"), dict) else {}
    return Verdict(entry["engine"], {n: _rate(rates[n]) for n in names},
                   {n: kernel_check.short(v) for n, v in out.items() if n in names}, cached=True)


def _rate(v) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) and v > 0 else None


def race(shape, path: str | None, warn: Callable[[str], None], auto: bool | None = None
         ) -> Verdict:
    """The engine a program of ``shape`` runs on this device: the cached verdict, or a race
    now (recorded in this process and in ``path``). Each kernel that fails its check, or
    fails to compile or run while timed, is out with one line to ``warn``; one whose rate is
    lost in timing noise is out without one. ``auto``: as ``candidates``'s. The doctor's
    alarm (``errors.OutOfBudget``) is no candidate's failure: it ends the race."""
    engines = candidates(shape, auto)
    names = [e.name for e in engines]
    key = verdict_key(shape, names)
    found = _cached(key, names, path)
    if found is not None:
        return found
    out: dict[str, str] = {}
    timed: dict[str, Timed] = {}
    share = RACE_SECONDS / len(engines)
    for e in engines:
        run = dataclasses.replace(shape, kernel=e.runs)
        try:
            ok, detail = _correct(e, run, path)
            if ok:
                timed[e.name] = Timed.prepare(run, share, e.speed)
        except Exception as err:  # noqa: BLE001 -- any error of a candidate is its verdict
            if e.name == XLA or errors.out_of_memory(err):
                raise
            ok, detail = False, kernel_check.failure(err)
        if not ok:
            out[e.name] = detail
            warn(warning(shape, e.name, detail))
    rates = measure(timed, out)
    for name in timed:  # failed while timed (timing noise is no failure: no warning)
        if out.get(name, "").startswith(FAILED_TIMED):
            warn(warning(shape, name, out[name]))
    rates = {n: rates.get(n) for n in names}
    v = Verdict(choose(rates), rates, out)
    kernel_check.keep(key, {"engine": v.engine, "rates": v.rates, "out": v.out}, path)
    return v


def _correct(e: Engine, shape, path: str | None) -> tuple[bool, str]:
    """(ok, detail) of an engine on a program: the XLA step is the reference."""
    if e.runs == "off" and e.check is None:
        return True, "the reference"
    if e.check is not None:
        ok, _, detail = e.check(shape)
        return ok, detail
    return kernel_check.verdict(shape, path)


def choose(rates: dict[str, float | None]) -> str:
    """The fastest candidate with a rate; the XLA step unless a kernel beats its rate by more
    than ``MARGIN``, or when the XLA step has no rate (lost in noise: nothing to compare)."""
    timed = {n: r for n, r in rates.items() if r is not None}
    if XLA in rates and XLA not in timed:
        return XLA
    best = max(timed, key=timed.get)
    if XLA in timed and timed[best] <= (1 + MARGIN) * timed[XLA]:
        return XLA
    return best


def warning(shape, name: str, detail: str) -> str:
    """The one line of a kernel out of a program's race."""
    return (f"warning: the fused kernel {name} is out of the race for the program "
            f"({kernel_check.describe(shape)}): {kernel_check.short(detail)}; the other "
            "engines race on (PARITY_JAX_KERNEL=off skips the kernel)")


# -- timing ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Timed:
    """A candidate ready to be timed: ``timers`` {1: c intervals, 2: 2c intervals} of S steps
    of one chunk of its program (``timed_trials``), or, for one whose single interval took
    half its share of the budget, ``rate`` already (its average rate, set-up included: it has
    lost anyway)."""

    trials: int
    steps: int  # c S: the steps of the short run
    speed: float
    timers: dict[int, Callable] = dataclasses.field(default_factory=dict)
    rate: float | None = None

    @classmethod
    def prepare(cls, shape, share: float, speed: float = 1.0) -> Timed:
        """Compiles and warms the candidate's timing program and sizes c: the extra c
        intervals of the long run take at least ``MIN_SPAN``, and its ``REPEATS`` pairs about
        ``share`` seconds (3 c t(1) each; at least c = 1). S is the program's own evaluation
        interval, at most one kernel call's ``kernel.CALL_STEPS`` (each call reloads the
        trials' weights)."""
        S = min(shape.eval_every, kernel.CALL_STEPS)
        run = functools.partial(kernel_check.intervals,
                                dataclasses.replace(shape, G=shape.chunk), S, _batch(shape))
        jax.block_until_ready(run(1))  # compile and warm
        start = time.perf_counter()
        jax.block_until_ready(run(1))
        one = time.perf_counter() - start
        trials = timed_trials(shape)
        if one >= share / 2:
            return cls(trials, S, speed, rate=trials * S / one)
        c = max(1, min(math.ceil(MIN_SPAN / one), int(share / (3 * REPEATS * one))))
        return cls(trials, c * S, speed, {k: functools.partial(
            lambda k: jax.block_until_ready(run(k * c)), k) for k in (1, 2)})


def measure(timed: dict[str, Timed], out: dict[str, str], tries: int = 2
            ) -> dict[str, float | None]:
    """Every candidate's marginal rate, trials x c S / (median t(2c) - median t(c)): their
    runs interleaved over ``REPEATS`` rounds (``timing.interleaved``: a slow spell or a clock
    ramp hits every candidate alike), the set-up (data, init, transfers, dispatch) cancelled,
    times ``speed``. A candidate that fails while timed has none and its reason in ``out``
    (the XLA step's failure is raised); one whose rate is lost in noise (t(2c) <= t(c)) is
    timed again, up to ``tries`` rounds in all, then has none either."""
    rates, noisy = _measured(timed, out)
    if noisy and tries > 1:
        for name in noisy:
            out.pop(name)
        rates.update(measure({n: timed[n] for n in noisy}, out, tries - 1))
    return rates


def _measured(timed: dict[str, Timed], out: dict[str, str]
              ) -> tuple[dict[str, float | None], set[str]]:
    """One round of ``measure``: (the rates, the names whose rate was lost in noise)."""
    timers = {(name, k): fn for name, t in timed.items() for k, fn in t.timers.items()}
    failed: dict = {}
    seconds = timing.interleaved(timers, REPEATS, failed)
    rates: dict[str, float | None] = {}
    noisy = set()
    for name, t in timed.items():
        lost = {k: v for (n, k), v in failed.items() if n == name}
        if lost and name == XLA:
            raise RuntimeError(f"the XLA step failed while timed: {next(iter(lost.values()))}")
        if lost:
            out[name] = f"{FAILED_TIMED}: {next(iter(lost.values()))}"
            rates[name] = None
            continue
        noise: dict = {}
        rate = t.rate if not t.timers else timing.marginal(
            t.trials, t.steps, {t.steps: seconds[(name, 1)], 2 * t.steps: seconds[(name, 2)]},
            noise, name)
        if noise:
            out[name] = noise[name]
            noisy.add(name)
        rates[name] = None if rate is None else rate * t.speed
    return rates, noisy


def _batch(shape) -> core.Batch:
    """The timed batch: one chunk of the self-check's mix of trials (widths, dense and sparse
    inits), with steps enough that none stops."""
    one = dataclasses.replace(shape, G=shape.chunk)
    return kernel_check.check_batch(one, draw=0, steps=np.iinfo(np.int32).max)


def planned(shape, path: str | None) -> str:
    """A program's engine as ``plan`` knows it before running: its only candidate, the cached
    race's choice, or "measured on first use"."""
    engines = candidates(shape)
    if len(engines) == 1:
        return engines[0].name
    found = cached(shape, path)
    return "measured on first use" if found is None else f"{found.engine} (measured)"
