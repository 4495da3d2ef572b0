"""A task's data as a trial sees it, for users and tests (``pj.sample``): anyone can check the
targets independently of the training program. Its labels are checked as a run's are
(``targets.check_labels``)."""

from __future__ import annotations

import dataclasses
import functools
from types import SimpleNamespace
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from parity_jax import config, errors, keys, targets, terms
from parity_jax.errors import ConfigError, show
from parity_jax.kinds.parity.config import _TASK_FIELDS, RULES, Study, Task
from parity_jax.tasks import sparse, success


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
        check_labels(static, key, min(rows, PROBE_ROWS), "train")
    x, y, S = _draw(static, k, key, np.float32(d["noise"]))
    return Sample(np.asarray(x), np.asarray(y), np.asarray(S))


def check_task(task: Task) -> dict:
    """The settings of a task of single values (``sample``), each checked by its rule and the
    target's rules; returns them as a dict (the cell's task settings, its target's parameters
    under ``params``)."""
    if not isinstance(task, Task):
        raise ConfigError(f"task: must be a Task, got {type(task).__name__}")
    d: dict[str, Any] = {}
    for name in (*_TASK_FIELDS, *(p for p, _ in task.params)):
        key = f"task.{name}"
        rule = RULES.get(key) or Study.rule_for(key)
        v = getattr(task, name)
        if rule.grid and isinstance(v, list | tuple):
            raise ConfigError(f"{key} = {show(v)}: must be one value here (not a grid axis)")
        rule.check(key, v)
        d[name] = v
    if d["k"] > d["n"]:
        raise ConfigError(f"task.k = {d['k']}: must be an integer in 1..n (n = {d['n']})")
    targets.check_name(d["target"])
    d["params"] = targets.cell_params(d["target"], dict(task.params))
    targets.check(d["target"], k=d["k"], inputs=d["inputs"], params=dict(d["params"]),
                  noise=d["noise"])
    return d


PROBE_ROWS = 4096  # rows a target's labels are checked on before a program uses them
CHUNK_FLOATS = 1 << 24  # input floats one call of the test sets' check holds (64 MiB)


def _data_key(seed: int, n: int, k: int, index: int) -> jax.Array:
    return _data_keys(seed, n, k, [index])[0]


def _data_keys(seed: int, n: int, k: int, indices) -> jax.Array:
    indices = np.asarray(indices, np.int32)
    return keys.parity_data_keys(seed, np.full(len(indices), keys.data_id(n, k)), indices)


def check_labels(static: sparse.SparseTask, key: jax.Array, rows: int,
                 stream: str = "train") -> None:
    """The labels of ``static``'s target on the first ``rows`` rows of the training or test
    set (``stream``) of the data stream with this key, evaluated eagerly (not traced: a
    function returning the wrong shape fails here, with one line) and checked by
    ``targets.check_labels``."""
    x = sparse.input_set(static.inputs, key, stream, rows, static.n)
    coords = sparse.ordered_secret(key, static.n, static.k)[1]
    args = targets.Args(k=static.k, params=dict(static.params),
                        draw=sparse.target_draw(static, key))
    try:
        y = targets.get(static.target).fn(sparse.target_z(static, x, coords), args)
    except Exception as e:  # a registered function that fails on z (rows, k): one line
        raise errors.ConfigError(f"task.target = {errors.show(static.target)}: its function "
                                 f"failed on z of shape ({rows}, {static.k}): "
                                 f"{errors.error_line(e)}") from None
    targets.check_labels(static.target, np.asarray(y), rows)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _spread(static: sparse.SparseTask, keys_: jax.Array, n_test: int) -> jax.Array:
    """(len(keys_), 2): what each stream's success divides by and the labels' mean square
    (``success.success_moments``, the program's own function, on its test labels)."""
    def one(key):
        return jnp.stack(success.success_moments(static, sparse.test_labels(static, key,
                                                                            n_test)))

    return jax.vmap(one)(keys_)


def check_study(study, cells: list) -> None:
    """Every target of ``study`` other than parity, checked before anything is stored, per
    distinct (target, parameters, inputs, k, n, n_test, nmse) of its cells: the test labels
    of its first data stream through ``check_labels`` (finite float32 numbers of shape
    (rows,), ±1 where the target says so, a function that runs), and for a real-valued target
    the one zero-variance rule (``terms.check_variance``) on what its success divides by: its
    population variance (train.nmse = "population"), or the test labels' variance of every
    data stream the study draws (each seed index's, or ``data_seed``'s; "test") -- one
    ConfigError line, never a silent p = 0 or a 'diverged' trial."""
    streams: dict[tuple, tuple] = {}
    for c in cells:
        if c.target == targets.DEFAULT:
            continue
        ident = (c.target, c.params, c.inputs, c.k, c.n, c.n_test, c.nmse)
        streams.setdefault(ident, (c, set()))[1].update(
            c.seed_indices(i)[0] for i in range(study.seeds))
    for (target, _, _, k, n, n_test, how), (cell, indices) in streams.items():
        static = sparse.SparseTask(n=n, M=1, batch=1, n_test=1, inputs=cell.inputs,
                                   target=target, k=k, params=cell.params)
        order = sorted(indices)
        check_labels(static, _data_key(study.seed, n, k, order[0]), min(n_test, PROBE_ROWS),
                     "test")
        if targets.get(target).binary:
            continue
        static = dataclasses.replace(static, population=sparse.target_fields(cell).get(
            "population", ()))  # the program's normaliser, checked below
        if how == "population":
            var, square = map(float, success.success_moments(static, None))
            terms.check_variance(target, var, square, "its population variance "
                                 "(train.nmse = \"population\")")
            continue
        if n_test < 2:
            raise errors.ConfigError(f"task.n_test = {n_test}: must be at least 2 for target "
                                     f"= {errors.show(target)} with train.nmse = "
                                     "\"test\" (its success divides the test MSE by the "
                                     "test labels' variance)")
        chunk = max(1, min(len(order), CHUNK_FLOATS // (n_test * n)))
        for start in range(0, len(order), chunk):
            part = order[start:start + chunk]
            part = part + [part[-1]] * (chunk - len(part))  # one shape: one compile
            spread = np.asarray(_spread(static, _data_keys(study.seed, n, k, part), n_test))
            for index, (var, square) in zip(part, spread, strict=True):
                terms.check_variance(target, float(var), float(square),
                                     f"the variance of the test labels of data index {index} "
                                     f"(n_test = {n_test}, train.nmse = \"test\")")


@functools.partial(jax.jit, static_argnums=(0, 1))
def _draw(static: sparse.SparseTask, k: int, key: jax.Array, noise: jax.Array):
    """(x_train, y_train, S) of the stream with this data key, as the program draws them (a
    parity program's k is an int32 input)."""
    data = static.make_data(key, jnp.int32(k), static.M, noise, static.M, static.n_test)
    return data.x_train, data.y_train, sparse.ordered_secret(key, static.n, k)[1]
