"""Throughput benchmark: the engine against the machine's GEMM peak and the usual alternatives.

Workload (one per width r x trial count T x vary): (50, 3) parity, minibatch B = 32, m = 1000,
hinge loss, lr 0.1, wd 0.01, dense init, ``stop_on_success = false``, one evaluation at the end.

Rates are *trial-steps per second*: SGD steps summed over trials. For the engine two programs are
timed, S and 2S steps each with its one final evaluation; the **step rate** is the marginal
``T*S / (t(2S) - t(S))`` (the step alone, no start-up, data generation, init or evaluation), the
**end-to-end** rate ``T*2S / t(2S)`` keeps all of that in. Each time is a median over repeats,
after compilation.

Effective FLOP per trial-step (the work an ideal step cannot avoid)::

    4*B*n*r + 8*B*r = 4*B*r*(n + 2)

the first layer's forward GEMM (2*B*n*r) and weight-gradient GEMM (2*B*n*r), plus the output
layer's forward and gradient (4*B*r) and the ReLU/bias/scaling passes (4*B*r). Effective GFLOP/s
is that times the step rate; the peak it is compared with is a 2048^3 float32 ``jnp.matmul``
timed in the same run. The **GEMM bound** is what the engine's own layout (its G groups of P
trials over the devices, a whole interval per group) reaches when a step is nothing but the two
first-layer GEMMs and the w1 update (``gemm_bound_rate``): the step's cost beyond its GEMMs is
the gap between the two.

Side by side, on the same workload: a per-seed PyTorch loop (``nn.Module`` + ``torch.optim.SGD``,
one seed after another), a ``torch.func`` ensemble (``stack_module_state`` + ``functional_call``
+ ``vmap(grad)``) and a Python loop of per-trial ``jax.jit`` calls (the unpacked optax reference
path, one trial per call). PyTorch is optional (``pip install parity_jax[bench]``); without it
those columns are empty.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from parity_jax import engine, plan
from parity_jax.config import Model, Study, Task, Train

N, K, BATCH, M, LR, WD = 50, 3, 32, 1000, 0.1, 0.01
WIDTHS = (10, 100, 1000, 10000)
TRIALS = (1, 100, 1000, 10000)
VARIES = ("init", "both")
MAX_NEURONS = 10_000_000  # trials x width beyond this are skipped (memory / time on 2 cores)


def default_max_neurons() -> int:
    """The CLI's default cap: 1M neurons on a CPU, 10M on an accelerator. On the 2-core machine
    the 10M-neuron row width 1000 x 10,000 trials spent over 15 minutes in ``engine_rate`` alone
    (sampled with py-spy; its S and 2S calls are each run 4 times, start-up included), so the
    CPU default grid stops at 1M (pass --max-neurons to go further)."""
    return 1_000_000 if jax.default_backend() == "cpu" else 10_000_000

TORCH_FUNC_MAX_NEURONS = 2_000_000


def flops_per_trial_step(width: int) -> int:
    """Effective FLOP of one SGD step of one trial of the workload: 4*B*r*(n + 2) (see the
    module docstring; the formula lives in ``plan``)."""
    return plan.flops_per_trial_step(width, N, BATCH)


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_peak(size: int = 2048, repeats: int = 5) -> float:
    """float32 GFLOP/s of a size^3 ``jnp.matmul`` (median of repeats, after compilation)."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    mm = jax.jit(jnp.matmul)
    mm(a, b).block_until_ready()
    t = _median_time(lambda: mm(a, b).block_until_ready(), repeats)
    return 2 * size**3 / t / 1e9


def _steps_for(width: int, trials: int, target_s: float = 0.6, lo: int = 8,
               hi: int = 4096) -> int:
    """S (a power of two) so that S steps of the workload take about ``target_s`` here."""
    est_rate = min(400_000.0, 30e9 / flops_per_trial_step(width))  # trial-steps/s, rough
    est_rate = max(est_rate / trials, 2_000.0 / max(1, trials) ** 0.5)  # steps/s of the batch
    s = 2 ** round(math.log2(max(1.0, target_s * est_rate)))
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


def _peak_rss() -> int | None:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, OSError):
        return None


