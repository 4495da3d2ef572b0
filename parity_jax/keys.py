"""A trial's random keys, from its identity alone (docs/DESIGN.md §1.9, §1.10): every kind of
study derives them here, so a trial's numbers never depend on the batch, shard or devices it
runs in.

Parity trials: a data key ``fold_in(fold_in(study_data_root, id("data", n, k)), data index)``
and an init key ``fold_in(fold_in(study_init_root, id("init", n)), init index)``, the indices
given by the cell's ``vary``; trials with one data key share their data and minibatches.
Tabular trials: one key per trial from every setting that defines it and its seed, split into
an init key and a minibatch-order key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# Tags of the study key's sub-streams (parity studies).
DATA_TAG, INIT_TAG = 1, 2
# Sub-streams of a tabular trial's key.
TABULAR_INIT, TABULAR_ORDER = 0, 1


def stable_int(*parts: Any) -> int:
    """A 31-bit integer id of ``parts``, stable across processes (for fold_in)."""
    return int(hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def data_id(n: int, k: int) -> int:
    """The id of a parity cell's data stream family: trials of one (n, k) draw from it."""
    return stable_int("data", n, k)


def init_id(n: int) -> int:
    """The id of a parity cell's init stream family."""
    return stable_int("init", n)


def _fold2(root: jax.Array, a: np.ndarray, b: np.ndarray) -> jax.Array:
    """``fold_in(fold_in(root, a[i]), b[i])`` for every i (one vectorised call)."""
    return jax.vmap(lambda x, y: jax.random.fold_in(jax.random.fold_in(root, x), y))(
        jnp.asarray(a, jnp.int32), jnp.asarray(b, jnp.int32))


def parity_data_keys(study_seed: int, ids: np.ndarray, indices: np.ndarray) -> jax.Array:
    """The data keys of parity streams ``(data_id, data index)``: one per element."""
    root = jax.random.fold_in(jax.random.key(study_seed), DATA_TAG)
    return _fold2(root, np.ravel(ids), np.ravel(indices)).reshape(np.shape(ids))


def parity_init_keys(study_seed: int, ids: np.ndarray, indices: np.ndarray) -> jax.Array:
    """The init keys of parity trials ``(init_id, init index)``: one per element."""
    root = jax.random.fold_in(jax.random.key(study_seed), INIT_TAG)
    return _fold2(root, np.ravel(ids), np.ravel(indices)).reshape(np.shape(ids))


def tabular_keys(study_seed: int, ids: list[int]) -> tuple[jax.Array, jax.Array]:
    """(init keys, minibatch-order keys) of tabular trials with these ids (``tabular_id``)."""
    base = jax.random.key(study_seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.array(ids, jnp.uint32))
    return (jax.vmap(lambda k: jax.random.fold_in(k, TABULAR_INIT))(keys),
            jax.vmap(lambda k: jax.random.fold_in(k, TABULAR_ORDER))(keys))


def tabular_id(cell, seed: int) -> int:
    """A tabular MLP trial's id: every setting that defines it, and its seed."""
    return stable_int(cell.dataset, cell.fraction, cell.width, cell.depth, cell.init, cell.s,
                      cell.optimizer, cell.lr, seed)
