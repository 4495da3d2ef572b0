"""Throughput benchmark: the engine against the machine's GEMM peak and the usual alternatives.

Workload (one per width r x trial count T x vary): (50, 3) parity, minibatch B = 32, m = 1000,
hinge loss, lr 0.1, wd 0.01, dense init, ``stop_on_success = false``, one evaluation at the end.

Rates are *trial-steps per second*: SGD steps summed over trials. For the engine two programs are
timed, S and 2S steps each with its one final evaluation; the **step rate** is the marginal
``T*S / (t(2S) - t(S))`` (the step alone, no start-up, data generation, init or evaluation), the
**end-to-end** rate ``T*2S / t(2S)`` keeps all of that in. Each time is a median over repeats,
after compilation; within a row the engine's two programs, its GEMM bound and the torch.func
ensemble are timed in turn in every repeat (``interleaved``), so a slow spell of a shared
machine hits them alike and their ratio is measured side by side.

Effective FLOP per trial-step (the work an ideal step cannot avoid)::

    4*B*n*r + 8*B*r = 4*B*r*(n + 2)

the first layer's forward GEMM (2*B*n*r) and weight-gradient GEMM (2*B*n*r), plus the output
layer's forward and gradient (4*B*r) and the ReLU/bias/scaling passes (4*B*r). Effective GFLOP/s
is that times the step rate; the peak it is compared with is a 2048^3 float32 ``jnp.matmul``
at ``Precision.HIGHEST`` (float32-exact, as the engine computes; not TF32 on a GPU) timed in
the same run. The **GEMM bound** is what the engine's own layout (its G groups of P
trials over the devices, a whole interval per group) reaches when a step is nothing but the two
first-layer GEMMs and the w1 update (``gemm_bound_timers``): the step's cost beyond its GEMMs is
the gap between the two.

The **HBM bound** is the rate if a step cost nothing but its unavoidable memory traffic: the
first-layer weights read and written once per trial-step, ``2 * 4 * r * n`` bytes, at the
memory bandwidth measured in the same run (a large ``x * a + b`` over float32 arrays).

Side by side, on the same workload: a per-seed PyTorch loop (``nn.Module`` + ``torch.optim.SGD``,
one seed after another), a ``torch.func`` ensemble (``stack_module_state`` + ``functional_call``
+ ``vmap(grad)``), a Python loop of per-trial ``jax.jit`` calls (the unpacked optax reference
path, one trial per call) and the **naive ``jit(vmap)``**: the program a JAX user writes first
(one trial's optax training loop, ``jax.jit(jax.vmap(train))`` over the trials' keys; its
marginal rate like the engine's). The PyTorch baselines live in the checkout's
``benchmarks/torch_baselines.py``, not in the runtime package (``torch_baselines`` loads them);
PyTorch runs on CUDA when it is available (the table says which device), else on the CPU; it is
optional (``pip install parity_jax[bench]``): without it, or without that file (an installed
wheel), those cells say so.

A column that fails -- a kernel that does not lower, no PyTorch -- holds ``error: <first line>``
in its cell (``row["errors"]`` in the JSON) and the rest of the row is still timed.

Step counts: S is sized per row from the float32 (HIGHEST) GEMM peak (``_steps_for``: about
1.5 s a call at half that peak). A peak at JAX's default precision (TF32 on a GPU) overstated
the rate, and S, several times over: a 1000 x 1000-trial row ran for minutes.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import jax

from parity_jax import alternatives, devices, files, flops, kernel, kinds, render, settings, timing
from parity_jax.alternatives import BATCH, LR, WD, K, M, N
from parity_jax.kinds.parity.config import Model, Study, Task, Train

WIDTHS = (10, 100, 1000, 10000)
TRIALS = (1, 100, 1000, 10000)
VARIES = ("init", "both")
# trials x width beyond this are skipped: the default grid (up to 10M-neuron rows) took 36 min
# on the 2-core CPU, peak RSS 11.6 GiB.
MAX_NEURONS = 10_000_000
TORCH_FUNC_MAX_NEURONS = 2_000_000


def flops_per_trial_step(width: int) -> int:
    """Effective FLOP of one SGD step of one trial of the workload: 4*B*r*(n + 2) (see the
    module docstring; the formula lives in ``flops``)."""
    return flops.flops_per_trial_step(width, N, BATCH)


def _steps_for(width: int, trials: int, peak_gflops: float = 200.0, target_s: float = 1.5,
               lo: int = 8, hi: int = 16384) -> int:
    """S (a power of two) so that S steps of the workload take about ``target_s`` here:
    a trial-step at half the measured GEMM peak plus about 5 us of per-step overhead."""
    rate = 0.5 * peak_gflops * 1e9 / flops_per_trial_step(width)  # trial-steps/s, rough
    steps_per_s = 1.0 / (5e-6 + trials / rate)
    s = 2 ** round(math.log2(max(1.0, target_s * steps_per_s)))
    return int(min(hi, max(lo, s)))


def study_for(width: int, trials: int, vary: str, steps: int) -> Study:
    """The benchmark workload as a study (so the engine runs exactly as a study runs it)."""
    return Study(
        name=f"bench-r{width}-T{trials}-{vary}", seeds=trials,
        task=Task(n=N, k=K, m=M, n_test=M),
        model=Model(width=width, init="dense"),
        train=Train(lr=LR, wd=WD, batch=BATCH, loss="hinge", steps=steps, eval_every=steps,
                    stop_on_success=False, vary=vary),
    )


def engine_timers(width: int, trials: int, vary: str, steps: int,
                  kernel_mode: str = "off") -> tuple[dict, dict]:
    """Compiles and warms the engine's programs for S = ``steps`` and 2S steps of the workload,
    with the XLA step (``kernel_mode="off"``) or the fused kernel ("pallas"; "interpret" on a
    CPU);
    returns what they are (layout, compile seconds, XLA memory) and a timer per step count
    (each runs every batch of the study once)."""
    info: dict = {"steps": steps}
    timers = {}
    compile_s: list[float] = []
    memory = 0
    for s in (steps, 2 * steps):
        study = study_for(width, trials, vary, s)
        p = kinds.parity.make_plan(study, n_devices=jax.device_count(), kernel=kernel_mode)
        calls, programs = [], {}
        for pb in p.batches:
            inputs = kinds.parity.batch_inputs(study, p.cells, pb)
            shape = pb.shape
            if shape not in programs:
                start = time.perf_counter()
                programs[shape] = devices.program(shape).lower(inputs).compile()
                compile_s.append(time.perf_counter() - start)
                mem = programs[shape].memory_analysis()
                if mem is not None:
                    memory = max(memory, mem.argument_size_in_bytes + mem.output_size_in_bytes
                                 + mem.temp_size_in_bytes)
            calls.append((programs[shape], inputs))

        def run_all(calls=calls):
            for c, b in calls:  # one batch's outputs alive at a time
                jax.block_until_ready(c(b))

        run_all()  # warm
        timers[s] = run_all
        info.update(G=p.batches[0].shape.G, P=p.batches[0].shape.P, batches=len(p.batches))
    info.update(compile_s=max(compile_s),
                programs=len(compile_s) // 2,  # per program length (S and 2S each compile)
                memory_bytes=memory)
    return info, timers


def bytes_per_trial_step(width: int) -> int:
    """The memory traffic a step cannot avoid: w1 read and written once (float32)."""
    return 2 * 4 * width * N


# a row's timers (engine_timers, ...) -> the row's column (and its errors' key)
_COLUMNS = {"engine": "engine", "kernel": "kernel", "bound": "gemm_bound",
            "naive": "naive_jit_vmap"}


# ---- PyTorch baselines (optional; benchmarks/torch_baselines.py of a checkout) --------------

BASELINES = Path(__file__).resolve().parent.parent / "benchmarks" / "torch_baselines.py"


def torch_baselines():
    """The PyTorch baselines' module, loaded from the checkout's ``benchmarks/`` folder (they
    are no part of the runtime package); an ImportError where it is absent (an installed
    wheel)."""
    if not BASELINES.is_file():
        raise ImportError(f"the PyTorch baselines need a checkout ({BASELINES} not found)")
    spec = importlib.util.spec_from_file_location("torch_baselines", BASELINES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the whole table ----------------------------------------------------------------------------

def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    try:
        baselines = torch_baselines()
        torch, torch_device = baselines.torch_or_none(), baselines.torch_device()
    except ImportError:
        torch = torch_device = None
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "jax": jax.__version__, "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "torch": torch.__version__ if torch else None, "torch_device": torch_device,
        "date": time.strftime("%Y-%m-%d"),
    }


def _measure_row(width: int, T: int, vary: str, repeats: int, baselines: bool, peak: float,
                 steps: int, torch_loop_cache: dict, jax_loop_cache: dict,
                 bandwidth: float) -> dict:
    """One row: the engine (S and 2S steps), its GEMM bound and the torch.func ensemble timed
    in interleaved repeats; the per-seed loops (time-budgeted, one per width) before them.
    A column that fails (a kernel that does not compile, no PyTorch) is left out with its
    error's first line in ``row["errors"]``; the rest of the row is still timed."""
    column_errors: dict[str, str] = {}
    timers: dict = {}

    def add(name: str, built: dict | None):
        if built is not None:
            timers.update({(name, s): fn for s, fn in built.items()})

    eng = timing.guarded(column_errors, "engine", lambda: engine_timers(width, T, vary, steps))
    info = eng[0] if eng else {"steps": steps}
    add("engine", eng and eng[1])
    # the kernel on GPUs (whatever its width and trials), or its interpret mode if asked
    mode = kernel.select(jax.default_backend(), 1, "fused", W=0, trials=kernel.MIN_TRIALS)
    kinfo = None
    if mode != "off":
        k = timing.guarded(column_errors, "kernel",
                           lambda: engine_timers(width, T, vary, steps, kernel_mode=mode))
        kinfo = k and k[0]
        add("kernel", k and k[1])
    # The bound runs one batch's layout: as many steps as the engine's batches run together,
    # so its two calls take about as long as the engine's (short calls make a noisy marginal).
    if eng:
        bound_steps = steps * info["batches"]
        add("bound", timing.guarded(column_errors, "gemm_bound",
                                    lambda: alternatives.gemm_bound_timers(
                                        width, info["G"], info["P"], bound_steps)))
    row = dict(info)
    func = None
    if baselines:
        add("naive", timing.guarded(column_errors, "naive_jit_vmap",
                                    lambda: alternatives.naive_timers(width, T, vary, steps)))
        loop_steps = min(steps, 512)
        loops = (("torch_loop", torch_loop_cache,
                  lambda: _needs_torch(torch_baselines().torch_loop_rate(width, T,
                                                                         loop_steps))),
                 ("jax_loop", jax_loop_cache,
                  lambda: alternatives.jax_loop_rate(width, T, loop_steps)))
        for name, cache, measure in loops:  # once per width (a time-budgeted loop)
            if width not in cache:
                failed: dict[str, str] = {}
                cache[width] = timing.guarded(failed, name, measure) or {"error": failed[name]}
            row[name] = cache[width].get("rate")
            if "error" in cache[width]:
                column_errors[name] = cache[width]["error"]
        if T * width <= TORCH_FUNC_MAX_NEURONS:
            func = timing.guarded(column_errors, "torch_func", lambda: _needs_torch(
                torch_baselines().torch_func_timer(width, T, vary, min(steps, 64))))
            if func is not None:
                timers["torch_func"] = func[1]
    timing_errors: dict = {}
    t = timing.interleaved(timers, repeats, timing_errors)
    for k, message in timing_errors.items():
        name = _COLUMNS[k[0]] if isinstance(k, tuple) else k
        column_errors.setdefault(name, message)

    def rate(name: str, trials: float = T, s: int = steps) -> float | None:
        have = {x: t[(name, x)] for x in (s, 2 * s) if (name, x) in t}
        return timing.marginal(trials, s, have)

    row["rate"] = rate("engine")
    if row["rate"]:
        row["rate_end_to_end"] = T * 2 * steps / t[("engine", 2 * steps)]
        row["neuron_rate"] = row["rate"] * width
        row["gflops"] = row["rate"] * flops_per_trial_step(width) / 1e9
        row["peak_fraction"] = row["gflops"] / peak
        row["hbm_bound"] = bandwidth / bytes_per_trial_step(width)
        row["hbm_fraction"] = row["rate"] / row["hbm_bound"]
        row["gemm_bound"] = rate("bound", T / info["batches"], bound_steps)
        if row["gemm_bound"]:
            row["x_gemm_bound"] = row["rate"] / row["gemm_bound"]
    if mode != "off":
        row["kernel"], row["kernel_mode"] = rate("kernel"), mode
        if kinfo:
            row["kernel_compile_s"] = kinfo["compile_s"]
        if row["kernel"] and row["rate"]:
            row["x_kernel_engine"] = row["kernel"] / row["rate"]
    if baselines:
        row["naive_jit_vmap"] = rate("naive")
        if row.get("kernel") and row["naive_jit_vmap"]:
            row["x_kernel_naive"] = row["kernel"] / row["naive_jit_vmap"]
    if func is not None and "torch_func" in t:
        row["torch_func"] = T * func[0] / t["torch_func"]
        row["torch_func_steps"] = func[0]
    for b in ("torch_loop", "torch_func", "jax_loop", "naive_jit_vmap"):
        if row.get(b) and row["rate"]:
            row[f"x_{b}"] = row["rate"] / row[b]
    row["errors"] = column_errors
    return row


