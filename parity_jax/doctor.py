"""``parity-jax doctor``: what this machine gives the engine, checked in one command within a
time budget.

Checks, in order (cheapest and most important first): the device and versions; float32
exactness of a matmul at the engine's precision; batch invariance (a group alone vs in a batch
of several, bit for bit, through the engine's own programs); the fused kernel against the XLA
step at the default study's geometries; compile time of one program, cold and from the
persistent cache; throughput of the XLA step and the naive ``jit(vmap)`` optax program; the
engine race at the default study's geometries: every candidate's rate (the XLA step, the
kernel's variants), the choice, its ratio to the naive program (the last two in ``speed``).

Every check reports a status: ``ok``, ``fail`` (it ran and the property does not hold, or it
raised: the first line of the error, never a traceback), ``timeout`` (the budget ran out before
or while it ran) or ``skipped`` (nothing to check here, e.g. ``PARITY_JAX_KERNEL=off``). The
sizes scale with the platform: a CPU runs every check small (the kernel in interpret mode).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from parity_jax import (
    bench,
    core,
    devices,
    errors,
    files,
    kernel,
    kernel_check,
    kinds,
    plan,
    settings,
    speed,
)
from parity_jax.errors import OutOfBudget
from parity_jax.kinds.parity.config import Model, Study, Task, Train

STATUSES = ("ok", "fail", "timeout", "skipped")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What the checks run at on a platform (a CPU gets small ones: CI runs the doctor)."""

    matmul: int  # side of the float32 exactness matmul (TF32 shows at any size >= a few)
    invariance_width: int  # the batch-invariance study's width (its trials are its groups)
    invariance_seeds: int  # seeds per cell (x 2 inits): the groups of the batch
    kernel_widths: tuple[int, ...]  # registers, tiles (at n = 50, batch 32)
    kernel_trials: int  # the study whose programs are checked (self_check runs a few of them)
    throughput: tuple[tuple[int, int], ...]  # (width, trials), vary = init
    steps: int  # S of the marginal rate (S and 2S steps timed): t(2S) - t(S) well above noise
    repeats: int


SIZES = {
    # n = 50 pads to 64: width 100 (128 x 64 = 8192 floats) is the register geometry, 1000 the
    # tiles; the default study's widths at 1000 trials, as the throughput rows.
    "accelerator": Sizes(matmul=2048, invariance_width=100, invariance_seeds=8,
                         kernel_widths=(100, 1000), kernel_trials=1000,
                         throughput=((100, 1000), (1000, 1000)), steps=512, repeats=3),
    # width 256 is already the tile geometry at n = 50 (256 x 64 > 8192 floats); one
    # throughput row: on a CPU every row is four compiles (S and 2S, XLA step and naive) of
    # several seconds each, and the doctor should take about a minute (CI runs it)
    "cpu": Sizes(matmul=512, invariance_width=32, invariance_seeds=4, kernel_widths=(100, 256),
                 kernel_trials=64, throughput=((100, 64),), steps=256,
                 repeats=2),
}

# float32 matmul error, relative to sum_k |a_ik| |b_kj|: exact float32 accumulation stays
# near 1e-7 at these sizes; TF32's rounding of the inputs (10-bit mantissas) gives ~1e-4.
FLOAT32_TOL = 1e-5


