"""The tabular study kind, one package: its config (``config``), its report (``report``) and
the kind itself (``kind``: its plan, stored rows and ``KIND``).

Names are imported on first use (PEP 562): importing the config imports no JAX.
"""

from parity_jax.kinds import lazy_face

__getattr__ = lazy_face(__name__, {"KIND": "kind"})
