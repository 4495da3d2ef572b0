"""parity_jax: train thousands of small, independent MLPs at once on JAX.

Public API::

    from parity_jax import Study, Task, Model, Train, run
    results = run(Study(task=Task(m=[200, 1000]), model=Model(width=[10, 100])), out="runs/x")
    results.cells()   # per-cell success probability, Wilson interval, median first hit

    # the tabular benchmark: MLPs (dense / sparse init) against tuned random forests
    results = run(TabularStudy(datasets=["sklearn:wine"]), out="runs/t")
    results.trials()  # one record per MLP trial and per tuned forest

Importing the package changes no JAX setting: ``run`` (like the CLI and the bench) splits the
CPU into one JAX device per core and turns on the persistent compilation cache when it starts
(``devices.setup``).
"""

from parity_jax.config import (
    DEFAULT_STUDY,
    Cell,
    ConfigError,
    Model,
    Study,
    TabularStudy,
    Task,
    Train,
)
from parity_jax.runner import Results, run
from parity_jax.store import StoreError

__all__ = ["DEFAULT_STUDY", "Cell", "ConfigError", "Model", "Results", "Study", "StoreError",
           "TabularStudy", "Task", "Train", "run"]
