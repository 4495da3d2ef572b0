"""Targets of the k secret coordinates z = x_S (S an ordered draw of k distinct coordinates):
what a sparse task's label is (docs/DESIGN.md §1.1; issue 23).

A target is a name in a small registry: a jnp function of z (rows, k) -> y (rows,), whether it
is ±1-valued (``binary``: declared with it, never guessed), the inputs it allows, and its
parameter check. Built-ins:

- ``parity``: prod z (Boolean inputs);
- ``majority``: sign(sum z), k odd;
- ``staircase``: sum_{j<=k} prod_{i<=j} z_i;
- ``polynomial``: sum_j coefs[j] prod_{i in terms[j]} z_i, ``terms`` of positions 1..k (a leap
  function z1 + z1 z2 z3 is terms ((1,), (1, 2, 3)), coefs (1, 1));
- ``hermite``: He_p(<u, x>) / sqrt(p!), u = signs / sqrt(k) on S (random signs from the data
  key), p = ``degree``; Gaussian inputs only.

A ±1 target succeeds by test error <= threshold; a real-valued one by the normalized test MSE
(MSE / Var y, the variance over the test set) <= threshold: :func:`metric`. Users add targets
with :func:`register_target`; the name, not the code, is a study's identity.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from parity_jax.config import INPUTS, MAX_DEGREE
from parity_jax.errors import ConfigError, show


class Args(NamedTuple):
    """A target's parameters: the static ones of its task, and a data stream's hermite signs."""

    k: int = 0
    terms: tuple[tuple[int, ...], ...] | None = None
    coefs: tuple[float, ...] | None = None
    degree: int | None = None  # hermite's p
    signs: jax.Array | None = None  # (k,) ±1: hermite's direction u = signs / sqrt(k) on S


@dataclasses.dataclass(frozen=True)
class Target:
    """One registered target."""

    name: str
    fn: Callable[[jax.Array, Args], jax.Array]  # z (rows, k), args -> y (rows,)
    binary: bool  # ±1-valued: success by test error, else by normalized test MSE
    inputs: tuple[str, ...]  # the input distributions it is defined on
    params: tuple[str, ...] = ()  # the task parameters it reads: "terms", "coefs", "degree"
    source: Callable | None = None  # the function given to register_target (None: built-in)


def _parity(z, args):
    return jnp.prod(z, axis=-1)


def _majority(z, args):
    return jnp.sign(jnp.sum(z, axis=-1))


def _staircase(z, args):
    return jnp.sum(jnp.cumprod(z, axis=-1), axis=-1)


def _polynomial(z, args):
    y = jnp.zeros(z.shape[:-1], z.dtype)
    for term, coef in zip(args.terms, args.coefs, strict=True):
        y = y + jnp.float32(coef) * jnp.prod(z[..., [i - 1 for i in term]], axis=-1)
    return y


def hermite_polynomial(p: int, t: jax.Array) -> jax.Array:
    """The probabilists' Hermite polynomial He_p(t): He_0 = 1, He_1 = t,
    He_{j+1} = t He_j - j He_{j-1}."""
    prev, cur = jnp.ones_like(t), t
    if p == 0:
        return prev
    for j in range(1, p):
        prev, cur = cur, t * cur - j * prev
    return cur


def _hermite(z, args):
    # a sum, not a dot: exact float32 whatever the default matmul precision (TF32 on GPUs)
    t = jnp.sum(z * args.signs[None, :], axis=-1) / jnp.float32(math.sqrt(z.shape[-1]))
    p = args.degree
    return hermite_polynomial(p, t) / jnp.float32(math.sqrt(math.factorial(p)))


_BUILTINS = {t.name: t for t in (
    Target("parity", _parity, binary=True, inputs=("boolean",)),
    Target("majority", _majority, binary=True, inputs=INPUTS),
    Target("staircase", _staircase, binary=False, inputs=INPUTS),
    Target("polynomial", _polynomial, binary=False, inputs=INPUTS, params=("terms", "coefs")),
    Target("hermite", _hermite, binary=False, inputs=("gaussian",), params=("degree",)),
)}
_TARGETS: dict[str, Target] = dict(_BUILTINS)


def register_target(name: str, fn: Callable[[jax.Array], jax.Array], *, binary: bool = False,
                    inputs: tuple[str, ...] = INPUTS) -> None:
    """Registers ``fn`` as target ``name`` for studies of this process (``task.target``).

    Args:
      name: the target's name; a study's fingerprint holds the name, not the code, so resuming
        a store with another function of the same name is the caller's responsibility.
      fn: a jnp function of z (rows, k) -> y (rows,), traced inside the compiled program.
      binary: whether y is always ±1 (success by test error; label noise allowed); otherwise
        success is by normalized test MSE and the loss must be square.
      inputs: the input distributions ("boolean", "gaussian") it is defined on.

    Raises:
      ConfigError: a built-in's name, a name already registered to another function, or bad
        arguments. Registering the same function again is allowed (and changes nothing).
    """
    if not isinstance(name, str) or not name or not name.isprintable():
        raise ConfigError(f"target = {show(name)}: a target's name must be a non-empty string")
    if name in _BUILTINS:
        raise ConfigError(f"target = {show(name)}: the name of a built-in target; choose another "
                          "name")
    if not callable(fn):
        raise ConfigError(f"target = {show(name)}: fn must be a function of z (rows, k), got "
                          f"{type(fn).__name__}")
    if not isinstance(binary, bool):
        raise ConfigError(f"target = {show(name)}: binary must be a bool, got "
                          f"{type(binary).__name__}")
    inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
    if not inputs or any(i not in INPUTS for i in inputs):
        raise ConfigError(f"target = {show(name)}: inputs = {list(inputs)}: each must be one of "
                          f"{', '.join(INPUTS)}")
    old = _TARGETS.get(name)
    if old is not None and (old.source is not fn or old.binary != binary
                            or old.inputs != inputs):
        # a program compiled for this name holds the first function: another one under the
        # same name would silently train the old target
        raise ConfigError(f"target = {show(name)}: already registered (to another function or "
                          "settings); choose another name")
    _TARGETS[name] = Target(name, lambda z, args: fn(z), binary=binary, inputs=inputs,
                            source=fn)


def get(name: str) -> Target:
    """The registered target ``name``; a ConfigError naming task.target if there is none."""
    check_name(name)
    return _TARGETS[name]


def registered() -> list[str]:
    """The names of every registered target, sorted."""
    return sorted(_TARGETS)


def is_binary(name: str) -> bool:
    """Whether target ``name`` is ±1-valued (as declared)."""
    return get(name).binary


def metric(name: str) -> str:
    """What success of target ``name`` measures: "error" (test error, a ±1 target) or "nmse"
    (normalized test MSE, a real-valued one); either way the tracker's "error" <= threshold."""
    return "error" if is_binary(name) else "nmse"