def engine_rate(width: int, trials: int, vary: str, repeats: int = 3,
                steps: int | None = None) -> dict:
    """Times the engine on the workload; returns rates, compile seconds and XLA memory."""
    steps = steps or _steps_for(width, trials)
    timed = {}
    compile_s: list[float] = []
    memory = 0
    for s in (steps, 2 * steps):
        study = study_for(width, trials, vary, s)
        p = plan.make_plan(study, devices=jax.device_count())
        cells = p.cells
        calls, programs = [], {}
        for pb in p.batches:
            inputs = plan.batch_inputs(study, cells, pb)
            if pb.shape not in programs:
                start = time.perf_counter()
                programs[pb.shape] = engine.program(pb.shape).lower(inputs).compile()
                compile_s.append(time.perf_counter() - start)
                mem = programs[pb.shape].memory_analysis()
                if mem is not None:
                    memory = max(memory, mem.argument_size_in_bytes + mem.output_size_in_bytes
                                 + mem.temp_size_in_bytes)
            calls.append((programs[pb.shape], inputs))

        def run_all(calls=calls):
            jax.block_until_ready([c(b) for c, b in calls])

        run_all()  # warm
        timed[s] = _median_time(run_all, repeats)
        shape = p.batches[0].shape
    marginal = trials * steps / max(timed[2 * steps] - timed[steps], 1e-9)
    return {
        "steps": steps,
        "G": shape.G, "P": shape.P, "batches": len(p.batches),
        "rate": marginal,
        "rate_end_to_end": trials * 2 * steps / timed[2 * steps],
        "compile_s": max(compile_s),
        "programs": len(compile_s) // 2,  # per program length (S and 2S each compile)
        "memory_bytes": memory,
    }


def gemm_bound_rate(width: int, trials: float, G: int, P: int, steps: int,
                    repeats: int = 3) -> float:
    """What the engine's layout could reach if a step were only its two first-layer GEMMs and
    the w1 update: G groups of P*width neurons split over the devices as the engine splits
    them, each group running ``steps`` steps of ``zT = w1 x^T; w1 -= 1e-6 * zT x`` on a fixed
    (B, n) minibatch. Returns trial-steps/s (``trials`` real trials; marginal rate, S vs 2S)."""
    devices = math.gcd(G, jax.device_count())
    x = jax.random.normal(jax.random.key(3), (BATCH, N), jnp.float32)

    def group(w1, n_steps):
        def body(_, w):
            return w - 1e-6 * ((w @ x.T) @ x)
        return jax.lax.fori_loop(0, n_steps, body, w1)

    def make(n_steps):
        local = functools.partial(jax.lax.map, functools.partial(group, n_steps=n_steps))
        if devices == 1:
            return jax.jit(local)
        spec = jax.sharding.PartitionSpec("g")
        return jax.jit(jax.shard_map(local, mesh=engine.mesh(devices), in_specs=spec,
                                     out_specs=spec))

    w = jax.random.normal(jax.random.key(4), (G, P * width, N), jnp.float32) * 0.1
    times = {}
    for s in (steps, 2 * steps):
        fn = make(s)
        jax.block_until_ready(fn(w))
        times[s] = _median_time(lambda fn=fn: jax.block_until_ready(fn(w)), repeats)
    return trials * steps / max(times[2 * steps] - times[steps], 1e-9)


def jax_loop_rate(width: int, trials: int, steps: int, time_budget: float = 3.0) -> dict:
    """A Python loop of per-trial jit calls (the optax reference path, one trial per call)."""
    train_one = jax.jit(functools.partial(
        engine.reference_params, n=N, k=K, m=M, noise=0.0, width=width, depth=1, sparse=False,
        s=1, lr=LR, wd=WD, batch=BATCH, loss="hinge", steps=steps))
    root = jax.random.key(7)
    jax.block_until_ready(train_one(jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)))
    done, start = 0, time.perf_counter()
    while done < trials and (done < 2 or time.perf_counter() - start < time_budget):
        jax.block_until_ready(train_one(jax.random.fold_in(root, 2 * done),
                                        jax.random.fold_in(root, 2 * done + 1)))
        done += 1
    return {"rate": done * steps / (time.perf_counter() - start), "trials_timed": done}


