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
      task: a ``Task`` of single values (n, k, inputs, target and its parameters, noise; m,
        n_test and online play no part).
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
    key = _data_key(seed, n, k, index)
    if not static.parity:  # a label the program cannot use is refused before it is drawn
        check_labels(static, key, min(rows, PROBE_ROWS), variance=False)
    x, y, S = _draw(static, k, key, np.float32(d["noise"]))
    return Sample(np.asarray(x), np.asarray(y), np.asarray(S))


PROBE_ROWS = 4096  # rows a target's labels are checked on before a program uses them


def _data_key(seed: int, n: int, k: int, index: int) -> jax.Array:
    return keys.parity_data_keys(seed, np.array([keys.data_id(n, k)]), np.array([index]))[0]


def check_labels(static: sparse.SparseTask, key: jax.Array, rows: int,
                 variance: bool = True) -> None:
    """The labels of ``static``'s target on ``rows`` input rows of the stream with this data
    key, evaluated eagerly (not traced: a function returning the wrong shape fails here, with
    one line) and checked by ``targets.check_labels``."""
    x = sparse.input_rows(static.inputs, key, rows, static.n)
    coords = sparse.ordered_secret(key, static.n, static.k)[1]
    args = targets.Args(k=static.k, params=dict(static.params),
                        draw=sparse.target_draw(static, key))
    try:
        y = targets.get(static.target).fn(x[:, coords], args)
    except Exception as e:  # a registered function that fails on z (rows, k): one line
        raise errors.ConfigError(f"task.target = {errors.show(static.target)}: its function "
                                 f"failed on z of shape ({rows}, {static.k}): "
                                 f"{errors.error_line(e)}") from None
    targets.check_labels(static.target, np.asarray(y), rows, variance=variance)


def check_study(study, cells: list) -> None:
    """Every target of ``study`` other than parity, checked on the labels of each distinct
    (target, parameters, inputs, k, n, n_test) of its cells -- n_test rows of its first data
    stream -- before anything is stored: labels that are not finite float32 numbers of shape
    (rows,), not ±1 where the target says so, or a real-valued target constant over a test set
    (its normalized MSE has nothing to divide by) are one ConfigError line, never a silent
    p = 0 or a 'diverged' trial."""
    seen = set()
    for c in cells:
        if c.target == targets.DEFAULT:
            continue
        ident = (c.target, c.params, c.inputs, c.k, c.n, c.n_test)
        if ident in seen:
            continue
        seen.add(ident)
        static = sparse.SparseTask(n=c.n, M=1, batch=1, n_test=1, **sparse.target_fields(c))
        index, _ = c.seed_indices(0)
        check_labels(static, _data_key(study.seed, c.n, c.k, index), min(c.n_test, PROBE_ROWS))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _draw(static: sparse.SparseTask, k: int, key: jax.Array, noise: jax.Array):
    """(x_train, y_train, S) of the stream with this data key, as the program draws them (a
    parity program's k is an int32 input)."""
    data = static.make_data(key, jnp.int32(k), static.M, noise, static.M, static.n_test)
    return data.x_train, data.y_train, sparse.ordered_secret(key, static.n, k)[1]