def values(name: str, z: jax.Array, args: Args | None = None) -> jax.Array:
    """y (rows,) of target ``name`` at z (rows, k), float32."""
    return get(name).fn(z, Args() if args is None else args).astype(jnp.float32)


# ---- checks: one ConfigError line naming the field --------------------------------------------


def check_name(target: Any) -> None:
    if not isinstance(target, str) or target not in _TARGETS:
        raise ConfigError(f"task.target = {show(target)}: not a registered target; registered: "
                          f"{', '.join(registered())} (a target registered from Python, "
                          "pj.register_target, exists only in the process that registered it)")


def check_inputs(target: str, inputs: str) -> None:
    if inputs not in INPUTS:
        raise ConfigError(f"task.inputs = {show(inputs)}: must be one of {', '.join(INPUTS)}")
    allowed = get(target).inputs
    if inputs not in allowed:
        raise ConfigError(f"task.inputs = {show(inputs)}: target = {show(target)} needs "
                          f"{' or '.join(allowed)} inputs")


def check_k(target: str, k: int) -> None:
    if target == "majority" and k % 2 == 0:
        raise ConfigError(f"task.k = {k}: must be odd for target = {show(target)}")


def check_degree(target: str, degree: int | None) -> None:
    if "degree" not in get(target).params:
        return
    if degree is None:
        raise ConfigError(f"task.degree: required for target = {show(target)} (the Hermite "
                          f"degree p, an integer in 1..{MAX_DEGREE})")
    if isinstance(degree, bool) or not isinstance(degree, int) or not 1 <= degree <= MAX_DEGREE:
        raise ConfigError(f"task.degree = {show(degree)}: must be an integer in 1..{MAX_DEGREE}")


