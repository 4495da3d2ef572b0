"""Planning, the part every kind of study shares: trial ids, planned batches, shards, width
buckets and chunks (docs/DESIGN.md §2.2).

A kind (``parity_jax.kinds``) groups its trials into batches of one static program shape; the
plan is a pure function of the study, the platform and the budgets, so a resumed run rebuilds
exactly the same batches and a trial is always computed by the same program with the same
batchmates. What a batch costs is ``parity_jax.costs``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from parity_jax.core import Shape
from parity_jax.errors import ConfigError

MAX_WIDTH_BUCKETS = 6  # more distinct widths than this -> buckets padding at most 12.5%
# Groups per chunk (``core.train``: a group's arithmetic has the shapes of one chunk whatever
# the batch size) in the vmapped layout: about this many neurons per chunk, a power of two of
# groups, at most MAX_CHUNK. On a CPU about one GEMM-sized group's worth (the blocked layout
# computes one group at a time anyway: chunk 1); an accelerator wants its chunk to fill it.
CHUNK_NEURONS = {"cpu": 1 << 10, "accelerator": 1 << 19}
MAX_CHUNK = 1024


@dataclasses.dataclass(frozen=True)
class TrialId:
    """A trial's identity: its cell and seed index (its outcome is the kind's stored row)."""

    cell: int  # index into the study's cells
    seed: int  # seed index 0..seeds-1


@dataclasses.dataclass(frozen=True)
class PlannedBatch:
    """One compiled call: G x P slots, each a TrialId or None (padding)."""

    shape: Shape
    slots: tuple[tuple[TrialId | None, ...], ...]  # (G, P)

    @property
    def trials(self) -> list[TrialId]:
        return [t for row in self.slots for t in row if t is not None]


@dataclasses.dataclass(frozen=True)
class Plan:
    """The units of a study in the order they run: ``PlannedBatch``es, and whatever else a
    kind runs (a tabular study's forests: units with ``trials`` and no ``shape``).

    ``cost(shape, trials)``: a program's estimated peak bytes and (upper-bound) training FLOPs,
    from the kind's cost models."""

    cells: list
    batches: list
    cost: Callable[[Shape, list[TrialId]], tuple[int, int]] | None = None

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
            peak, flops = self.cost(shape, trials)
            out.append({"shape": shape, "batches": len(mine), "trials": len(trials),
                        "peak_bytes": peak, "flops": flops})
        return out


def parse_shard(shard: str | tuple[int, int]) -> tuple[int, int]:
    """'i/N' or (i, N), 0 <= i < N -> (i, N); ConfigError naming --shard otherwise."""
    try:
        i, n = (int(v) for v in (shard.split("/") if isinstance(shard, str) else shard))
    except (ValueError, TypeError):
        i, n = -1, 0
    if not 0 <= i < n:
        raise ConfigError(f"--shard = {shard!r}: must be i/N with 0 <= i < N, e.g. 0/4")
    return i, n


def in_shard(index: int, shard: tuple[int, int]) -> bool:
    """Whether the unit (or group) of this index over the whole study is in ``shard``: a shard
    holds the indices i mod N, each in the very place it has in the unsharded plan."""
    return index % shard[1] == shard[0]


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


def pow2_floor(v: int) -> int:
    return 1 << (max(1, v).bit_length() - 1)


def pow2_ceil(v: int) -> int:
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
    chunk = pow2_floor(CHUNK_NEURONS["cpu" if cpu else "accelerator"] // (P * W))
    chunk = min(chunk, MAX_CHUNK, pow2_ceil(study_groups or MAX_CHUNK))
    return min(chunk, pow2_floor(max_groups)) if max_groups else chunk


def round_groups(G: int, chunk: int, devices: int, whole: bool) -> int:
    """G up to whole chunks, and to whole chunks on every device when there are enough groups
    (or always with ``whole``: a multi-host job gives every device a share)."""
    unit = chunk * devices if G >= chunk * devices or whole else chunk
    return unit * math.ceil(G / unit)