@contextlib.contextmanager
def _alarm(seconds: float):
    """Raises ``OutOfBudget`` in the main thread after ``seconds`` (SIGALRM; a compile in
    progress is interrupted when it returns to Python). Elsewhere, no limit."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "setitimer"):
        yield
        return

    def handler(signum, frame):
        raise OutOfBudget("ran past the time budget")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _platform() -> str:
    return "cpu" if jax.default_backend() == "cpu" else "accelerator"


# ---- the checks: each fills its row (so a check cut short keeps what it measured) ---------

def check_device(row: dict, sizes: Sizes) -> None:
    """Device, versions and the default matmul precision."""
    d = jax.devices()[0]
    backend = jax.default_backend()
    row.update(platform=backend, device_kind=d.device_kind, device_count=jax.device_count(),
               python=sys.version.split()[0], jax=jax.__version__, jaxlib=_version("jaxlib"))
    try:
        row["platform_version"] = d.client.platform_version
    except Exception:  # noqa: BLE001 -- informational only
        pass
    row["cuda"] = _cuda_versions()
    stats = d.memory_stats() if backend != "cpu" else None
    if stats and stats.get("bytes_limit"):
        row["memory_bytes"] = int(stats["bytes_limit"])
    default = jax.config.jax_default_matmul_precision or "DEFAULT"
    row["default_matmul_precision"] = default
    means = {"gpu": "TF32 for float32 on NVIDIA tensor cores", "cuda": "TF32 for float32 on "
             "NVIDIA tensor cores", "tpu": "one bfloat16 pass", "cpu": "float32"}
    row["default_matmul_means"] = means.get(backend, "platform-dependent")
    row["engine_precision"] = "float32 (HIGHEST) unless a study sets train.precision"
    cuda = row["cuda"].get("runtime")
    row["summary"] = (f"{backend} {d.device_kind} x{jax.device_count()}; jax {jax.__version__}"
                      f", jaxlib {row['jaxlib']}" + (f", CUDA {cuda}" if cuda else "")
                      + f"; default matmul precision {default} ({row['default_matmul_means']})")
    row["status"] = "ok"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cuda_versions() -> dict:
    """CUDA runtime, driver and cuDNN versions from JAX's CUDA plugin (empty elsewhere)."""
    try:
        from jax._src.lib import cuda_versions
    except ImportError:
        return {}
    out: dict = {}
    if cuda_versions is None:
        return out
    for key, fn in (("runtime", "cuda_runtime_get_version"),
                    ("driver", "cuda_driver_get_version"), ("cudnn", "cudnn_get_version")):
        try:
            v = int(getattr(cuda_versions, fn)())
        except Exception:  # noqa: BLE001 -- a plugin without this getter
            continue
        out[key] = f"{v // 1000}.{v % 1000 // 10}" if key != "cudnn" else str(v)
    for plugin in ("jax-cuda13-plugin", "jax-cuda12-plugin"):
        if _version(plugin):
            out["plugin"] = f"{plugin} {_version(plugin)}"
            break
    return out


def check_float32(row: dict, sizes: Sizes) -> None:
    """A float32 matmul at the engine's precision against a float64 reference: float32-exact
    (TF32 would be off by ~1e-4); the same matmul at JAX's default precision for comparison."""
    rng = np.random.default_rng(0)
    n = sizes.matmul
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    ref = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)

    def err(c) -> float:
        return float(np.max(np.abs(np.asarray(c, np.float64) - ref) / scale))

    with jax.default_matmul_precision(core.MATMUL_PRECISION["float32"]):
        engine = jax.jit(jnp.matmul)(a, b)
    row.update(size=n, tolerance=FLOAT32_TOL, max_rel_err=err(engine),
               default_precision_max_rel_err=err(jax.jit(jnp.matmul)(a, b)))
    row["status"] = "ok" if row["max_rel_err"] <= FLOAT32_TOL else "fail"
    row["summary"] = (f"{n}^3 matmul vs float64: engine precision {row['max_rel_err']:.1e} "
                      f"(tolerance {FLOAT32_TOL:.0e}), JAX default "
                      f"{row['default_precision_max_rel_err']:.1e}")


def invariance_study(sizes: Sizes) -> Study:
    """A tiny study shaped like the default one (n = 50, batch 32, every seed its own data
    and init, so every trial is a group of its own)."""
    return Study(name="doctor-invariance", seeds=sizes.invariance_seeds,
                 task=Task(n=50, k=3, m=200, n_test=200),
                 model=Model(width=sizes.invariance_width, init=["dense", "sparse"], s=2),
                 train=Train(batch=32, steps=200, eval_every=100, stop_on_success=False,
                             vary="both"))