def _needs_torch(result):
    """A PyTorch baseline's result; its absence an error (reported in the column's cell)."""
    if not result:
        raise ImportError("PyTorch is not installed (pip install parity_jax[bench])")
    return result


def main(widths, trials, varies, repeats: int = 3, baselines: bool = True,
         max_neurons: int = MAX_NEURONS, json_path: str | Path | None = None,
         markdown_path: str | Path | None = None) -> int:
    """``parity-jax bench`` once its arguments are checked: refuses a bad
    ``PARITY_JAX_KERNEL`` (a ConfigError) before any timing, runs the benchmark, prints the
    table and writes ``json_path`` and ``markdown_path``. Returns 0; on Ctrl-C, which may cut
    XLA work short in another thread, says so and ends the process with 130
    (``devices.leave``)."""
    settings.kernel()
    try:
        devices.split_cpu()
        devices.start()  # a JAX_PLATFORMS that cannot start: one error line, before any work
        result = run_bench(widths, trials, varies, repeats, baselines=baselines,
                           max_neurons=max_neurons)
    except KeyboardInterrupt:
        print("\ninterrupted; the bench wrote nothing (its table and files are written at the "
              "end)", file=sys.stderr, flush=True)
        return devices.leave(130)
    text = markdown(result)
    print(text)
    for flag, path, content in (("--json", json_path, json.dumps(result, indent=1)),
                                ("--markdown", markdown_path, text)):
        if path:  # checked before benchmarking; replaced whole, never through a link
            files.write_text(path, content + "\n", what=flag)
    return 0