# ---- PyTorch baselines (optional) ---------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _torch_data(torch, vary: str, trials: int, seed: int = 0):
    """Parity training sets: (1, M, N) shared or (T, M, N) independent, labels alike."""
    g = torch.Generator().manual_seed(seed)
    t = 1 if vary == "init" else trials
    x = torch.randint(0, 2, (t, M, N), generator=g).float() * 2 - 1
    y = x[:, :, :K].prod(dim=-1)
    return x, y


def _torch_model(torch, width: int):
    return torch.nn.Sequential(torch.nn.Linear(N, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, 1))


def torch_loop_rate(width: int, trials: int, steps: int, time_budget: float = 3.0) -> dict:
    """Per-seed loop: nn.Module + torch.optim.SGD (coupled weight decay), one seed at a time."""
    torch = _torch()
    if torch is None:
        return {}
    x, y = _torch_data(torch, "init", 1)
    x, y = x[0], y[0]

    def one_seed(seed: int, n_steps: int):
        torch.manual_seed(seed)
        model = _torch_model(torch, width)
        opt = torch.optim.SGD(model.parameters(), lr=LR, weight_decay=WD)
        for _ in range(n_steps):
            idx = torch.randint(0, M, (BATCH,))
            loss = torch.relu(1 - y[idx] * model(x[idx]).squeeze(-1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    one_seed(0, 20)  # warm
    done, start = 0, time.perf_counter()
    while done < trials and (done < 1 or time.perf_counter() - start < time_budget):
        one_seed(done + 1, steps)
        done += 1
    return {"rate": done * steps / (time.perf_counter() - start), "trials_timed": done}


def torch_func_rate(width: int, trials: int, vary: str, steps: int, repeats: int = 3) -> dict:
    """A torch.func ensemble: stacked parameters, vmap(grad) of functional_call, fused SGD."""
    torch = _torch()
    if torch is None:
        return {}
    from torch.func import functional_call, grad, stack_module_state, vmap

    models = [_torch_model(torch, width) for _ in range(trials)]
    params, _ = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}
    base = _torch_model(torch, width).to("meta")
    x, y = _torch_data(torch, vary, trials)

    def loss_of(p, xb, yb):
        f = functional_call(base, p, (xb,)).squeeze(-1)
        return torch.relu(1 - yb * f).mean()

    shared = vary == "init"
    grads_of = vmap(grad(loss_of), in_dims=(0, None, None) if shared else (0, 0, 0))
    rows = torch.arange(trials)[:, None]

    def run(n_steps: int):
        for _ in range(n_steps):
            if shared:
                idx = torch.randint(0, M, (BATCH,))
                xb, yb = x[0, idx], y[0, idx]
            else:
                idx = torch.randint(0, M, (trials, BATCH))
                xb, yb = x[rows, idx], y[rows, idx]
            g = grads_of(params, xb, yb)
            with torch.no_grad():
                for k, p in params.items():
                    p.sub_(LR * (g[k] + WD * p))

    run(3)  # warm
    t = _median_time(lambda: run(steps), repeats)
    return {"rate": trials * steps / t}


# ---- the whole table ----------------------------------------------------------------------------

def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    torch = _torch()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "jax": jax.__version__, "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "torch": torch.__version__ if torch else None,
        "date": time.strftime("%Y-%m-%d"),
    }


