"""The parity study kind, one package: its config (``config``), its plan (``batches``), its
stored rows (``rows``), its report (``report``), ``pj.sample`` (``sample``) and the kind itself
(``kind``: ``KIND``).

Names are imported on first use (PEP 562): importing the config imports no JAX.
"""

from parity_jax.kinds import lazy_face

__getattr__ = lazy_face(__name__, {
    "KIND": "kind", "make_plan": "batches", "batch_inputs": "batches", "trial_flops": "batches",
    "NEURON_BUDGET": "batches", "M_FLOOR": "batches"})