def run_bench(widths=WIDTHS, trials=TRIALS, varies=VARIES, repeats: int = 3,
              baselines: bool = True, progress=sys.stderr, steps: int | None = None,
              max_neurons: int = MAX_NEURONS) -> dict:
    """Runs every (width, trials, vary) workload that fits; returns the JSON-able result.

    ``steps``: S for every workload (default: sized per workload to about 1.5 s from the
    float32 (HIGHEST) GEMM peak measured first). Within a row the engine's S and 2S programs,
    its GEMM bound and the torch.func ensemble are timed in turn in each of ``repeats`` rounds
    (``interleaved``).
    """
    devices.split_cpu()  # an entry point; no compile cache: compile seconds are measured
    peak = timing.gemm_peak()
    bandwidth = timing.memory_bandwidth()
    rows = []
    torch_loop_cache: dict[int, dict] = {}
    jax_loop_cache: dict[int, dict] = {}
    for vary in varies:
        for width in widths:
            for T in trials:
                row = {"vary": vary, "width": width, "trials": T}
                if T * width > max_neurons:
                    rows.append({**row, "skipped": f"trials x width > {max_neurons:,}"})
                    continue
                if progress:
                    print(f"bench: vary={vary} width={width} trials={T} ...", file=progress,
                          flush=True)
                started = time.perf_counter()
                row.update(_measure_row(width, T, vary, repeats, baselines, peak,
                                        steps or _steps_for(width, T, peak),
                                        torch_loop_cache, jax_loop_cache, bandwidth))
                row["seconds"] = time.perf_counter() - started
                rows.append(row)
                if progress:
                    print("  " + _short(row, peak), file=progress, flush=True)
    return {"machine": machine(), "gemm_peak_gflops": peak, "memory_bandwidth": bandwidth,
            "bytes_per_trial_step": "2*4*r*n (w1 read and written once)",
            "flops_per_trial_step":
            "4*B*r*(n+2), B=32, n=50", "workload": {"n": N, "k": K, "batch": BATCH, "m": M,
                                                     "lr": LR, "wd": WD, "loss": "hinge"},
            "peak_rss_bytes": timing.peak_rss(), "rows": rows}


