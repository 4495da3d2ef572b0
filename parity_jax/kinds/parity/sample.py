"""A task's data as a trial sees it, for users and tests (``pj.sample``): anyone can check the
targets independently of the training program. Its labels are checked as a run's are
(``targets.check_labels``)."""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from parity_jax import config, errors, keys, targets
from parity_jax.kinds.parity.config import Task, check_task
from parity_jax.tasks import sparse


class Sample(NamedTuple):
    """A trial's training rows: x (rows, n) float32, y (rows,) float32 (after label noise), S
    (k,) int: the secret coordinates in order (z = x[:, S])."""

    x: np.ndarray
    y: np.ndarray
    S: np.ndarray


def sample(task: Task, seed: int, rows: int, index: int = 0) -> Sample:
    """The first ``rows`` rows of the training set a trial of ``task`` sees in a study of seed
    ``seed``, with its secret coordinates S.

    Args:
      task: a ``Task`` of single values (n, k, inputs, target, terms, coefs, degree, noise;
        m, n_test and online play no part).
      seed: the study's seed.
      rows: how many rows (the first m rows are a trial's training set of size m).
      index: the data index: the trial's seed index under ``vary = "both"`` or ``"data"``
        (``Cell.seed_indices``), ``data_seed`` under ``vary = "init"``.

    Returns:
      ``Sample(x, y, S)`` as numpy arrays.
    """
    d = check_task(task)
    for name, v, lo, hi in (("seed", seed, 0, config.SEED_MAX),
                            ("rows", rows, 1, config.INT32_MAX),
                            ("index", index, 0, config.INT32_MAX)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise errors.ConfigError(f"{name} = {v!r}: must be an integer in {lo}..{hi}")
    n, k = d["n"], d["k"]
    if rows * n > config.INT32_MAX:  # as the config bounds m x n: one training set
        raise errors.ConfigError(f"rows = {rows}: must be at most {config.INT32_MAX // n} for "
                                 f"n = {n} (rows x n <= {config.INT32_MAX})")
    static = sparse.SparseTask(n=n, M=rows, batch=1, n_test=1,
                         **sparse.target_fields(SimpleNamespace(**d)))
    key = keys.parity_data_keys(seed, np.array([keys.data_id(n, k)]), np.array([index]))[0]
    x, y, S = _draw(static, k, key, np.float32(d["noise"]))
    if not static.parity:
        targets.check_labels(d["target"], y, rows, variance=False)
    return Sample(np.asarray(x), np.asarray(y), np.asarray(S))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _draw(static: sparse.SparseTask, k: int, key: jax.Array, noise: jax.Array):
    """(x_train, y_train, S) of the stream with this data key, as the program draws them (a
    parity program's k is an int32 input)."""
    data = static.make_data(key, jnp.int32(k), static.M, noise, static.M, static.n_test)
    return data.x_train, data.y_train, sparse.ordered_secret(key, static.n, k)[1]