def check_batch_invariance(row: dict, sizes: Sizes) -> None:
    """A group in a batch of several chunks (the plan's first chunk, repeated, the last time
    reversed: the group at another place, in another chunk) and alone (a batch of one chunk,
    the rest of it padding, the group first), outcome and parameters bit for bit, through the
    engine's programs (XLA step, this platform's layout and chunk)."""
    study = invariance_study(sizes)
    p = kinds.parity.make_plan(study, n_devices=1, kernel="off")
    pb = p.batches[0]
    c = pb.shape.chunk
    first = pb.slots[:c] + ((None,) * pb.shape.P,) * (c - len(pb.slots[:c]))
    g = next(i for i, slots in enumerate(first) if any(slots))
    chunks = max(2, -(-4 // c))  # at least 2 chunks and 4 groups
    target = (chunks - 1) * c + (c - 1 - g)  # where group g sits in the reversed last chunk
    shape = dataclasses.replace(pb.shape, G=chunks * c)
    pb = plan.PlannedBatch(shape=shape,
                           slots=first * (chunks - 1) + tuple(reversed(first)))
    alone = plan.PlannedBatch(shape=dataclasses.replace(shape, G=c),
                              slots=(first[g],) + ((None,) * shape.P,) * (c - 1))
    row.update(groups=shape.G, chunk=shape.chunk, trials_per_group=shape.P,
               layout=shape.layout, width=sizes.invariance_width)
    inputs = kinds.parity.batch_inputs
    many = devices.fetch(devices.train_on_devices(shape, inputs(study, p.cells, pb), 1))
    single = devices.fetch(devices.train_on_devices(alone.shape, inputs(study, p.cells, alone), 1))
    leaves = [(np.asarray(a)[target], np.asarray(b)[0]) for a, b in
              zip(jax.tree.leaves(many), jax.tree.leaves(single), strict=True)]
    same = all(a.tobytes() == b.tobytes() for a, b in leaves)
    row["identical"] = same
    row["max_abs_diff"] = max(
        float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))
        for a, b in leaves if np.issubdtype(a.dtype, np.number))
    row["status"] = "ok" if same else "fail"
    row["summary"] = (f"group {target} of a batch of {shape.G} (chunks of {shape.chunk}, "
                      f"{shape.layout} layout) vs alone: "
                      + ("identical bits" if same else
                         f"differ (max |diff| {row['max_abs_diff']:.1e})"))


def check_kernel(row: dict, sizes: Sizes) -> None:
    """The fused kernel against the XLA step at the default study's geometries (n = 50, batch
    32; registers and tiles): ``kernel_check.self_check`` of each program, the very check a run
    makes before a program's first use of the kernel (a short interval from the same
    parameters, within a tolerance derived from float32 rounding), never its cached verdict."""
    mode, why = speed.kernel_mode()
    row["mode"] = mode
    if mode is None:
        row.update(status="skipped", summary=why)
        return
    ok, reason = kernel.available(interpret=mode == "interpret")
    if not ok:  # runs take the XLA step: correct, not fast
        row.update(status="skipped", summary=f"no kernel: {reason}")
        return
    row["geometries"] = []
    for width in sizes.kernel_widths:
        study = bench.study_for(width, sizes.kernel_trials, "init", kernel_check.CHECK_STEPS)
        shape = kinds.parity.make_plan(study, n_devices=1, kernel=mode).batches[0].shape
        wp, _, _, tw = kernel.geometry(shape.W, shape.task.n, shape.task.batch)
        g = {"width": width, "W": shape.W, "geometry": "registers" if tw == wp else "tiles",
             "program": kernel_check.describe(shape)}
        row["geometries"].append(g)
        g["ok"], g["max_rel_err"], g["detail"] = kernel_check.self_check(shape)
    ok = all(g["ok"] for g in row["geometries"])
    row["status"] = "ok" if ok else "fail"
    row["summary"] = f"{mode}: " + "; ".join(
        f"width {g['width']} ({g['geometry']}) " + (
            f"agrees, largest difference {g['max_rel_err']:.1e} of the update" if g["ok"]
            else g["detail"]) for g in row["geometries"])
    if not ok:
        row["error"] = next(g["detail"] for g in row["geometries"] if not g["ok"])