def _short(row: dict, peak: float) -> str:
    si = render.format_si
    parts = []
    if row.get("rate"):
        parts.append(f"{si(row['rate'])} trial-steps/s ({si(row['rate_end_to_end'])} end to "
                     f"end), {row['gflops']:.1f} GFLOP/s = {100 * row['peak_fraction']:.0f}% "
                     "of peak")
    if row.get("x_gemm_bound"):
        parts.append(f"{100 * row['x_gemm_bound']:.0f}% of the GEMM bound "
                     f"{si(row['gemm_bound'])}")
    parts.append(f"torch loop {si(row.get('torch_loop'))}, torch.func "
                 f"{si(row.get('torch_func'))}, jax loop {si(row.get('jax_loop'))}"
                 + (f"; {row['x_torch_func']:.1f}x torch.func" if row.get("x_torch_func")
                    else ""))
    if row.get("kernel"):
        parts.append(f"kernel {si(row['kernel'])}"
                     + (f" ({row['x_kernel_engine']:.1f}x the XLA step" if row.get(
                         "x_kernel_engine") else " (")
                     + (f", {row['x_kernel_naive']:.1f}x naive jit(vmap))" if row.get(
                         "x_kernel_naive") else ")"))
    parts += [f"{name}: error: {e}" for name, e in row.get("errors", {}).items()]
    return "; ".join(parts) + f" [{row['seconds']:.0f} s]"


