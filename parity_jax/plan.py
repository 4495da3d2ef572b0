"""Planning: cells x seeds -> trials -> buckets of one static shape -> groups -> batches.

A *bucket* is a set of trials sharing a static program shape (n, depth, padded width W, padded
training-set size M, batch, n_test, eval_every, loss). Inside a bucket, trials that see the same
data and minibatch stream form *groups* of P trials (one wide GEMM each); batches hold G groups.
The plan is a pure function of the study and the budgets, so a resumed run rebuilds exactly the
same batches and a trial is always computed by the same program with the same batchmates.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np

from parity_jax import kernel as kernel_
from parity_jax import keys, render, trackers
from parity_jax.config import Cell, ConfigError, Study, TabularStudy
from parity_jax.core import Batch, Shape
from parity_jax.tasks import parity, xy

MAX_WIDTH_BUCKETS = 6  # more distinct widths than this -> buckets padding at most 12.5%
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
# Groups per chunk (``core.train``: a group's arithmetic has the shapes of one chunk whatever
# the batch size) in the vmapped layout: about this many neurons per chunk, a power of two of
# groups, at most MAX_CHUNK. On a CPU about one GEMM-sized group's worth (the blocked layout
# computes one group at a time anyway: chunk 1); an accelerator wants its chunk to fill it.
CHUNK_NEURONS = {"cpu": 1 << 10, "accelerator": 1 << 19}
MAX_CHUNK = 1024


def _pow2_floor(v: int) -> int:
    return 1 << (max(1, v).bit_length() - 1)


def _pow2_ceil(v: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, v))))


def chunk_groups(cpu: bool, layout: str, P: int, W: int, study_groups: int | None = None,
                 max_groups: int | None = None) -> int:
    """Groups per chunk of a program: from the study alone (the platform, the program's layout,
    P and W, and ``study_groups``, its groups over the whole study, so a small study pads
    little), never from its batch size, devices, shard or kernel (a program the kernel falls
    back from computes what the XLA step's would). ``max_groups`` (what the memory budget
    holds) caps it: the one case where the budget can move a trial's last bits. On an
    accelerator a chunk of the kernel's widths (<= kernel.MAX_WIDTH) holds at least
    kernel.MIN_TRIALS trials, enough to fill the SMs."""
    if layout == "blocked":
        return 1
    chunk = _pow2_floor(CHUNK_NEURONS["cpu" if cpu else "accelerator"] // (P * W))
    chunk = min(chunk, MAX_CHUNK, _pow2_ceil(study_groups or MAX_CHUNK))
    return min(chunk, _pow2_floor(max_groups)) if max_groups else chunk


def _round_groups(G: int, chunk: int, devices: int, whole: bool) -> int:
    """G up to whole chunks, and to whole chunks on every device when there are enough groups
    (or always with ``whole``: a multi-host job gives every device a share)."""
    unit = chunk * devices if G >= chunk * devices or whole else chunk
    return unit * math.ceil(G / unit)


@dataclasses.dataclass(frozen=True)
class Trial:
    cell: int  # index into the study's cells
    seed: int  # seed index 0..seeds-1


@dataclasses.dataclass(frozen=True)
class PlannedBatch:
    """One compiled call: G x P slots, each a Trial or None (padding)."""

    shape: Shape
    slots: tuple[tuple[Trial | None, ...], ...]  # (G, P)

    @property
    def trials(self) -> list[Trial]:
        return [t for row in self.slots for t in row if t is not None]


@dataclasses.dataclass(frozen=True)
class ForestUnit:
    """One tuned random forest (a tabular (dataset, fraction, seed)): trained by scikit-learn,
    not by a compiled program."""

    trial: Trial

    @property
    def trials(self) -> list[Trial]:
        return [self.trial]


@dataclasses.dataclass(frozen=True)
class Plan:
    cells: list
    batches: list  # PlannedBatch (and, in a tabular plan, ForestUnit) in the order they run

    @property
    def n_trials(self) -> int:
        return sum(len(b.trials) for b in self.batches)

    def trial_ids(self) -> set[tuple[int, int]]:
        """(cell, seed) of every planned trial."""
        return {(t.cell, t.seed) for b in self.batches for t in b.trials}

    @property
    def shapes(self) -> list[Shape]:
        return sorted({b.shape for b in self.batches if isinstance(b, PlannedBatch)}, key=str)

    def programs(self) -> list[dict]:
        """One record per compiled program: its shape, batches, trials, estimated peak bytes
        and (upper-bound) training FLOPs."""
        out = []
        for shape in self.shapes:
            mine = [b for b in self.batches if getattr(b, "shape", None) == shape]
            trials = [t for b in mine for t in b.trials]
            out.append({
                "shape": shape, "batches": len(mine), "trials": len(trials),
                "peak_bytes": batch_bytes(shape),
                "flops": sum(trial_flops(self.cells[t.cell], shape) for t in trials),
            })
        return out


def flops_per_trial_step(width: int, n: int, batch: int, depth: int = 1) -> int:
    """Effective FLOP of one SGD step of one trial: 4*B*r*(n + 2), plus 6*B*r^2 per hidden
    layer (forward, and the two gradient GEMMs) -- the work an ideal step cannot avoid."""
    return 4 * batch * width * (n + 2) + 6 * batch * width * width * (depth - 1)


def trial_flops(cell, shape: Shape | None = None) -> int:
    """Upper bound on a trial's FLOPs: all ``steps`` SGD steps plus every evaluation's
    forward pass over the test set (a trial that stops on success does less; a tabular trial
    of a program ``shape`` counts its steps only)."""
    if not isinstance(cell, Cell):
        return cell.steps * flops_per_trial_step(cell.width, shape.task.d, cell.batch,
                                                 cell.depth)
    evals = math.ceil(cell.steps / cell.eval_every)
    forward = 2 * cell.width * (cell.n + 1) + 2 * cell.width * cell.width * (cell.depth - 1)
    return (cell.steps * flops_per_trial_step(cell.width, cell.n, cell.batch, cell.depth)
            + evals * cell.n_test * forward)


def width_buckets(widths: list[int]) -> dict[int, int]:
    """Maps each width to its padded bucket width: the grid's own values when there are few,
    else the next multiple of 2^(floor(log2 w) - 3) -- eight buckets per octave, so no width
    is padded by more than 12.5% (powers of two padded 10^5 to 131,072: +31% work)."""
    distinct = sorted(set(widths))
    if len(distinct) <= MAX_WIDTH_BUCKETS:
        return {w: w for w in distinct}

    def bucket(w: int) -> int:
        step = 1 << max(0, w.bit_length() - 1 - 3)
        return step * math.ceil(w / step)

    return {w: bucket(w) for w in distinct}


def stream_id(cell: Cell, seed: int) -> tuple:
    """Trials with equal stream ids see identical data and minibatches."""
    data_index, _ = cell.seed_indices(seed)
    return (cell.n, cell.k, cell.m, cell.noise, cell.n_test, cell.batch, data_index)


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


def bytes_per_group(shape: Shape) -> int:
    """Estimated bytes one group adds to the chunk it trains in, float32: its data, parameters
    (and their update, gradients or optimizer state), curves, and -- in the vmapped layout,
    where a chunk's groups step at once -- its step activations. Calibrated against XLA's
    ``memory_analysis()`` of compiled programs (tests/test_plan.py)."""
    task = shape.task
    if isinstance(task, xy.Task):
        return 4 * xy_floats_per_trial(task.d, shape.W, shape.depth, task.batch, shape.curves)
    pw = shape.P * shape.W
    per_neuron = task.n + 3 + (shape.depth - 1) * (shape.W + 1)
    data = (task.M + task.n_test) * (task.n + 1)
    params = (2 if shape.step == "fused" else 4) * pw * per_neuron
    curves = 2 * shape.P * shape.curves
    if shape.kernel != "off":  # no step activations in memory: the kernel's own buffers
        acts = kernel_.extra_floats(shape)
    else:
        acts = _step_floats(shape) if shape.layout == "vmapped" else 0
    return 4 * (data + params + curves + acts)


def bytes_resident(shape: Shape) -> int:
    """Estimated bytes one group holds for the whole call: its final parameters and curves
    (a chunk's working set is freed before the next chunk starts)."""
    task = shape.task
    if isinstance(task, xy.Task):
        return 4 * (shape.W * (task.d + (shape.depth - 1) * shape.W + 2) + 2 * shape.curves)
    per_neuron = task.n + 3 + (shape.depth - 1) * (shape.W + 1)
    return 4 * shape.P * (shape.W * per_neuron + 2 * shape.curves)


def _step_floats(shape: Shape) -> int:
    """Activations of one group's step (forward and backward through every layer)."""
    return 2 * shape.task.batch * shape.P * shape.W * shape.depth


def eval_rows(shape: Shape) -> int:
    """Rows one evaluation holds activations for: the largest set, or a chunk of them."""
    rows = max(shape.task.n_test, shape.task.M)
    return min(rows, shape.task.eval_rows or rows)


def bytes_shared(shape: Shape) -> int:
    """Estimated bytes of what runs one group at a time: an evaluation's activations (a chunk
    of rows x P x W, two layers' worth) and, in the blocked layout, a step's
    activations (tabular: the activations of the evaluation's trial batches)."""
    if isinstance(shape.task, xy.Task):
        return 4 * xy.EVAL_FLOATS
    # two layers' activations alive at once (a layer's input while its output is computed)
    evaluation = 2 * eval_rows(shape) * shape.P * shape.W
    step = _step_floats(shape) if shape.layout == "blocked" else 0
    return 4 * (evaluation + step)


def batch_bytes(shape: Shape, devices: int = 1) -> int:
    """Estimated peak bytes of one batch of ``shape`` (all its ``devices`` together): every
    group's results, one chunk's working set per device, and what runs one group at a time."""
    working = math.gcd(shape.G // shape.chunk, devices) * shape.chunk
    return (shape.G * bytes_resident(shape) + bytes_shared(shape)
            + working * (bytes_per_group(shape) - bytes_resident(shape)))


def parse_shard(shard: str | tuple[int, int]) -> tuple[int, int]:
    """'i/N' or (i, N), 0 <= i < N -> (i, N); ConfigError naming --shard otherwise."""
    try:
        i, n = (int(v) for v in (shard.split("/") if isinstance(shard, str) else shard))
    except (ValueError, TypeError):
        i, n = -1, 0
    if not 0 <= i < n:
        raise ConfigError(f"--shard = {shard!r}: must be i/N with 0 <= i < N, e.g. 0/4")
    return i, n


def make_plan(study: Study, memory_budget: int | None = None, devices: int = 1,
              shard: tuple[int, int] = (0, 1), whole: bool = False,
              platform: str | None = None, kernel: str | None = None) -> Plan:
    """Deterministic batches for every trial of ``study`` (or of one shard of it).

    ``devices``: the batch's groups are split over this many devices (G is a multiple of it
    when G >= devices, or always with ``whole``: a multi-host job gives every device a share).
    ``shard`` (i, N): only the groups whose index over the whole study is i mod N -- a
    deterministic 1/N of the trials, each in the very group it has in the unsharded plan.
    ``platform`` ("cpu" or an accelerator's; default: JAX's default backend) picks the group
    size and the step layout. How trials are grouped depends on the study and the platform
    alone, never on devices, budget or shard. ``kernel`` forces every depth-1 program's
    ``Shape.kernel`` (the bench times each path with batches sized for it); default: chosen
    by ``kernel.select``.
    """
    cells = study.cells()
    memory_budget = memory_budget or default_memory_budget()
    shard_i, shard_n = parse_shard(shard)
    platform = platform or jax.default_backend()
    cpu = platform == "cpu"
    group_neurons = GROUP_NEURONS["cpu" if cpu else "accelerator"]
    group_index = 0
    wb = width_buckets([c.width for c in cells])

    def static_key(c: Cell) -> tuple:
        return (c.n, c.depth, wb[c.width], c.batch, c.n_test, c.eval_every, c.loss, c.online,
                c.record_curves, c.precision, m_bucket(c.m))

    max_m: dict[tuple, int] = defaultdict(lambda: 1)  # online buckets hold no training set
    max_steps: dict[tuple, int] = defaultdict(int)
    for c in cells:
        max_m[static_key(c)] = max(max_m[static_key(c)], c.m or 1)
        max_steps[static_key(c)] = max(max_steps[static_key(c)], c.steps)

    buckets: dict[tuple, dict[tuple, list[Trial]]] = defaultdict(lambda: defaultdict(list))
    for ci, c in enumerate(cells):
        for seed in range(study.seeds):
            buckets[static_key(c)][stream_id(c, seed)].append(Trial(ci, seed))

    batches: list[PlannedBatch] = []
    for key in sorted(buckets):
        n, depth, W, batch, n_test, eval_every, loss, online, curves, precision, _ = key
        streams = buckets[key]
        biggest = max(len(v) for v in streams.values())
        P = max(1, min(biggest, group_neurons // W))
        parts = max(math.ceil(biggest / P), min(MIN_GROUPS, biggest))
        P = math.ceil(biggest / parts)  # balanced groups: little padding
        groups: list[list[Trial]] = []
        # Order by (m, data index) so trials of similar difficulty share a batch's early exit.
        for sid in sorted(streams, key=lambda s: (s[2] or 0, s[6], str(s))):
            members = streams[sid]
            parts = math.ceil(len(members) / P)
            for i in range(parts):
                if group_index % shard_n == shard_i:
                    groups.append(members[i * P:(i + 1) * P])
                group_index += 1
        if not groups:
            continue
        step = "fused" if depth == 1 else "sgd"
        shape = Shape(
            task=parity.Task(n=n, M=max_m[key], batch=batch, n_test=n_test, online=online,
                             eval_rows=EVAL_ROWS),
            depth=depth, W=W, G=1, P=P, eval_every=eval_every, loss=loss, step=step,
            layout="blocked" if cpu and depth == 1 else "vmapped",
            curves=math.ceil(max_steps[key] / eval_every) if curves else 0,
            precision=precision,
            kernel=kernel_.select(platform, depth, step, W,
                                  trials=sum(len(v) for v in streams.values()))
            if kernel is None or depth != 1 else kernel)

        need = batch_bytes(shape)  # G = 1: one group of P trials
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
        free = memory_budget - bytes_shared(shape)
        chunk = chunk_groups(cpu, shape.layout, P, W,
                             study_groups=sum(math.ceil(len(v) / P) for v in streams.values()),
                             max_groups=max(1, free // bytes_per_group(shape)))
        working = devices * chunk * (bytes_per_group(shape) - bytes_resident(shape))
        g_mem = max(chunk, (free - working) // bytes_resident(shape))
        # CPUs: a batch is also capped in neurons; accelerators: by memory alone
        g_max = max(1, min(devices * NEURON_BUDGET // (P * W), g_mem)) if cpu else g_mem
        g_max = max(chunk, chunk * (g_max // chunk))
        n_batches = math.ceil(len(groups) / g_max)
        G = _round_groups(math.ceil(len(groups) / n_batches), chunk, devices, whole)
        n_batches = math.ceil(len(groups) / G)
        shape = dataclasses.replace(shape, G=G, chunk=chunk)
        for bi in range(n_batches):
            members = groups[bi * G:(bi + 1) * G]
            slots = [tuple(g) + (None,) * (P - len(g)) for g in members]
            slots += [(None,) * P] * (G - len(slots))
            batches.append(PlannedBatch(shape=shape, slots=tuple(slots)))
    return Plan(cells=cells, batches=batches)


def default_memory_budget() -> int:
    """Batches are sized to fit in this: 70% of an accelerator's memory, or half of the RAM
    available now (CPU)."""
    stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"] * 0.7)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 4 << 30


def batch_inputs(study: Study, cells: list[Cell], pb: PlannedBatch,
                 skip: set[Trial] = frozenset()) -> Batch:
    """Device inputs of a planned batch; padding slots (and ``skip``ped trials) are invalid."""
    G, P = pb.shape.G, pb.shape.P

    ints = {f: np.zeros((G, P), np.int32) for f in ("width", "s", "steps", "init_id", "init_i")}
    floats = {f: np.zeros((G, P), np.float32) for f in ("lr", "wd", "threshold")}
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
            bools["sparse"][g, p] = c.init == "sparse"
            bools["stop_on_success"][g, p] = c.stop_on_success
            bools["valid"][g, p] = t not in skip

    data_key = keys.parity_data_keys(study.seed, g_int["data_id"], g_int["data_i"])
    init_key = keys.parity_init_keys(study.seed, ints["init_id"], ints["init_i"])
    return Batch(
        task=parity.Inputs(data_key=data_key, k=jnp.asarray(g_int["k"]),
                           m=jnp.asarray(g_int["m"]), noise=jnp.asarray(noise)),
        init_key=init_key,
        width=jnp.asarray(ints["width"]), sparse=jnp.asarray(bools["sparse"]),
        s=jnp.asarray(ints["s"]), lr=jnp.asarray(floats["lr"]), wd=jnp.asarray(floats["wd"]),
        steps=jnp.asarray(ints["steps"]), valid=jnp.asarray(bools["valid"]),
        track=trackers.FirstHitInputs(threshold=jnp.asarray(floats["threshold"]),
                                      stop_on_success=jnp.asarray(bools["stop_on_success"])),
    )


# ---- tabular studies -------------------------------------------------------------------------

# Floats of parameters, optimizer state and activations one tabular program call may hold.
XY_FLOATS = 1 << 27


def xy_floats_per_trial(d: int, W: int, depth: int, batch: int, evals: int = 0) -> int:
    """Floats one tabular trial holds: params, grads and optimizer state, activations, and its
    two recorded curves of ``evals`` points."""
    return W * (d + (depth - 1) * W + 2) * 4 + batch * W * depth * 3 + 2 * evals


def make_tabular_plan(study: TabularStudy, datasets: dict[str, tuple[int, int]],
                      devices: int = 1, shard: tuple[int, int] = (0, 1),
                      whole: bool = False) -> Plan:
    """Deterministic work units for every trial of a tabular study (or of one shard of it).

    ``datasets``: (features, training rows) of each dataset. Per dataset: one program per
    (optimizer, depth, width) -- padding a width-100 trial into a width-1000 program would cost
    10x its work -- holding every fraction, init, s, lr and seed, in batches of T trials (one
    per group) sized to ``XY_FLOATS``; then one ``ForestUnit`` per (fraction, seed). ``shard``
    (i, N): the units whose index over the whole study is i mod N, so a trial runs in the same
    batch in a shard as in the whole study (split by whole batch since before chunks made a
    trial's bits independent of its batch: kept, so stores stay comparable).
    """
    cells = study.cells()
    shard_i, shard_n = parse_shard(shard)
    programs: dict[tuple, list[Trial]] = defaultdict(list)
    forests: dict[str, list[Trial]] = defaultdict(list)
    for ci, c in enumerate(cells):
        for seed in range(study.seeds):
            if c.model == "forest":
                forests[c.dataset].append(Trial(ci, seed))
            else:
                programs[c.dataset, c.optimizer, c.depth, c.width].append(Trial(ci, seed))
    units: list = []
    index = 0  # of the unit over the whole study: a shard holds the units i mod N
    for spec in study.axis("datasets"):
        d, n_train = datasets[spec]
        for (dataset, opt, depth, width), trials in programs.items():
            if dataset != spec:
                continue
            c = cells[trials[0].cell]
            cap = max(1, XY_FLOATS // xy_floats_per_trial(d, width, depth, c.batch))
            T = min(len(trials), cap)
            chunk = chunk_groups(jax.default_backend() == "cpu", "vmapped", 1, width,
                                 study_groups=len(trials), max_groups=cap)
            # whole: a multi-host job gives every device a share (see _Tabular.compute)
            T = _round_groups(T, chunk, devices if whole else 1, whole)
            shape = Shape(task=xy.Task(d=d, n_train=n_train, batch=c.batch), depth=depth,
                          W=width, G=T, P=1, eval_every=c.eval_every, loss="logistic",
                          step=opt, layout="vmapped", tracker="best_validation",
                          curves=c.steps // c.eval_every, chunk=chunk)
            for start in range(0, len(trials), T):
                if index % shard_n == shard_i:
                    members = trials[start:start + T]
                    slots = tuple((t,) for t in members) + ((None,),) * (T - len(members))
                    units.append(PlannedBatch(shape=shape, slots=slots))
                index += 1
        for t in forests[spec]:
            if index % shard_n == shard_i:
                units.append(ForestUnit(t))
            index += 1
    return Plan(cells=cells, batches=units)


def xy_batch_inputs(study: TabularStudy, cells: list, pb: PlannedBatch, n_train: int,
                    skip: set[Trial] = frozenset()) -> Batch:
    """Host inputs of a planned tabular batch (its ``shared`` data left to the caller);
    padding slots (and ``skip``ped trials) repeat a real trial's inputs, marked invalid."""
    from parity_jax import tabular

    trials = [row[0] for row in pb.slots]
    real = next(t for t in trials if t is not None)
    valid = np.array([t is not None and t not in skip for t in trials])
    trials = [t if t is not None else real for t in trials]
    cs = [cells[t.cell] for t in trials]
    init_key, order_key = keys.tabular_keys(
        study.seed, [keys.tabular_id(c, t.seed) for c, t in zip(cs, trials, strict=True)])
    T = len(trials)
    return Batch(
        task=xy.Inputs(
            order_key=order_key,
            rows=jnp.asarray(np.stack([tabular.permutation(n_train, t.seed) for t in trials])),
            m=jnp.array([tabular.train_rows(n_train, c.fraction) for c in cs], jnp.int32)),
        init_key=init_key,
        width=jnp.array([c.width for c in cs], jnp.int32),
        sparse=jnp.array([c.init == "sparse" for c in cs]),
        s=jnp.array([c.s or 1 for c in cs], jnp.int32),
        lr=jnp.array([c.lr for c in cs], jnp.float32),
        wd=jnp.array([c.wd for c in cs], jnp.float32),
        steps=jnp.full((T,), cs[0].steps, jnp.int32),
        valid=jnp.asarray(valid),
    )
