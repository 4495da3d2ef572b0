"""Multi-host jobs (JAX's multi-controller runtime): joining one, and what process 0 tells the
others. With one process every function here is a no-op or returns its argument."""

from __future__ import annotations

import jax
import numpy as np

from parity_jax import settings
from parity_jax.errors import ConfigError, StoreError


def init_distributed(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None) -> None:
    """Joins a multi-host job when asked to: by the arguments, or by
    ``JAX_COORDINATOR_ADDRESS`` (with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, or what JAX
    detects itself under Slurm / Open MPI). Otherwise a no-op: one process."""
    coordinator = coordinator or settings.coordinator()
    if coordinator is None and num_processes is None and process_id is None:
        return
    env_processes, env_id = settings.distributed()
    if num_processes is None:
        num_processes = env_processes
    if process_id is None:
        process_id = env_id
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    except (ValueError, TypeError, RuntimeError) as e:
        raise ConfigError(f"--coordinator/--num-processes/--process-id: {e}") from None


def lead_says(code: int) -> int:
    """Process 0's ``code`` on every process (one process: ``code``)."""
    if jax.process_count() == 1:
        return code
    from jax.experimental.multihost_utils import broadcast_one_to_all

    return int(broadcast_one_to_all(np.int32(code)))


def from_process_0(done: set | None, budget: int) -> tuple[set | None, int]:
    """Process 0's view of the store -- the stored (cell, seed) pairs and the memory budget --
    on every process of a multi-host job (``done`` None: process 0 could not open it).

    Values travel as int32 (JAX's default): the budget in KiB (up to 2 TiB)."""
    if jax.process_count() == 1:
        return done, budget
    from jax.experimental.multihost_utils import broadcast_one_to_all

    kib = min(budget // 1024, 2**31 - 1)
    head = broadcast_one_to_all(np.array([-1 if done is None else len(done), kib], np.int32))
    if head[0] < 0:
        if done is None:
            return None, budget
        raise StoreError("out: process 0 could not open the results store (see its error)")
    rows = np.array(sorted(done), np.int32).reshape(-1, 2) if jax.process_index() == 0 \
        else np.zeros((int(head[0]), 2), np.int32)
    rows = broadcast_one_to_all(rows)
    return {(int(c), int(s)) for c, s in rows}, int(head[1]) * 1024


def lead_set(pairs: set | None) -> set | None:
    """Process 0's set of (cell, seed) pairs (or None) on every process of a multi-host job: what
    process 0 decided a round of an adaptive study runs."""
    if jax.process_count() == 1:
        return pairs
    from jax.experimental.multihost_utils import broadcast_one_to_all

    head = broadcast_one_to_all(np.array([-1 if pairs is None else len(pairs)], np.int32))
    if head[0] < 0:
        return None
    rows = np.array(sorted(pairs), np.int32).reshape(-1, 2) if jax.process_index() == 0 \
        else np.zeros((int(head[0]), 2), np.int32)
    return {(int(c), int(s)) for c, s in broadcast_one_to_all(rows)}