MARKDOWN_COLUMNS = [
    "vary", "width", "trials", "G x P", "S", "engine trial-steps/s", "end to end",
    "neuron-steps/s", "GFLOP/s", "% peak", "GEMM bound", "% bound", "% HBM bound", "compile s",
    "programs", "memory", "kernel trial-steps/s", "naive jit(vmap)", "torch loop", "torch.func",
    "jax per-trial jit", "x naive", "kernel x naive", "x torch loop", "x torch.func"]


def _markdown_row(r: dict) -> list:
    """One row of ``markdown``; a skipped workload's row ends after its reason, a failed
    column's cell holds its error."""
    if "skipped" in r:
        return [r["vary"], r["width"], r["trials"], f"skipped: {r['skipped']}"]
    failed = r.get("errors", {})

    def si(name: str, key: str | None = None) -> str:
        if (key or name) in failed:
            return f"error: {failed[key or name]}"
        return render.format_si(r.get(name))

    def ratio(name: str) -> str:
        return f"{r[f'x_{name}']:.1f}x" if r.get(f"x_{name}") else "-"

    def pct(name: str, digits: int = 1) -> str:
        return f"{100 * r[name]:.{digits}f}%" if r.get(name) else "-"

    gp = f"{r['G']} x {r['P']}" if "G" in r else "-"
    return [
        r["vary"], r["width"], r["trials"], gp, r["steps"], si("rate", "engine"),
        si("rate_end_to_end", "engine"), si("neuron_rate", "engine"),
        f"{r['gflops']:.1f}" if r.get("gflops") else "-", pct("peak_fraction"),
        si("gemm_bound"), pct("x_gemm_bound", 0), pct("hbm_fraction"),
        f"{r['compile_s']:.2f}" if "compile_s" in r else "-", r.get("programs", "-"),
        f"{r['memory_bytes'] / 2**20:.0f} MiB" if "memory_bytes" in r else "-",
        si("kernel"), si("naive_jit_vmap"), si("torch_loop"), si("torch_func"), si("jax_loop"),
        ratio("naive_jit_vmap"), ratio("kernel_naive"), ratio("torch_loop"),
        ratio("torch_func")]


def markdown(result: dict) -> str:
    """The result as a markdown table (plus the machine line)."""
    m = result["machine"]
    torch_on = f" on {m['torch_device']}" if m.get("torch_device") else ""
    bandwidth = (f", memory bandwidth ({result['memory_bandwidth'] / 1e9:.0f} GB/s, "
                 "x*a+b)" if result.get("memory_bandwidth") else "")
    return "\n".join([
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['backend']} ({m['device']}); "
        f"Python {m['python']}, jax {m['jax']}, torch {m['torch']}{torch_on}; {m['date']}. "
        f"float32 GEMM peak (2048^3 jnp.matmul): **{result['gemm_peak_gflops']:.0f} GFLOP/s**"
        f"{bandwidth}.",
        "",
        *render.markdown_table([_markdown_row(r) for r in result["rows"]], MARKDOWN_COLUMNS,
                               fmt=str, align="lrrl" + "r" * (len(MARKDOWN_COLUMNS) - 4))])
