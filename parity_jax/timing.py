"""Timing on a shared machine: medians over repeats, timers interleaved so a slow spell hits
every column alike, marginal rates (the step alone: two step counts, the difference), a failing
timer reported in its column instead of stopping the rest, and the machine's float32 GEMM peak
and memory bandwidth. Used by ``bench`` and ``doctor``.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from parity_jax import errors


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls."""
    return interleaved({None: fn}, repeats)[None]


def guarded(failed: dict, name: str, fn: Callable[[], object]):
    """``fn()``, or None with ``failed[name]`` its error's first line: one failing column
    (a kernel that does not compile, say) leaves the rest of its row to be timed."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 -- any failure is the column's, reported in it
        failed[name] = errors.error_line(e)
        return None


def interleaved(timers: dict, repeats: int, failed: dict | None = None) -> dict:
    """Median seconds of each timer, timed in turn within every repeat (A B C A B C ...): a
    slow spell of a shared machine then hits every column of a row alike, so their ratios
    are measured side by side. With ``failed``, a timer that raises is left out of the result
    (and of later rounds) and its error's first line is ``failed[key]``."""
    times: dict = {k: [] for k in timers}
    for _ in range(repeats):
        for k, fn in timers.items():
            if failed is not None and k in failed:
                continue
            start = time.perf_counter()
            if failed is None:
                fn()
            else:
                guarded(failed, k, fn)
                if k in failed:
                    continue
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()
            if v and (failed is None or k not in failed)}


def gemm_peak(size: int = 2048, repeats: int = 5) -> float:
    """float32 GFLOP/s of a size^3 ``jnp.matmul`` at ``Precision.HIGHEST`` (median of
    repeats, after compilation): the precision the engine computes in. JAX's default float32
    matmul on an NVIDIA GPU is TF32, several times faster than what a float32 study can use."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    mm = jax.jit(functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST))
    mm(a, b).block_until_ready()
    t = median_time(lambda: mm(a, b).block_until_ready(), repeats)
    return 2 * size**3 / t / 1e9


def peak_rss() -> int | None:
    """This process's peak resident memory in bytes (None where it cannot be read)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, OSError):
        return None


def memory_bandwidth(mib: int = 256, repeats: int = 5) -> float:
    """Bytes/s of a streaming ``x * a + b`` over float32 arrays (one read, one write)."""
    x = jnp.ones((mib << 18,), jnp.float32)
    f = jax.jit(lambda x: x * 1.0001 + 0.5)
    f(x).block_until_ready()
    t = median_time(lambda: f(x).block_until_ready(), repeats)
    return 2 * x.nbytes / t


def marginal(trials: float, steps: int, t: dict, failed: dict | None = None,
             column: str = "") -> float | None:
    """Trial-steps/s of the step alone, T*S / (t(2S) - t(S)) from ``t`` ({S: s, 2S: s}); None
    when a time is missing. With ``failed``, a t(2S) <= t(S) is timing noise, not a rate: None,
    said in ``failed[column]`` (doctor); without, the difference is floored at 1 ns (bench's
    tiny rows, whose S the caller chose)."""
    if steps not in t or 2 * steps not in t:
        return None
    if failed is not None and t[2 * steps] <= t[steps]:
        failed.setdefault(column, f"t(2S) = {t[2 * steps]:.4f} s <= t(S) = {t[steps]:.4f} s: "
                                  "no marginal time to measure (timing noise)")
        return None
    return trials * steps / max(t[2 * steps] - t[steps], 1e-9)