def run_bench(widths=WIDTHS, trials=TRIALS, varies=VARIES, repeats: int = 3,
              baselines: bool = True, progress=sys.stderr, steps: int | None = None) -> dict:
    """Runs every (width, trials, vary) workload that fits; returns the JSON-able result.

    ``steps``: S for every workload (default: sized per workload to about a second).
    """
    peak = gemm_peak()
    rows = []
    torch_loop_cache: dict[int, dict] = {}
    jax_loop_cache: dict[int, dict] = {}
    for vary in varies:
        for width in widths:
            for T in trials:
                row = {"vary": vary, "width": width, "trials": T}
                if T * width > MAX_NEURONS:
                    rows.append({**row, "skipped": f"trials x width > {MAX_NEURONS:,}"})
                    continue
                if progress:
                    print(f"bench: vary={vary} width={width} trials={T} ...", file=progress,
                          flush=True)
                eng = engine_rate(width, T, vary, repeats, steps)
                row.update(eng)
                row["neuron_rate"] = eng["rate"] * width
                row["gflops"] = eng["rate"] * flops_per_trial_step(width) / 1e9
                row["peak_fraction"] = row["gflops"] / peak
                row["gemm_bound"] = gemm_bound_rate(width, T / eng["batches"], eng["G"],
                                                    eng["P"], eng["steps"], repeats)
                row["x_gemm_bound"] = row["rate"] / row["gemm_bound"]
                if baselines:
                    steps = min(eng["steps"], 512)
                    if width not in torch_loop_cache:
                        torch_loop_cache[width] = torch_loop_rate(width, T, steps)
                        jax_loop_cache[width] = jax_loop_rate(width, T, steps)
                    row["torch_loop"] = torch_loop_cache[width].get("rate")
                    row["jax_loop"] = jax_loop_cache[width].get("rate")
                    if T * width <= TORCH_FUNC_MAX_NEURONS:
                        row["torch_func"] = torch_func_rate(width, T, vary,
                                                            min(steps, 64), repeats).get("rate")
                    for b in ("torch_loop", "torch_func", "jax_loop"):
                        if row.get(b):
                            row[f"x_{b}"] = row["rate"] / row[b]
                rows.append(row)
                if progress:
                    print("  " + _short(row, peak), file=progress, flush=True)
    return {"machine": machine(), "gemm_peak_gflops": peak, "flops_per_trial_step":
            "4*B*r*(n+2), B=32, n=50", "workload": {"n": N, "k": K, "batch": BATCH, "m": M,
                                                     "lr": LR, "wd": WD, "loss": "hinge"},
            "peak_rss_bytes": _peak_rss(), "rows": rows}


def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.{digits}g}M"
    if v >= 1e3:
        return f"{v / 1e3:.{digits}g}k"
    return f"{v:.{digits}g}"


def _short(row: dict, peak: float) -> str:
    return (f"{_fmt(row['rate'])} trial-steps/s ({_fmt(row['rate_end_to_end'])} end to end), "
            f"{row['gflops']:.1f} GFLOP/s = {100 * row['peak_fraction']:.0f}% of peak, "
            f"{100 * row['x_gemm_bound']:.0f}% of the GEMM bound {_fmt(row['gemm_bound'])}, "
            f"torch loop {_fmt(row.get('torch_loop'))}, torch.func {_fmt(row.get('torch_func'))}"
            f", jax loop {_fmt(row.get('jax_loop'))}")


def markdown(result: dict) -> str:
    """The result as a markdown table (plus the machine line)."""
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['backend']} ({m['device']}); "
        f"Python {m['python']}, jax {m['jax']}, torch {m['torch']}; {m['date']}. "
        f"float32 GEMM peak (2048^3 jnp.matmul): **{result['gemm_peak_gflops']:.0f} GFLOP/s**.",
        "",
        "| vary | width | trials | G x P | engine trial-steps/s | end to end | neuron-steps/s "
        "| GFLOP/s | % peak | GEMM bound | % bound | compile s | programs | memory "
        "| torch loop | torch.func | jax per-trial jit | x torch loop | x torch.func |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
        "|---:|---:|",
    ]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['vary']} | {r['width']} | {r['trials']} | skipped: "
                         f"{r['skipped']} |" + " |" * 15)
            continue
        ratio = {b: (f"{r[f'x_{b}']:.1f}x" if r.get(f"x_{b}") else "-")
                 for b in ("torch_loop", "torch_func")}
        lines.append(
            f"| {r['vary']} | {r['width']} | {r['trials']} | {r['G']} x {r['P']} "
            f"| {_fmt(r['rate'])} | {_fmt(r['rate_end_to_end'])} | {_fmt(r['neuron_rate'])} "
            f"| {r['gflops']:.1f} | {100 * r['peak_fraction']:.1f}% | {_fmt(r['gemm_bound'])} "
            f"| {100 * r['x_gemm_bound']:.0f}% | {r['compile_s']:.2f} "
            f"| {r['programs']} | {r['memory_bytes'] / 2**20:.0f} MiB "
            f"| {_fmt(r.get('torch_loop'))} | {_fmt(r.get('torch_func'))} "
            f"| {_fmt(r.get('jax_loop'))} | {ratio['torch_loop']} | {ratio['torch_func']} |")
    return "\n".join(lines)
