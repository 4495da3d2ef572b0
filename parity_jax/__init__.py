"""parity_jax: train thousands of small, independent MLPs at once on JAX.

Public API::

    from parity_jax import Study, Task, Model, Train, run
    results = run(Study(task=Task(m=[200, 1000]), model=Model(width=[10, 100])), out="runs/x")
    results.cells()   # per-cell success probability, Wilson interval, median first hit

    # the tabular benchmark: MLPs (dense / sparse init) against tuned random forests
    records = run_tabular(TabularStudy(datasets=["sklearn:wine"]), out="runs/t")

Importing the package splits the CPU into one JAX device per core (see ``_split_cpu``): the
engine trains its groups of trials on all of them at once.
"""

import os


def _split_cpu() -> None:
    """One JAX CPU device per available core, unless the user chose a count already
    (``jax_num_cpu_devices``, ``XLA_FLAGS=--xla_force_host_platform_device_count``, or
    ``PARITY_JAX_CPU_DEVICES``) or JAX's backends have already started."""
    import jax

    if (jax.config.jax_num_cpu_devices != -1
            or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")):
        return
    try:
        count = int(os.environ.get("PARITY_JAX_CPU_DEVICES", len(os.sched_getaffinity(0))))
    except (ValueError, AttributeError):
        count = os.cpu_count() or 1
    try:
        jax.config.update("jax_num_cpu_devices", max(1, count))
    except RuntimeError:
        pass  # backends already initialised by the caller: keep their devices


_split_cpu()

from parity_jax.config import (  # noqa: E402
    DEFAULT_STUDY,
    Cell,
    ConfigError,
    Model,
    Study,
    TabularStudy,
    Task,
    Train,
)
from parity_jax.runner import Results, run, run_tabular  # noqa: E402

__all__ = ["DEFAULT_STUDY", "Cell", "ConfigError", "Model", "Results", "Study", "TabularStudy",
           "Task", "Train", "run", "run_tabular"]