def _compile_child() -> None:
    """``check_compile``'s child process (arguments: width, trials, steps), whose persistent
    cache is an empty directory: the program compiled cold, then -- every in-memory cache
    cleared -- again, loaded from the persistent cache; prints one JSON line."""
    devices.setup()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    width, trials, steps = (int(v) for v in sys.argv[1:4])
    study = bench.study_for(width, trials, "init", steps)
    p = kinds.parity.make_plan(study, n_devices=1)
    pb = p.batches[0]
    inputs = kinds.parity.batch_inputs(study, p.cells, pb)
    out: dict = {}
    for run in ("cold", "warm"):
        jax.clear_caches()
        devices._program.cache_clear()
        with devices.CompileStats() as c:
            start = time.perf_counter()
            devices.program(pb.shape, 1).lower(inputs).compile()
            out[run + "_s"] = time.perf_counter() - start
        out[run + "_cache_hits"] = c.cache_hits
    s = pb.shape
    out["program"] = f"W={s.W} G={s.G} P={s.P} {s.layout} kernel={s.kernel}"
    print(json.dumps(out))


_COMPILE_CHILD = "from parity_jax.doctor import _compile_child; _compile_child()"  # python -c


def check_compile(row: dict, sizes: Sizes, deadline: float) -> None:
    """One program (the first throughput row's, at S steps) compiled in a fresh process with
    an empty persistent cache, then again with every in-memory cache cleared: from the
    persistent cache."""
    width, trials = sizes.throughput[0]
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    row.update(width=width, trials=trials, steps=sizes.steps)
    # this process holds its share of an accelerator's memory: the child takes what it needs
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    with tempfile.TemporaryDirectory(prefix="parity_jax_doctor_cache_") as cache:
        env["PARITY_JAX_CACHE"] = cache
        done = subprocess.run(
            [sys.executable, "-c", _COMPILE_CHILD, str(width), str(trials), str(sizes.steps)],
            env=env, capture_output=True, text=True,
            timeout=max(1.0, deadline - time.monotonic()))
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit status {done.returncode}")
    row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    ok = row["warm_cache_hits"] > 0
    row["status"] = "ok" if ok else "fail"
    row["summary"] = (f"{row['program']}: cold {row['cold_s']:.2f} s, from the persistent "
                      f"cache {row['warm_s']:.2f} s"
                      + ("" if ok else " (no cache hit: the persistent cache did not work)"))


CHECKS: list[tuple[str, Callable]] = [
    ("device", check_device), ("float32", check_float32),
    ("batch_invariance", check_batch_invariance), ("kernel", check_kernel),
    ("compile", check_compile), ("throughput", speed.check_throughput),
    ("race", speed.check_race)]


def main(budget: float = 300.0, json_path: str | Path | None = None) -> int:
    """``parity-jax doctor``: checks ``budget`` and ``PARITY_JAX_KERNEL`` (a ConfigError before
    any check), runs every check, prints the table. Returns the exit status -- 0: every check
    passed or was skipped; 1: a check failed or ran out of the budget; 130: Ctrl-C -- or, when
    a check was cut short, ends the process with it (``devices.leave``: XLA may still work in
    another thread, which the interpreter's exit would tear down: a segmentation fault)."""
    settings.budget(budget)
    settings.kernel()
    try:
        devices.split_cpu()
        devices.start()  # a JAX_PLATFORMS that cannot start: one error line, before any check
        # the JSON is rewritten after every check: replaced whole, never through a link
        result = run_doctor(budget, json_path=json_path)
    except KeyboardInterrupt:
        kept = (f"the checks finished before it are in {errors.one_line(str(json_path))}"
                if json_path else "the doctor stores nothing")
        print(f"\ninterrupted; {kept} (run the doctor again to check again)",
              file=sys.stderr, flush=True)
        return devices.leave(130)
    print(table(result), flush=True)
    code = 0 if result["ok"] else 1
    cut = any(c.get("cut") for c in result["checks"].values())
    return devices.leave(code) if cut else code


