"""Every environment variable parity_jax reads, read and checked here (one function each).

Nothing is read at import: each function reads its variable when an entry point (the CLI,
``run``, the bench) or a plan asks, so a value set since is the one used. A value that is not
allowed is a ``ConfigError`` naming the variable and what it allows.

======================== ============================================ ===========================
variable                 allowed values                               default (unset or empty)
======================== ============================================ ===========================
PARITY_JAX_CPU_DEVICES   an integer in [1, 1024]: the JAX CPU         one per available core
                         devices to split the CPU into                (at most 1024)
                         (``cpu_devices``)
PARITY_JAX_CACHE         ``off`` (any case), or a directory for       ``$XDG_CACHE_HOME/parity_
                         JAX's persistent compilation cache and the   jax/jax`` (``~/.cache/
                         kernel's verdicts beside it (``cache``), or  parity_jax/jax``)
                         a URL (``gs://bucket/x``: ``is_url``) for
                         JAX's cache alone
PARITY_JAX_KERNEL        ``auto``, ``off``, ``on``, ``interpret``,    ``auto``
                         ``3xtf32`` (any case; ``kernel``,
                         ``parity_jax.kernel``)
PARITY_JAX_DATA          a directory for fetched OpenML datasets      ``~/.cache/parity_jax``
                         (``data_dir``; set but empty: the current
                         directory)
JAX_COORDINATOR_ADDRESS  host:port of a multi-host job's process 0    one process (no job)
                         (``distributed``)
JAX_NUM_PROCESSES        an integer in [1, 65536]: the job's          what JAX detects
                         processes
JAX_PROCESS_ID           an integer in [0, 65535]: this process's     what JAX detects
                         index in the job
XLA_FLAGS                (JAX's own) ``--xla_force_host_platform_     no CPU count chosen
                         device_count=N`` in it keeps the CPU split
                         the user chose (``cpu_devices_forced``)
======================== ============================================ ===========================

Every numeric bound -- of these variables and of the ``--budget`` of ``doctor`` -- is in one
table, ``BOUNDS``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from parity_jax.errors import ConfigError, show

CPU_DEVICES = "PARITY_JAX_CPU_DEVICES"
CACHE = "PARITY_JAX_CACHE"
KERNEL = "PARITY_JAX_KERNEL"
KERNEL_CHOICES = ("auto", "off", "on", "interpret", "3xtf32")
DATA = "PARITY_JAX_DATA"
COORDINATOR, NUM_PROCESSES, PROCESS_ID = (
    "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
BUDGET = "--budget"

# (least, most) of every numeric setting: past 1024 CPU devices JAX's start-up and ``plan``
# take minutes (2^31 is a JAX error); a budget is a timer's seconds (1e10 overflows it), at
# most a day
BOUNDS: dict[str, tuple[float, float]] = {
    CPU_DEVICES: (1, 1024),
    NUM_PROCESSES: (1, 65536),
    PROCESS_ID: (0, 65535),
    BUDGET: (1e-3, 86400.0),
}


def _within(name: str, value: float) -> bool:
    least, most = BOUNDS[name]
    return least <= value <= most


def cpu_devices() -> int | None:
    """``PARITY_JAX_CPU_DEVICES`` (None: unset or empty); anything but an integer within
    ``BOUNDS`` is a ConfigError naming it."""
    raw = os.environ.get(CPU_DEVICES, "").strip()
    if not raw:
        return None
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if not _within(CPU_DEVICES, count):
        least, most = BOUNDS[CPU_DEVICES]
        raise ConfigError(f"{CPU_DEVICES} = {show(raw)}: must be an integer in "
                          f"{least:g}..{most:g} (the JAX CPU devices to split the CPU into), "
                          "or unset (one per core)")
    return count


def budget(value: float) -> float:
    """``doctor --budget``: seconds within ``BOUNDS`` (a ConfigError naming the flag
    otherwise)."""
    if not (math.isfinite(value) and _within(BUDGET, value)):
        least, most = BOUNDS[BUDGET]
        raise ConfigError(f"{BUDGET} = {show(value)}: must be a number of seconds in "
                          f"{least:g}..{most:g}")
    return value


def cpu_devices_forced() -> bool:
    """Whether ``XLA_FLAGS`` already sets the CPU's device count (the user's choice, kept)."""
    return "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")


def cache() -> str | None:
    """``PARITY_JAX_CACHE``: the compile cache's directory, None when ``off``; unset or empty:
    ``$XDG_CACHE_HOME/parity_jax/jax`` (``~/.cache/parity_jax/jax``)."""
    where = os.environ.get(CACHE, "").strip()
    if where.lower() == "off":
        return None
    if where:
        return where
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "parity_jax", "jax")


def is_url(where: str) -> bool:
    """Whether a cache location is a URL (``gs://bucket/x``): handed to JAX as it is, never
    made as a local directory; the kernel's verdicts then stay in the process."""
    return "://" in where


def kernel() -> str:
    """``PARITY_JAX_KERNEL``: one of ``KERNEL_CHOICES`` ("auto" by default); anything else is
    an error naming the variable."""
    value = os.environ.get(KERNEL, "auto").strip().lower() or "auto"
    if value not in KERNEL_CHOICES:
        raise ConfigError(f"{KERNEL} = {value!r}: must be one of {', '.join(KERNEL_CHOICES)}")
    return value


def data_dir() -> Path:
    """Where fetched OpenML datasets are kept: ``$PARITY_JAX_DATA`` or ~/.cache/parity_jax."""
    raw = os.environ.get(DATA)
    return Path(raw) if raw is not None else Path.home() / ".cache" / "parity_jax"


def coordinator() -> str | None:
    """``JAX_COORDINATOR_ADDRESS``: a multi-host job's process 0 (None: unset, one process)."""
    return os.environ.get(COORDINATOR)


def distributed() -> tuple[int | None, int | None]:
    """(processes, process id) of a multi-host job from ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID`` (None: unset; read only once a job is asked for); a count or id that is
    not an integer is a ConfigError naming it."""
    return _integer(NUM_PROCESSES), _integer(PROCESS_ID)


def _integer(name: str) -> int | None:
    if name not in os.environ:
        return None
    raw = os.environ[name]
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not _within(name, value):
        least, most = BOUNDS[name]
        raise ConfigError(f"{name} = {show(raw)}: must be an integer in {least:g}..{most:g} "
                          "(a multi-host job's "
                          f"{'processes' if name == NUM_PROCESSES else 'process index'}), "
                          "or unset")
    return value
