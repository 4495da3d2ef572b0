"""A real-valued target as a sum of orthonormal terms: its terms (what per-term recovery
measures), its population variance (what its success divides the test MSE by) and the one
zero-variance rule (issue 30, item 3).

- Terms. A built-in real-valued target is sum_i c_i phi_i(z) with orthonormal phi_i:
  ``staircase`` and ``polynomial`` are sums of monomials chi_S(z) = prod_{i in S} z_i, which
  are orthonormal on uniform ±1 inputs (Fourier-Walsh: E[chi_S chi_T] = delta_ST) and on
  N(0, I) inputs alike (multilinear, distinct coordinates); ``hermite`` is one term, itself:
  He_p(<u, x>) / sqrt(p!) with |u| = 1 has E = 0 and E[.^2] = 1 on N(0, I). A polynomial's
  repeated monomials are one term (their coefficients added); a term whose coefficient is then
  0 is not a term. Majority, parity and registered targets list no terms.
- Population variance: sum_i c_i^2 (mean 0: no term is constant) for a built-in; a registered
  target's as declared (``register_target(..., variance=...)``), else estimated once on
  ``ESTIMATE_ROWS`` inputs drawn from ``jax.random.key(ESTIMATE_SEED)`` (the same sample in
  every process and run).
- One rule: the variance a study's success divides by (``tasks.success.success_moments``: the
  population's, or the test labels') is refused by :func:`check_variance` when it is below
  ``targets.MIN_RELATIVE_VARIANCE`` times the labels' mean square -- the value the program
  divides by is the value checked, so the check and the normaliser never disagree.

JAX is imported only to estimate a registered target's variance: a config reads this
module without importing JAX.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from parity_jax import errors, targets
from parity_jax.errors import ConfigError, show

# A term: the 0-based positions in z of its monomial (None: the target itself, an
# orthonormal function -- hermite's), and its coefficient (a float32 value, as the labels use).
Term = tuple[tuple[int, ...] | None, float]
ESTIMATE_ROWS = 1 << 16  # inputs a registered target's variance is estimated on
ESTIMATE_SEED = 0  # their key: jax.random.key(ESTIMATE_SEED)
NMSE_MODES = ("population", "test")  # train.nmse: what the test MSE is divided by


def _f32(c: float) -> float:
    """``c`` as the labels hold it (``targets._polynomial`` multiplies by float32(c))."""
    import numpy as np

    return float(np.float32(c))


def _staircase(params: Mapping[str, Any], k: int) -> tuple[Term, ...]:
    return tuple((tuple(range(j)), 1.0) for j in range(1, k + 1))


def _polynomial(params: Mapping[str, Any], k: int) -> tuple[Term, ...]:
    merged: dict[tuple[int, ...], float] = {}
    for term, coef in zip(params["terms"], params["coefs"], strict=True):
        key = tuple(sorted(i - 1 for i in term))
        merged[key] = merged.get(key, 0.0) + _f32(coef)
    return tuple((key, c) for key, c in merged.items() if c != 0)


def _hermite(params: Mapping[str, Any], k: int) -> tuple[Term, ...]:
    return ((None, 1.0),)


_TERMS = {"staircase": _staircase, "polynomial": _polynomial, "hermite": _hermite}


def has_terms(target: str) -> bool:
    """Whether target ``target`` lists its terms (a built-in real-valued one)."""
    return target in _TERMS


def terms_of(target: str, k: int, params: Mapping[str, Any]) -> tuple[Term, ...]:
    """The orthonormal terms of a cell's target (``params``: its parameters), each with its
    coefficient; a ValueError for a target that lists none (``has_terms``)."""
    if target not in _TERMS:
        raise ValueError(f"target {target!r} lists no terms")
    return _TERMS[target](dict(params), k)


def population_moments(target: str, k: int, params: tuple, inputs: str) -> tuple[float, float]:
    """(variance, mean square) of target ``target``'s labels over its input distribution
    ``inputs`` (``params``: the cell's (name, value) pairs): exact for a built-in (sum of its
    squared coefficients), declared for a registered target that says it, else estimated."""
    t = targets.get(target)
    if has_terms(target):
        var = math.fsum(c * c for _, c in terms_of(target, k, dict(params)))
        return var, var
    if t.variance is not None:
        return t.variance, t.variance
    return _estimate(t, k, params, inputs)


@functools.lru_cache(maxsize=256)
def _estimate(t: targets.Target, k: int, params: tuple, inputs: str) -> tuple[float, float]:
    """(variance, mean square) of target ``t`` (the registered entry itself: a name registered
    anew is estimated anew) over ``ESTIMATE_ROWS`` fixed inputs, in float64."""
    import jax
    import numpy as np

    key = jax.random.key(ESTIMATE_SEED)
    shape = (ESTIMATE_ROWS, k)
    z = (jax.random.rademacher(key, shape, dtype="float32") if inputs == "boolean"
         else jax.random.normal(key, shape, dtype="float32"))
    try:
        y = np.asarray(t.fn(z, targets.Args(k=k, params=dict(params))), np.float32)
    except Exception as e:  # a registered function that fails: one line, as check_labels's
        raise ConfigError(f"task.target = {show(t.name)}: its function failed on z of shape "
                          f"{shape} (its population variance): {errors.error_line(e)}") from None
    y = y.astype(np.float64)  # the float32 labels a program sees, summed in float64
    return float(np.mean(np.square(y - np.mean(y)))), float(np.mean(np.square(y)))


def check_variance(target: str, variance: float, square: float, what: str) -> None:
    """The one zero-variance rule: a real-valued target's success divides its test MSE by
    ``variance`` (``what`` says whose: "its population variance", "the test labels of data
    index 3 (n_test = 16)"), which must exceed ``targets.MIN_RELATIVE_VARIANCE`` times the
    labels' mean square ``square``; one ConfigError line naming task.target otherwise."""
    if not variance > targets.MIN_RELATIVE_VARIANCE * max(square, 1e-30):
        raise ConfigError(f"task.target = {show(target)}: {what} is {variance:.3g}; a "
                          "real-valued target's success divides the test MSE by it (a constant "
                          "target has nothing to learn or measure)")


def check_recover(target: str, recover: float | None) -> None:
    """``train.recover`` needs a target that lists its terms."""
    if recover is not None and not has_terms(target):
        raise ConfigError(f"train.recover = {recover}: target = {show(target)} lists no terms "
                          f"to recover (terms are listed for {', '.join(sorted(_TERMS))}; a "
                          "±1 or registered target has none)")