def run_doctor(budget: float = 300.0, sizes: Sizes | None = None, progress=sys.stderr,
               json_path: str | Path | None = None) -> dict:
    """Runs every check within ``budget`` seconds; returns the JSON-able result (``ok``: every
    check passed or was skipped). With ``json_path``, the result so far is written there after
    every check (a doctor killed from outside leaves what it had found). A ``budget`` out of
    ``settings.BOUNDS`` is a ConfigError."""
    settings.budget(budget)
    start = time.monotonic()
    deadline = start + budget
    devices.split_cpu()  # an entry point; no compile cache: compile seconds are measured
    sizes = sizes or SIZES[_platform()]
    checks: dict[str, dict] = {}

    def result() -> dict:
        return {"ok": all(c["status"] in ("ok", "skipped") for c in checks.values()),
                "budget_s": budget, "seconds": round(time.monotonic() - start, 3),
                "sizes": dataclasses.asdict(sizes),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "checks": checks}

    for name, fn in CHECKS:
        row: dict = {"status": "timeout"}
        checks[name] = row
        began = time.monotonic()
        if began >= deadline:
            row.update(error=f"not started: the budget of {budget:g} s was spent",
                       summary="not started (budget spent)")
        else:
            _run_check(name, fn, row, sizes, deadline, budget, progress)
        row["seconds"] = round(time.monotonic() - began, 3)
        if progress:
            print(f"doctor: {name} {row['status']} ({row['seconds']:.1f} s): "
                  f"{row.get('summary', '')}", file=progress, flush=True)
        if json_path:
            write_json(json_path, result())
    return result()


def _run_check(name: str, fn: Callable, row: dict, sizes: Sizes, deadline: float,
               budget: float, progress) -> None:
    """One check until it returns or the budget runs out; its failure goes into its row."""
    if progress:
        print(f"doctor: {name} ...", file=progress, flush=True)
    args = (row, sizes, deadline) if name in ("compile", "throughput", "race") \
        else (row, sizes)
    try:
        with _alarm(deadline - time.monotonic()):
            fn(*args)
    except (OutOfBudget, subprocess.TimeoutExpired) as e:
        row.update(status="timeout", error=f"ran past the budget of {budget:g} s")
        if isinstance(e, OutOfBudget):  # cut in this process: XLA may still be at work
            row["cut"] = True
        row["summary"] = row.get("summary") or "ran past the budget"
    except Exception as e:  # noqa: BLE001 -- a check's failure is its row's, not a crash
        row.update(status="fail", error=errors.error_line(e))
        row["summary"] = row["error"]


def table(result: dict) -> str:
    """The result as a plain-text table: check, status, seconds, what it found."""
    rows = [(name, c["status"], f"{c.get('seconds', 0):.1f}", c.get("summary", ""))
            for name, c in result["checks"].items()]
    head = ("check", "status", "s", "result")
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    lines = [f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}  {r[3]}" for r in [head, *rows]]
    verdict = "all checks passed" if result["ok"] else "some checks did not pass"
    return "\n".join(lines + ["", f"{verdict} in {result['seconds']:.1f} s "
                              f"(budget {result['budget_s']:g} s)"])


def write_json(path: str | Path, result: dict) -> None:
    """Writes ``result`` to ``path`` whole, never through a link (``files.write_text``)."""
    files.write_text(path, json.dumps(result, indent=1) + "\n", what="--json")
