"""The PyTorch baselines of ``parity-jax bench``, on its workload (``parity_jax.bench``).

A per-seed loop (``nn.Module`` + ``torch.optim.SGD``, one seed after another) and a
``torch.func`` ensemble (``stack_module_state`` + ``functional_call`` + ``vmap(grad)``), on CUDA
when PyTorch sees a GPU, else on the CPU. They live here, not in the runtime package: the bench
loads this file from a checkout (``bench.torch_baselines``); PyTorch is optional
(``pip install -e '.[bench]'``) and imported only when a baseline runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from parity_jax.alternatives import BATCH, LR, WD, K, M, N
from parity_jax.timing import median_time


def torch_or_none():
    """The torch module; None where PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_device() -> str | None:
    """Where the PyTorch baselines run: "cuda" when PyTorch sees a GPU, else "cpu" (None:
    no PyTorch)."""
    torch = torch_or_none()
    if torch is None:
        return None
    return "cuda" if torch.cuda.is_available() else "cpu"


def _sync(torch) -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _torch_data(torch, vary: str, trials: int, seed: int = 0):
    """Parity training sets: (1, M, N) shared or (T, M, N) independent, labels alike."""
    g = torch.Generator().manual_seed(seed)
    t = 1 if vary == "init" else trials
    x = torch.randint(0, 2, (t, M, N), generator=g).float() * 2 - 1
    y = x[:, :, :K].prod(dim=-1)
    return x.to(torch_device()), y.to(torch_device())


def _torch_model(torch, width: int):
    return torch.nn.Sequential(torch.nn.Linear(N, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, 1)).to(torch_device())


def torch_loop_rate(width: int, trials: int, steps: int, time_budget: float = 3.0) -> dict:
    """Per-seed loop: nn.Module + torch.optim.SGD (coupled weight decay), one seed at a time."""
    torch = torch_or_none()
    if torch is None:
        return {}
    x, y = _torch_data(torch, "init", 1)
    x, y = x[0], y[0]

    def one_seed(seed: int, n_steps: int):
        torch.manual_seed(seed)
        model = _torch_model(torch, width)
        opt = torch.optim.SGD(model.parameters(), lr=LR, weight_decay=WD)
        for _ in range(n_steps):
            idx = torch.randint(0, M, (BATCH,), device=x.device)
            loss = torch.relu(1 - y[idx] * model(x[idx]).squeeze(-1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        _sync(torch)

    one_seed(0, 20)  # warm
    done, start = 0, time.perf_counter()
    while done < trials and (done < 1 or time.perf_counter() - start < time_budget):
        one_seed(done + 1, steps)
        done += 1
    return {"rate": done * steps / (time.perf_counter() - start), "trials_timed": done}


def torch_func_timer(width: int, trials: int, vary: str, steps: int = 64,
                     target_s: float = 1.0) -> tuple[int, Callable[[], None]] | None:
    """A torch.func ensemble: stacked parameters, vmap(grad) of functional_call, fused SGD.
    Returns (S, a warmed timer of S steps), S at most ``steps`` and cut (a power of two, at
    least 4) so that a call takes about ``target_s``; None without PyTorch."""
    torch = torch_or_none()
    if torch is None:
        return None
    from torch.func import functional_call, grad, stack_module_state, vmap

    models = [_torch_model(torch, width) for _ in range(trials)]
    params, _ = stack_module_state(models)
    params = {k: v.detach() for k, v in params.items()}
    base = _torch_model(torch, width).to("meta")
    x, y = _torch_data(torch, vary, trials)
    dev = x.device

    def loss_of(p, xb, yb):
        f = functional_call(base, p, (xb,)).squeeze(-1)
        return torch.relu(1 - yb * f).mean()

    shared = vary == "init"
    grads_of = vmap(grad(loss_of), in_dims=(0, None, None) if shared else (0, 0, 0))
    rows = torch.arange(trials, device=dev)[:, None]

    def run(n_steps: int):
        for _ in range(n_steps):
            if shared:
                idx = torch.randint(0, M, (BATCH,), device=dev)
                xb, yb = x[0, idx], y[0, idx]
            else:
                idx = torch.randint(0, M, (trials, BATCH), device=dev)
                xb, yb = x[rows, idx], y[rows, idx]
            g = grads_of(params, xb, yb)
            with torch.no_grad():
                for k, p in params.items():
                    p.sub_(LR * (g[k] + WD * p))
        _sync(torch)

    run(3)  # warm
    per_step = median_time(lambda: run(2), 1) / 2
    while steps > 4 and steps * per_step > target_s:
        steps //= 2
    return steps, lambda: run(steps)


def torch_func_rate(width: int, trials: int, vary: str, steps: int, repeats: int = 3) -> dict:
    """The torch.func ensemble's trial-steps/s (``torch_func_timer``), median of repeats."""
    timer = torch_func_timer(width, trials, vary, steps)
    if timer is None:
        return {}
    s, fn = timer
    return {"rate": trials * s / median_time(fn, repeats), "steps": s}