def check_polynomial(target: str, terms, coefs, k: int) -> None:
    """``terms``: a non-empty list of non-empty lists of distinct positions in 1..k; ``coefs``:
    one number per term."""
    if "terms" not in get(target).params:
        return
    if terms is None:
        raise ConfigError(f"task.terms: required for target = {show(target)} (lists of positions "
                          "in 1..k, e.g. [[1], [1, 2, 3]])")
    if coefs is None:
        raise ConfigError(f"task.coefs: required for target = {show(target)} (one number per "
                          "term)")
    check_terms(terms, k)
    check_coefs(coefs, terms)


def check_terms(terms, k: int | None = None) -> None:
    """The shape of ``terms`` (and, given k, its positions)."""
    if not isinstance(terms, list | tuple) or not terms:
        raise ConfigError(f"task.terms = {show(terms)}: must be a non-empty list of terms, each a "
                          "list of positions in 1..k")
    for term in terms:
        if (not isinstance(term, list | tuple) or not term
                or any(isinstance(i, bool) or not isinstance(i, int) for i in term)):
            raise ConfigError(f"task.terms: term {show(term)} must be a non-empty list of "
                              "positions (integers in 1..k)")
        if len(set(term)) != len(term):
            raise ConfigError(f"task.terms: term {show(term)} repeats a position")
        for i in term:
            if i < 1:
                raise ConfigError(f"task.terms: position {i} < 1 (positions are 1..k)")
            if k is not None and i > k:
                raise ConfigError(f"task.terms: position {i} > k = {k}")


def check_coefs(coefs, terms=None) -> None:
    """``coefs``: finite numbers, one per term of ``terms`` (when given)."""
    if not isinstance(coefs, list | tuple) or not coefs or any(
            isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c)
            for c in coefs):
        raise ConfigError(f"task.coefs = {show(coefs)}: must be a non-empty list of finite "
                          "numbers, one per term")
    if terms is not None and len(coefs) != len(terms):
        raise ConfigError(f"task.coefs: {len(coefs)} values for {len(terms)} terms")


def check_noise(target: str, noise: float) -> None:
    if noise and not is_binary(target):
        raise ConfigError(f"task.noise = {noise}: label noise flips ±1 labels; target = "
                          f"{show(target)} is real-valued (use noise = 0)")


def check_loss(target: str, loss: str) -> None:
    """A real-valued target trains with the square loss (hinge and logistic assume ±1 labels)."""
    if loss != "square" and not is_binary(target):
        raise ConfigError(f"train.loss = {show(loss)}: target = {show(target)} is real-valued; use "
                          "loss = \"square\"")


def check(target: str, *, k: int, inputs: str = "boolean", terms=None, coefs=None,
          degree: int | None = None, noise: float = 0.0, loss: str | None = None) -> None:
    """Every rule of a target's settings, the first broken one raised as a ConfigError."""
    check_name(target)
    check_inputs(target, inputs)
    check_k(target, k)
    check_polynomial(target, terms, coefs, k)
    check_degree(target, degree)
    check_noise(target, noise)
    if loss is not None:
        check_loss(target, loss)
