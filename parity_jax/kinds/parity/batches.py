"""How a parity study is planned into batches: trials grouped by their data stream (the P
trials of a group share one minibatch stream), groups into programs of one static shape, and the
device inputs of a planned batch (docs/DESIGN.md §1, §2.2).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np

import parity_jax.kernel
from parity_jax import costs, flops, keys, plan, render, trackers
from parity_jax.core import Batch, Shape
from parity_jax.errors import ConfigError
from parity_jax.kinds.parity.config import Cell, Study
from parity_jax.tasks import sparse

# Neurons (trials x width) per device computed together in a batch on a CPU (its batches wait
# for their slowest trial; accelerators fill their memory budget instead).
NEURON_BUDGET = 1 << 16
# Cap on P * W, the trials packed into one shared-stream GEMM. On a CPU a group runs a whole
# evaluation interval while its parameters sit in L2 cache: about 1000 neurons (w1 200 KB) was
# fastest here (benchmarks/RESULTS.md); accelerators want wide GEMMs.
GROUP_NEURONS = {"cpu": 1 << 10, "accelerator": 1 << 15}
# A shared stream with enough trials is split into at least this many groups, so its groups can
# spread over up to this many devices. A constant, not the device count: a trial's group (and so
# every number it computes) is the same whatever devices, shards or budget run it.
MIN_GROUPS = 8
# Rows of activations one parity evaluation holds at a time (a constant, not a budget share:
# the train loss's rounding depends on the chunk, and a trial's numbers must not depend on the
# budget). Sets of at most this many rows are evaluated at once, as before chunking existed.
EVAL_ROWS = 1 << 13
# Training sets of up to this many rows share one m bucket; above it, m is bucketed by powers
# of two, so no trial carries a training set more than twice its m (and a bucket's M padding
# costs memory only where it matters: 2^16 rows of n = 50 are 13 MB).
M_FLOOR = 1 << 16


def m_bucket(m: int | None) -> int:
    """The m bucket of a training-set size (0: every m up to ``M_FLOOR``)."""
    return 0 if m is None or m <= M_FLOOR else math.ceil(math.log2(m))


def stream_id(cell: Cell, seed: int) -> tuple:
    """Trials with equal stream ids see identical data and minibatches."""
    data_index, _ = cell.seed_indices(seed)
    return (cell.n, cell.k, cell.m, cell.noise, cell.n_test, cell.batch, data_index)


def trial_flops(cell: Cell) -> int:
    """Upper bound on a trial's FLOPs: all ``steps`` SGD steps plus every evaluation's forward
    pass over the test set (a trial that stops on success does less)."""
    return flops.flops_to_step(cell.steps, **cell.to_dict())


def _cost(cells: list[Cell]):
    def cost(shape: Shape, trials: list[plan.TrialId]) -> tuple[int, int]:
        return (costs.packed_batch_bytes(shape),
                sum(trial_flops(cells[t.cell]) for t in trials))

    return cost


def make_plan(study: Study, memory_budget: int | None = None, n_devices: int = 1,
              shard: tuple[int, int] = (0, 1), whole: bool = False,
              platform: str | None = None, kernel: str | None = None) -> plan.Plan:
    """Deterministic batches for every trial of ``study`` (or of one shard of it).

    ``n_devices``: the batch's groups are split over this many devices (G is a multiple of it
    when G >= n_devices, or always with ``whole``: a multi-host job gives every device a share).
    ``shard`` (i, N): only the groups whose index over the whole study is i mod N -- a
    deterministic 1/N of the trials, each in the very group it has in the unsharded plan.
    ``platform`` ("cpu" or an accelerator's; default: JAX's default backend) picks the group
    size and the step layout. How trials are grouped depends on the study and the platform
    alone, never on devices, budget or shard. ``kernel`` forces every depth-1 program's
    ``Shape.kernel`` (the bench times each path with batches sized for it); default: chosen
    by ``kernel.select``.
    """
    cells = study.cells()
    memory_budget = memory_budget or costs.default_memory_budget()
    shard = plan.parse_shard(shard)
    platform = platform or jax.default_backend()
    cpu = platform == "cpu"
    group_neurons = GROUP_NEURONS["cpu" if cpu else "accelerator"]
    group_index = 0
    wb = plan.width_buckets([c.width for c in cells])

    def static_key(c: Cell) -> tuple:
        # the target's static fields last, as text (sortable); parity's are one value, so a
        # parity study's programs come in the order they always did
        target = json.dumps(sparse.target_fields(c), sort_keys=True)
        return (c.n, c.depth, wb[c.width], c.batch, c.n_test, c.eval_every, c.loss, c.online,
                c.record_curves, c.precision, m_bucket(c.m), target, c.param,
                c.base_width if c.param == "mup" else 1)

    max_m: dict[tuple, int] = defaultdict(lambda: 1)  # online buckets hold no training set
    max_steps: dict[tuple, int] = defaultdict(int)
    first: dict[tuple, int] = {}  # a cell of each bucket (its target's static fields)
    for ci, c in enumerate(cells):
        first.setdefault(static_key(c), ci)
        max_m[static_key(c)] = max(max_m[static_key(c)], c.m or 1)
        max_steps[static_key(c)] = max(max_steps[static_key(c)], c.steps)

    buckets: dict[tuple, dict[tuple, list[plan.TrialId]]] = defaultdict(lambda: defaultdict(list))
    for ci, c in enumerate(cells):
        for seed in range(study.seeds):
            buckets[static_key(c)][stream_id(c, seed)].append(plan.TrialId(ci, seed))

    batches: list[plan.PlannedBatch] = []
    for key in sorted(buckets):
        (n, depth, W, batch, n_test, eval_every, loss, online, curves, precision, _, _, param,
         base_width) = key
        streams = buckets[key]
        biggest = max(len(v) for v in streams.values())
        P = max(1, min(biggest, group_neurons // W))
        parts = max(math.ceil(biggest / P), min(MIN_GROUPS, biggest))
        P = math.ceil(biggest / parts)  # balanced groups: little padding
        groups: list[list[plan.TrialId]] = []
        # Order by (m, data index) so trials of similar difficulty share a batch's early exit.
        for sid in sorted(streams, key=lambda s: (s[2] or 0, s[6], str(s))):
            members = streams[sid]
            parts = math.ceil(len(members) / P)
            for i in range(parts):
                if plan.in_shard(group_index, shard):
                    groups.append(members[i * P:(i + 1) * P])
                group_index += 1
        if not groups:
            continue
        step = "fused" if depth == 1 else "sgd"
        task = sparse.SparseTask(n=n, M=max_m[key], batch=batch, n_test=n_test, online=online,
                                 eval_rows=EVAL_ROWS, **sparse.target_fields(cells[first[key]]))
        shape = Shape(
            task=task, tracker=trackers.FirstHit(terms=len(task.terms)) if task.terms
            else "first_hit",
            depth=depth, W=W, G=1, P=P, eval_every=eval_every, loss=loss, step=step,
            layout="blocked" if cpu and depth == 1 else "vmapped",
            curves=math.ceil(max_steps[key] / eval_every) if curves else 0,
            precision=precision, param=param, base_width=base_width,
            kernel=parity_jax.kernel.select(platform, depth, step, W,
                                  trials=sum(len(v) for v in streams.values()))
            if kernel is None or depth != 1 else kernel)

        need = costs.packed_batch_bytes(shape)  # G = 1: one group of P trials
        if need > memory_budget:
            c = max((cells[t.cell] for ts in streams.values() for t in ts),
                    key=lambda c: (c.width, c.m or 0))
            alone = "alone" if P == 1 else f"in its group of {P} trials"
            raise ConfigError(
                f"memory: cell (width={c.width}, m={c.m}, n={c.n}, n_test={c.n_test}, "
                f"depth={c.depth}) needs {render.size(need)} {alone}, over the memory "
                f"budget of {render.size(memory_budget)}; give --memory-budget more or "
                "make the cell smaller")
        # a chunk must fit the budget (the budget alone: not the device count); then the
        # groups' results, and a chunk's working set on each device used
        model = costs.packed_bytes(shape)
        free = memory_budget - model.shared
        chunk = plan.chunk_groups(cpu, shape.layout, P, W,
                             study_groups=sum(math.ceil(len(v) / P) for v in streams.values()),
                             max_groups=max(1, free // model.per_group))
        working = n_devices * chunk * (model.per_group - model.resident)
        g_mem = max(chunk, (free - working) // model.resident)
        # CPUs: a batch is also capped in neurons; accelerators: by memory alone
        g_max = max(1, min(n_devices * NEURON_BUDGET // (P * W), g_mem)) if cpu else g_mem
        g_max = max(chunk, chunk * (g_max // chunk))
        n_batches = math.ceil(len(groups) / g_max)
        G = plan.round_groups(math.ceil(len(groups) / n_batches), chunk, n_devices, whole)
        n_batches = math.ceil(len(groups) / G)
        shape = dataclasses.replace(shape, G=G, chunk=chunk)
        for bi in range(n_batches):
            members = groups[bi * G:(bi + 1) * G]
            slots = [tuple(g) + (None,) * (P - len(g)) for g in members]
            slots += [(None,) * P] * (G - len(slots))
            batches.append(plan.PlannedBatch(shape=shape, slots=tuple(slots)))
    return plan.Plan(cells=cells, batches=batches, cost=_cost(cells))


def batch_inputs(study: Study, cells: list[Cell], pb: plan.PlannedBatch,
                 skip: set[plan.TrialId] = frozenset()) -> Batch:
    """Device inputs of a planned batch; padding slots (and ``skip``ped trials) are invalid."""
    G, P = pb.shape.G, pb.shape.P

    ints = {f: np.zeros((G, P), np.int32) for f in ("width", "s", "steps", "init_id", "init_i")}
    floats = {f: np.zeros((G, P), np.float32) for f in ("lr", "wd", "threshold", "recover")}
    bools = {f: np.zeros((G, P), bool) for f in ("sparse", "stop_on_success", "valid")}
    g_int = {f: np.zeros(G, np.int32) for f in ("k", "m", "data_id", "data_i")}
    noise = np.zeros(G, np.float32)
    for g, row in enumerate(pb.slots):
        first = next((t for t in row if t is not None), None)
        if first is None:  # a padding group: any valid-looking stream, never updated
            g_int["k"][g], g_int["m"][g] = 1, 1
            continue
        c0 = cells[first.cell]
        data_i, _ = c0.seed_indices(first.seed)
        g_int["k"][g], g_int["m"][g] = c0.k, c0.m or 1
        g_int["data_id"][g], g_int["data_i"][g] = keys.data_id(c0.n, c0.k), data_i
        noise[g] = c0.noise
        for p, t in enumerate(row):
            if t is None:
                ints["width"][g, p], ints["s"][g, p] = 1, 1
                continue
            c = cells[t.cell]
            _, init_i = c.seed_indices(t.seed)
            ints["width"][g, p], ints["s"][g, p] = c.width, c.s or 1
            ints["steps"][g, p] = c.steps
            ints["init_id"][g, p], ints["init_i"][g, p] = keys.init_id(c.n), init_i
            floats["lr"][g, p], floats["wd"][g, p] = c.lr, c.wd
            floats["threshold"][g, p] = c.threshold
            floats["recover"][g, p] = c.recover or 0.0
            bools["sparse"][g, p] = c.init == "sparse"
            bools["stop_on_success"][g, p] = c.stop_on_success
            bools["valid"][g, p] = t not in skip

    data_key = keys.parity_data_keys(study.seed, g_int["data_id"], g_int["data_i"])
    init_key = keys.parity_init_keys(study.seed, ints["init_id"], ints["init_i"])
    return Batch(
        task=sparse.Inputs(data_key=data_key, k=jnp.asarray(g_int["k"]),
                           m=jnp.asarray(g_int["m"]), noise=jnp.asarray(noise)),
        init_key=init_key,
        width=jnp.asarray(ints["width"]), sparse=jnp.asarray(bools["sparse"]),
        s=jnp.asarray(ints["s"]), lr=jnp.asarray(floats["lr"]), wd=jnp.asarray(floats["wd"]),
        steps=jnp.asarray(ints["steps"]), valid=jnp.asarray(bools["valid"]),
        track=trackers.FirstHitInputs(threshold=jnp.asarray(floats["threshold"]),
                                      stop_on_success=jnp.asarray(bools["stop_on_success"]),
                                      recover=jnp.asarray(floats["recover"])
                                      if pb.shape.task.terms else None),
    )
