"""parity_jax: train thousands of small, independent MLPs at once on JAX.

Public API::

    from parity_jax import Study, Task, Model, Train, run
    results = run(Study(task=Task(m=[200, 1000]), model=Model(width=[10, 100])), out="runs/x")
    results.cells()   # per-cell success probability, Wilson interval, median first hit
"""

from parity_jax.config import DEFAULT_STUDY, Cell, ConfigError, Model, Study, Task, Train
from parity_jax.runner import Results, run

__all__ = ["DEFAULT_STUDY", "Cell", "ConfigError", "Model", "Results", "Study", "Task",
           "Train", "run"]
