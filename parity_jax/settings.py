"""Every environment variable parity_jax reads, read and checked here (one function each).

Nothing is read at import: each function reads its variable when an entry point (the CLI,
``run``, the bench) or a plan asks, so a value set since is the one used. A value that is not
allowed is a ``ConfigError`` naming the variable and what it allows.

======================== ============================================ ===========================
variable                 allowed values                               default (unset or empty)
======================== ============================================ ===========================
PARITY_JAX_CPU_DEVICES   an integer >= 1: the JAX CPU devices to      one per available core
                         split the CPU into (``cpu_devices``)
PARITY_JAX_CACHE         ``off`` (any case), or a directory for       ``$XDG_CACHE_HOME/parity_
                         JAX's persistent compilation cache and the   jax/jax`` (``~/.cache/
                         kernel's verdicts beside it (``cache``)      parity_jax/jax``)
PARITY_JAX_KERNEL        ``auto``, ``off``, ``on``, ``interpret``,    ``auto``
                         ``3xtf32`` (any case; ``kernel``,
                         ``parity_jax.kernel``)
PARITY_JAX_DATA          a directory for fetched OpenML datasets      ``~/.cache/parity_jax``
                         (``data_dir``; set but empty: the current
                         directory)
JAX_COORDINATOR_ADDRESS  host:port of a multi-host job's process 0    one process (no job)
                         (``distributed``)
JAX_NUM_PROCESSES        an integer: the job's processes              what JAX detects
JAX_PROCESS_ID           an integer: this process's index in the job  what JAX detects
XLA_FLAGS                (JAX's own) ``--xla_force_host_platform_     no CPU count chosen
                         device_count=N`` in it keeps the CPU split
                         the user chose (``cpu_devices_forced``)
======================== ============================================ ===========================
"""

from __future__ import annotations

import os
from pathlib import Path

from parity_jax.errors import ConfigError

CPU_DEVICES = "PARITY_JAX_CPU_DEVICES"
CACHE = "PARITY_JAX_CACHE"
KERNEL = "PARITY_JAX_KERNEL"
KERNEL_CHOICES = ("auto", "off", "on", "interpret", "3xtf32")
DATA = "PARITY_JAX_DATA"
COORDINATOR, NUM_PROCESSES, PROCESS_ID = (
    "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def cpu_devices() -> int | None:
    """``PARITY_JAX_CPU_DEVICES`` (None: unset or empty); anything but an integer >= 1 is a
    ConfigError naming it."""
    raw = os.environ.get(CPU_DEVICES, "").strip()
    if not raw:
        return None
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"{CPU_DEVICES} = {raw!r}: must be an integer >= 1 (the JAX "
                          "CPU devices to split the CPU into), or unset (one per core)")
    return count


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
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} = {raw!r}: must be an integer (a multi-host job's "
                          f"{'processes' if name == NUM_PROCESSES else 'process index'}), "
                          "or unset") from None
