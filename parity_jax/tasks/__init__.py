"""Tasks: what a batch of trials learns. Each task owns its data, its minibatch draw and its
evaluation (docs/DESIGN.md §2); the core (``parity_jax.core``) trains any of them.

- ``parity``: the (n, k) sparse task, data generated inside the program: parity by default,
  or any target of ``targets`` (majority, staircase, polynomial, hermite, registered ones) on
  Boolean or Gaussian inputs.
- ``targets``: the registry of targets of the k secret coordinates; ``sample``: a trial's
  training rows as it sees them.
- ``xy``: tabular classification on shared (X, y) arrays, per-trial training subsets.

``Task`` is the contract a task's static structure (the ``task`` of a program's shape) keeps
with the core and the steps; ``KernelTask`` adds what the fused kernel reads.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from parity_jax.models import Params

# What the core passes through without reading (optax's style: names for the roles of pytrees).
PyTree = Any  # arrays in a JAX pytree: a flax struct dataclass, tuple, dict or None
TaskInputs = PyTree  # a batch's per-group task inputs (sparse.Inputs, xy.Inputs): Batch.task
SharedInputs = PyTree  # the arrays every group of a batch reads (xy.Shared) or None
Streams = PyTree  # per-group data streams, made by ``Task.prepare`` (sparse.Data, xy.Inputs)


@runtime_checkable
class Task(Protocol):
    """A task's static structure in a program (hashable: part of its shape). ``inputs`` are
    the batch's per-group (or per-trial) task inputs, ``shared`` the arrays every group reads;
    ``prepare`` turns them into per-group ``streams`` and what the steps and evaluations
    share."""

    packed: bool  # a group's P trials share their minibatches (else one trial per group)
    batch: int  # minibatch size

    @property
    def features(self) -> int:
        """Input features of the model (n, or d)."""
        ...

    @property
    def train_rows(self) -> int:
        """Rows of the (padded) training data a program holds."""
        ...

    @property
    def label(self) -> str:
        """What the program learns, for ``plan``'s table (a target's name, ...)."""
        ...

    def typed(self, inputs: TaskInputs) -> TaskInputs:
        """``inputs`` with raw key data (multi-host global arrays) wrapped as typed keys."""
        ...

    def prepare(self, inputs: TaskInputs, shared: SharedInputs) -> tuple[Streams, PyTree]:
        """(streams, shared) of a batch: per-group ``Streams`` and the prepared ``shared`` that
        every step and evaluation reads."""
        ...

    def initial(self, params: Params, inputs: TaskInputs) -> Params:
        """The parameters the trials start from, given their model's initialisation."""
        ...

    def minibatch(self, stream: PyTree, t: jax.Array,
                  shared: PyTree) -> tuple[jax.Array, jax.Array]:
        """Step t's (B, features) inputs and (B,) labels of one group's stream."""
        ...

    def interval_draws(self, stream: PyTree, ts: jax.Array) -> PyTree:
        """What each of the steps ``ts`` draws, computed up front (``drawn_batch`` reads one)."""
        ...

    def drawn_batch(self, stream: PyTree, draw: PyTree,
                    shared: PyTree) -> tuple[jax.Array, jax.Array]:
        """The minibatch of one of ``interval_draws``' draws."""
        ...

    def group_loss(self, loss: str, params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        """What a group's autodiff step differentiates."""
        ...

    def evaluate(self, loss: str, params: Params, streams: Streams, shared: PyTree,
                 with_loss: bool) -> dict:
        """Per-trial metrics of one evaluation (the tracker's ``update`` reads them)."""
        ...

    def final(self, loss: str, params: Params, streams: Streams, shared: PyTree) -> dict:
        """Per-trial metrics measured once, at the end (the tracker's ``outcome`` reads them)."""
        ...


@runtime_checkable
class KernelTask(Task, Protocol):
    """A task the fused kernel (``parity_jax.kernel``) can train: its sizes and the rows it
    gathers an interval's minibatches from."""

    n: int
    M: int
    n_test: int
    online: bool

    def interval_source(self, stream: PyTree,
                        ts: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Rows (R, n), labels (R,) and each step's row indices (len(ts), batch)."""
        ...


def typed_key(key: jax.Array) -> jax.Array:
    """A typed key, from raw key data if need be (multi-host global arrays carry keys as
    uint32 data)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def interval_indices(order_key: jax.Array, ts: jax.Array, m: jax.Array, batch: int):
    """(len(ts), batch) minibatch indices of the steps ``ts`` in one vectorised draw (the same
    numbers as one ``minibatch_indices`` call per step: on a CPU each threefry call is a small
    loop of its own)."""
    return jax.vmap(lambda t: minibatch_indices(order_key, t, m, batch))(ts)


def minibatch_indices(order_key: jax.Array, t: jax.Array, m: jax.Array, batch: int) -> jax.Array:
    """Indices of step t's minibatch: ``batch`` draws from [0, m) with replacement, from
    ``fold_in(order_key, t)`` -- the one minibatch draw of every task."""
    return jax.random.randint(jax.random.fold_in(order_key, t), (batch,), 0, m)
