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
(``devices.setup``). Names are imported when first used: ``import parity_jax`` imports no JAX.
"""

import importlib

# name -> the module that defines it: imported on first use (PEP 562), so importing the package
# (and the command line's start, its --help and its errors) does not import JAX.
_PARITY, _TABULAR = "kinds.parity.config", "kinds.tabular.config"
_EXPORTS = {"DEFAULT_STUDY": _PARITY, "Cell": _PARITY, "Model": _PARITY, "Study": _PARITY,
            "Task": _PARITY, "Train": _PARITY, "Adaptive": _PARITY, "Select": _PARITY,
            "TabularStudy": _TABULAR,
            "ConfigError": "errors", "StoreError": "errors", "Results": "results",
            "run": "runner", "register_target": "targets", "sample": "kinds.parity.sample",
            "register_kind": "kinds"}

__all__ = ["DEFAULT_STUDY", "Adaptive", "Cell", "ConfigError", "Model", "Results", "Select",
           "Study", "StoreError", "TabularStudy", "Task", "Train", "register_kind",
           "register_target", "run", "sample"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'parity_jax' has no attribute {name!r}")
    module = importlib.import_module(f"parity_jax.{_EXPORTS[name]}")
    value = getattr(module, "register" if name == "register_kind" else name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
