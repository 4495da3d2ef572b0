"""What ``parity-jax doctor`` times: the throughput of the XLA step and the naive
``jit(vmap)`` optax program, and the engine race at the default study's geometries (every
candidate: the XLA step and the kernel's variants). Each is a marginal rate, timed interleaved
(``timing``, ``race.measure``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import jax

from parity_jax import alternatives, bench, kernel, kinds, race, render, timing
from parity_jax.errors import OutOfBudget

# the naive jit(vmap) program's rate by (width, trials), as the throughput check measured it in
# this process: the race check's ratios (it runs after, at the same sizes on an accelerator)
_naive: dict[tuple[int, int], float] = {}


def kernel_mode() -> tuple[str | None, str]:
    """The kernel this platform runs (None: none) and why."""
    want = kernel.requested()
    if want == "off":
        return None, f"{kernel.ENV}=off"
    if jax.default_backend() == "cpu" or want == "interpret":
        return "interpret", "Pallas interpret mode"
    mode = kernel.select(jax.default_backend(), 1, "fused", W=0, trials=kernel.MIN_TRIALS)
    if mode == "off":
        return None, f"no kernel on {jax.default_backend()}"
    return mode, "compiled"


def check_race(row: dict, sizes, deadline: float) -> None:
    """The engine race a study's first use of a program runs (``race.race``, measured now:
    the verdicts file is not read), at the default study's geometries (``sizes.kernel_widths``
    at n = 50, batch 32, ``sizes.kernel_trials`` trials): every candidate's marginal rate, the
    choice, the lines of candidates out, and the chosen engine's rate over the naive
    ``jit(vmap)`` program's where the throughput check timed that width and trials (the race
    times one chunk on one device, the throughput check a whole batch on every device: a
    ratio of what each gives). On a CPU the candidates are the XLA step and the kernel's
    variants in interpret mode."""
    mode, why = kernel_mode()
    if mode is None:
        row.update(status="skipped", summary=f"nothing to race: {why}")
        return
    row["rows"] = []
    warnings: list[str] = []
    for width in sizes.kernel_widths:
        if time.monotonic() > deadline:
            raise OutOfBudget("ran past the time budget")
        study = bench.study_for(width, sizes.kernel_trials, "init", sizes.steps)
        shape = kinds.parity.make_plan(study, n_devices=1, kernel=mode).batches[0].shape
        v = race.race(shape, None, warnings.append, auto=True)
        r = {"width": width, "trials": sizes.kernel_trials, "program": race.program_text(shape),
             "timed_trials": race.timed_trials(shape), "rates": v.rates, "out": v.out,
             "engine": v.engine, "warnings": warnings[:]}
        warnings.clear()
        naive = _naive.get((width, sizes.kernel_trials))
        if naive:
            r["naive"], r["engine_x_naive"] = naive, v.rates[v.engine] / naive
        row["rows"].append(r)
    row["status"] = "ok"
    row["summary"] = "; ".join(
        f"width {r['width']}: " + ", ".join(
            f"{n} " + ("out" if rate is None else f"{render.format_si(rate)}/s")
            for n, rate in r["rates"].items())
        + f" -> {r['engine']}" + (f" ({r['engine_x_naive']:.1f}x the naive program's rate)"
                                  if "naive" in r else "") for r in row["rows"])


def check_throughput(row: dict, sizes, deadline: float) -> None:
    """Trial-steps/s of the XLA step and the naive jit(vmap) optax program (vary = init), each
    a marginal rate T*S / (t(2S) - t(S)) of a whole study's batches, timed interleaved (the
    kernel's variants are timed by the race, ``check_race``, at the same sizes)."""
    row.update(steps=sizes.steps, repeats=sizes.repeats, rows=[])
    S = sizes.steps
    for width, trials in sizes.throughput:
        if time.monotonic() > deadline:
            raise OutOfBudget("ran past the time budget")
        r: dict = {"width": width, "trials": trials, "errors": {}}
        row["rows"].append(r)
        builders: dict[str, Callable[[], dict]] = {
            "xla": lambda w=width, T=trials: bench.engine_timers(w, T, "init", S,
                                                                 kernel_mode="off")[1],
            "naive": lambda w=width, T=trials: alternatives.naive_timers(w, T, "init", S)}
        timers: dict = {}
        for name, build in builders.items():
            built = timing.guarded(r["errors"], name, build)
            if built is not None:
                timers.update({(name, s): fn for s, fn in built.items()})
        timing_errors: dict = {}
        t = timing.interleaved(timers, sizes.repeats, timing_errors)
        for (name, _), message in timing_errors.items():
            r["errors"].setdefault(name, message)
        for name in builders:
            have = {s: t[(name, s)] for s in (S, 2 * S) if (name, s) in t}
            r[name] = timing.marginal(trials, S, have, r["errors"], name)
        if r["naive"]:
            _naive[(width, trials)] = r["naive"]
        if r["xla"] and r["naive"]:
            r["xla_x_naive"] = r["xla"] / r["naive"]
    failed = any(r["errors"] for r in row["rows"])
    row["status"] = "fail" if failed else "ok"
    row["summary"] = "; ".join(_throughput_summary(r) for r in row["rows"])


def _throughput_summary(r: dict) -> str:
    """One throughput row in a line: each column's rate (or error), then the ratios."""
    cells = [f"{name} error: {r['errors'][name]}" if name in r["errors"]
             else f"{name} {render.format_si(r[name])}/s"
             for name in ("xla", "naive") if name in r or name in r["errors"]]
    ratios = [f"xla/naive {r['xla_x_naive']:.1f}x"] if "xla_x_naive" in r else []
    return f"{r['width']} x {r['trials']}: " + ", ".join(cells + ratios)
