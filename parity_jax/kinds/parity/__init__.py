"""The parity study kind, one package: its config (``config``), its plan (``batches``), its
stored rows (``rows``), its report (``report``), ``pj.sample`` (``sample``) and the kind itself
(``kind``: ``KIND``).

Names are imported on first use (PEP 562): importing the config imports no JAX.
"""

import importlib

_EXPORTS = {"KIND": "kind", "make_plan": "batches", "batch_inputs": "batches",
            "trial_flops": "batches", "NEURON_BUDGET": "batches", "M_FLOOR": "batches"}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":  # a module it imports is missing
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
