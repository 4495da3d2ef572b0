"""Cost models: the memory a compiled batch holds and the memory budget batches are sized to
(docs/DESIGN.md §1.8); the FLOPs a trial does are counted in ``flops`` (pure Python).

Two memory models, one per task layout: ``packed`` (parity: a group's P trials share their
data and minibatches, one wide GEMM) and ``xy`` (tabular: one trial per group on shared (X, y)
splits). Each gives a ``GroupBytes``; ``batch_bytes`` adds up a batch from it. Calibrated
against XLA's ``memory_analysis()`` of compiled programs (tests/test_costs.py).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import jax

from parity_jax import files, kernel
from parity_jax.tasks import xy

if TYPE_CHECKING:
    from parity_jax.core import Shape


class GroupBytes(NamedTuple):
    """Estimated float32 bytes of a program's groups."""

    per_group: int  # one group in the chunk it trains in: data, parameters, state, activations
    resident: int  # one group for the whole call: its final parameters and curves
    shared: int  # what runs one group at a time (an evaluation's activations, ...)


def batch_bytes(g: GroupBytes, shape: Shape, n_devices: int = 1) -> int:
    """Estimated peak bytes of one batch of ``shape`` (all its ``n_devices`` together): every
    group's results, one chunk's working set per device, and what runs one group at a time."""
    working = math.gcd(shape.G // shape.chunk, n_devices) * shape.chunk
    return shape.G * g.resident + g.shared + working * (g.per_group - g.resident)


# -- packed groups (parity) ------------------------------------------------------------------

def packed_bytes(shape: Shape) -> GroupBytes:
    """The memory model of a packed task's program (``tasks.sparse``)."""
    return GroupBytes(_packed_per_group(shape), _packed_resident(shape), _packed_shared(shape))


def packed_batch_bytes(shape: Shape, n_devices: int = 1) -> int:
    """``batch_bytes`` of a packed task's program."""
    return batch_bytes(packed_bytes(shape), shape, n_devices)


def _packed_per_group(shape: Shape) -> int:
    """One group in its chunk: its data, parameters (and their update, gradients or optimizer
    state), curves, and -- in the vmapped layout, where a chunk's groups step at once -- its
    step activations."""
    task = shape.task
    pw = shape.P * shape.W
    per_neuron = task.n + 3 + (shape.depth - 1) * (shape.W + 1)
    data = (task.M + task.n_test) * (task.n + 1)
    params = (2 if shape.step == "fused" else 4) * pw * per_neuron
    curves = 2 * shape.P * shape.curves
    acts = _step_floats(shape) if shape.layout == "vmapped" else 0
    if shape.kernel != "off":  # the kernel's own buffers, no step activations; unless the
        # engine race or the fail-safe may run the program on the XLA step: the larger
        acts = max(kernel.extra_floats(shape),
                   acts if kernel.requested() in ("auto", "interpret") else 0)
    return 4 * (data + params + curves + acts)


def _packed_resident(shape: Shape) -> int:
    """One group's final parameters and curves (a chunk's working set is freed before the next
    chunk starts)."""
    task = shape.task
    per_neuron = task.n + 3 + (shape.depth - 1) * (shape.W + 1)
    return 4 * shape.P * (shape.W * per_neuron + 2 * shape.curves)


def _step_floats(shape: Shape) -> int:
    """Activations of one group's step (forward and backward through every layer)."""
    return 2 * shape.task.batch * shape.P * shape.W * shape.depth


def eval_rows(shape: Shape) -> int:
    """Rows one evaluation holds activations for: the largest set, or a chunk of them."""
    rows = max(shape.task.n_test, shape.task.M)
    return min(rows, shape.task.eval_rows or rows)


def _packed_shared(shape: Shape) -> int:
    """An evaluation's activations (a chunk of rows x P x W, two layers' worth: a layer's input
    while its output is computed) and, in the blocked layout, a step's activations."""
    evaluation = 2 * eval_rows(shape) * shape.P * shape.W
    step = _step_floats(shape) if shape.layout == "blocked" else 0
    return 4 * (evaluation + step)


# -- one trial per group on shared splits (tabular) --------------------------------------------

def xy_floats_per_trial(d: int, W: int, depth: int, batch: int, evals: int = 0) -> int:
    """Floats one tabular trial holds: params, grads and optimizer state, activations, and its
    two recorded curves of ``evals`` points."""
    return W * (d + (depth - 1) * W + 2) * 4 + batch * W * depth * 3 + 2 * evals


def xy_bytes(shape: Shape) -> GroupBytes:
    """The memory model of an xy task's program (``tasks.xy``)."""
    task = shape.task
    per_group = 4 * xy_floats_per_trial(task.d, shape.W, shape.depth, task.batch, shape.curves)
    resident = 4 * (shape.W * (task.d + (shape.depth - 1) * shape.W + 2) + 2 * shape.curves)
    return GroupBytes(per_group, resident, 4 * xy.EVAL_FLOATS)


# -- the budget --------------------------------------------------------------------------------

def default_memory_budget() -> int:
    """Batches are sized to fit in this: 70% of an accelerator's memory, or half of the RAM
    available now (CPU)."""
    stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"] * 0.7)
    try:
        meminfo = files.read_text("/proc/meminfo", 1 << 20, "memory")
    except files.InputError:
        meminfo = ""
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 // 2
    return 4 << 30
