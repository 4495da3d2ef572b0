"""Targets of the k secret coordinates z = x_S (S an ordered draw of k distinct coordinates):
what a sparse task's label is (docs/DESIGN.md §1.1).

A target is one entry of a small registry, and everything else derives from it: its label
function of z (rows, k) -> y (rows,), whether it is ±1-valued (``binary``: declared, never
guessed), the inputs it allows, its k rule, its parameters (each a name, a rule with its type
and range, a default, and whether it may be a grid axis), and any per-stream draw from the data
key. The study's ``[task]`` table, a cell, the stored record, ``plan``'s task column and
``pj.sample`` read the parameters from here. Built-ins:

- ``parity``: prod z (Boolean inputs);
- ``majority``: sign(sum z), k odd;
- ``staircase``: sum_{j<=k} prod_{i<=j} z_i;
- ``polynomial``: sum_j coefs[j] prod_{i in terms[j]} z_i, ``terms`` of positions 1..k (a leap
  function z1 + z1 z2 z3 is terms ((1,), (1, 2, 3)), coefs (1, 1));
- ``hermite``: He_p(<u, x>) / sqrt(p!), p = ``degree``; Gaussian inputs only. ``direction``
  "sparse" (the default): u = signs / sqrt(k) on S (random signs drawn from the data key);
  "sphere": u uniform on the unit sphere of R^n (a normalised Gaussian vector drawn from the
  data key), independent of S: the single-index model of online-SGD theory.

A ±1 target succeeds by test error <= threshold; a real-valued one by the normalized test MSE
(MSE / Var y) <= threshold: :func:`metric`, Var y the target's population variance
(``train.nmse = "population"``) or the test set's (``"test"``): ``parity_jax.terms``.
Users add targets with :func:`register_target`; the name, not the code, is a study's identity.

JAX is imported by the label functions when they are traced, not here: a study's config reads
the registry without importing JAX.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from parity_jax.config import Rule, choice_rule, float_rule, int_rule
from parity_jax.errors import ConfigError, bad, show

if TYPE_CHECKING:
    import jax

INPUTS = ("boolean", "gaussian")  # task.inputs: uniform ±1, or N(0, I_n)
MAX_DEGREE = 10  # hermite's degree p: He_p grows as t^p
# The variance a real-valued target's success divides its MSE by must be at least this, relative
# to the labels' mean square (``terms.check_variance``): a constant target has nothing to learn.
MIN_RELATIVE_VARIANCE = 1e-6
FLOAT32_MAX = 3.4028234663852886e38
ParamValue = int | float | tuple  # a target parameter's value, as a cell holds it (hashable)


class Args(NamedTuple):
    """What a target's label function reads besides z: the static k, its parameters (by
    name, as the cell holds them) and its per-stream draw (None if it has none)."""

    k: int = 0
    params: Mapping[str, Any] = {}
    draw: jax.Array | None = None


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of a target: ``[task]`` key ``name``, checked by ``rule`` (its ``grid``
    says whether it may be a list of values, a grid axis); ``default`` None: required."""

    name: str
    rule: Rule
    default: Any = None
    doc: str = ""
    hashable: Callable[[Any], Any] = lambda v: v  # as a cell holds it (lists -> tuples)
    # the value meaning what the target did before the parameter existed: left out of a cell
    # (and a study), so cells and stores from before keep their identity
    implicit: Any = None
    strict: bool = False  # given for a target without it: refused, not ignored


@dataclasses.dataclass(frozen=True)
class Target:
    """One registered target."""

    name: str
    fn: Callable[[jax.Array, Args], jax.Array]  # z (rows, k), args -> y (rows,)
    binary: bool  # ±1-valued: success by test error, else by normalized test MSE
    inputs: tuple[str, ...]  # the input distributions it is defined on
    params: tuple[Param, ...] = ()
    k_rule: Callable[[int], str | None] | None = None  # what k must be, or None when allowed
    # (key, k, n, params) -> a stream's draw
    draw: Callable[[jax.Array, int, int, Mapping[str, Any]], jax.Array] | None = None
    # params -> whether its function reads every coordinate, x (rows, n), instead of z = x_S
    dense: Callable[[Mapping[str, Any]], bool] | None = None
    check: Callable[[Mapping[str, Any], int], None] | None = None  # params that relate (k)
    source: Callable | None = None  # the function given to register_target (None: built-in)
    variance: float | None = None  # a registered target's declared population variance


# ---- the built-ins ---------------------------------------------------------------------------


def _parity(z, args):
    import jax.numpy as jnp

    return jnp.prod(z, axis=-1)


def _majority(z, args):
    import jax.numpy as jnp

    return jnp.sign(jnp.sum(z, axis=-1))


def _staircase(z, args):
    import jax.numpy as jnp

    return jnp.sum(jnp.cumprod(z, axis=-1), axis=-1)


def _polynomial(z, args):
    import jax.numpy as jnp

    y = jnp.zeros(z.shape[:-1], z.dtype)
    for term, coef in zip(args.params["terms"], args.params["coefs"], strict=True):
        y = y + jnp.float32(coef) * jnp.prod(z[..., [i - 1 for i in term]], axis=-1)
    return y


def hermite_polynomial(p: int, t: jax.Array) -> jax.Array:
    """The probabilists' Hermite polynomial He_p(t): He_0 = 1, He_1 = t,
    He_{j+1} = t He_j - j He_{j-1}."""
    import jax.numpy as jnp

    prev, cur = jnp.ones_like(t), t
    if p == 0:
        return prev
    for j in range(1, p):
        prev, cur = cur, t * cur - j * prev
    return cur


def _hermite(z, args):
    import jax.numpy as jnp

    # a sum, not a dot: exact float32 whatever the default matmul precision (TF32 on GPUs)
    t = jnp.sum(z * args.draw[None, :], axis=-1)
    if not _sphere(args.params):  # z = x_S, the draw its signs: u = signs / sqrt(k)
        t = t / jnp.float32(math.sqrt(z.shape[-1]))
    p = args.params["degree"]
    return hermite_polynomial(p, t) / jnp.float32(math.sqrt(math.factorial(p)))


def _sphere(params: Mapping[str, Any]) -> bool:
    return params.get("direction", SPARSE) == "sphere"


def _hermite_draw(key, k: int, n: int, params: Mapping[str, Any]):
    """hermite's direction: (k,) ±1 signs (u = signs / sqrt(k) on S), or with direction
    "sphere" u itself, (n,) uniform on the unit sphere (a normalised Gaussian vector)."""
    import jax
    import jax.numpy as jnp

    if not _sphere(params):
        return jax.random.rademacher(key, (k,), dtype=jnp.float32)
    g = jax.random.normal(key, (n,), dtype=jnp.float32)
    return g / jnp.sqrt(jnp.sum(g * g))


def _odd(k: int) -> str | None:
    return None if k % 2 else "must be odd"


def check_terms(terms: Any, k: int | None = None) -> None:
    """``task.terms``: a non-empty list of terms, each a non-empty list of distinct positions
    in 1..k (k when given)."""
    if not isinstance(terms, list | tuple) or not terms:
        raise bad("task.terms", terms, "must be a non-empty list of terms, each a list of "
                  "positions in 1..k")
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


def check_coefs(coefs: Any, terms: Any = None) -> None:
    """``task.coefs``: numbers within float32's range, one per term of ``terms`` (when given)."""
    if not isinstance(coefs, list | tuple) or not coefs or any(
            isinstance(c, bool) or not isinstance(c, int | float) or not _float32(c)
            for c in coefs):
        raise bad("task.coefs", coefs, "must be a non-empty list of numbers within float32's "
                  "range, one per term")
    if terms is not None and len(coefs) != len(terms):
        raise ConfigError(f"task.coefs: {len(coefs)} values for {len(terms)} terms")


def _float32(c: int | float) -> bool:
    try:
        return math.isfinite(float(c)) and abs(float(c)) <= FLOAT32_MAX
    except OverflowError:  # an integer beyond every float
        return False


def _check_polynomial(params: Mapping[str, Any], k: int) -> None:
    check_terms(params["terms"], k)
    check_coefs(params["coefs"], params["terms"])
    if not any(c != 0 for c in params["coefs"]):
        raise bad("task.coefs", list(params["coefs"]), "a polynomial needs a non-zero "
                  "coefficient (a constant target has nothing to learn)")


_TERMS = Param("terms", Rule("custom", check_fn=lambda name, v: check_terms(v)),
               doc="lists of positions in 1..k, e.g. [[1], [1, 2, 3]]",
               hashable=lambda v: tuple(tuple(t) for t in v))
_COEFS = Param("coefs", Rule("custom", check_fn=lambda name, v: check_coefs(v)),
               doc="one number per term", hashable=lambda v: tuple(float(c) for c in v))
_DEGREE = Param("degree", int_rule(1, MAX_DEGREE, grid=True),
                doc=f"the Hermite degree p, an integer in 1..{MAX_DEGREE}")

SPARSE, DIRECTIONS = "sparse", ("sparse", "sphere")  # hermite's direction u
_DIRECTION = Param("direction", choice_rule(DIRECTIONS, grid=True), default=SPARSE,
                   doc="hermite's direction u: sparse (signs / sqrt(k) on S) or sphere (uniform "
                   "on the unit sphere of R^n)", implicit=SPARSE, strict=True)

_BUILTINS = {t.name: t for t in (
    Target("parity", _parity, binary=True, inputs=("boolean",)),
    Target("majority", _majority, binary=True, inputs=INPUTS, k_rule=_odd),
    Target("staircase", _staircase, binary=False, inputs=INPUTS),
    Target("polynomial", _polynomial, binary=False, inputs=INPUTS, params=(_TERMS, _COEFS),
           check=_check_polynomial),
    Target("hermite", _hermite, binary=False, inputs=("gaussian",),
           params=(_DEGREE, _DIRECTION), draw=_hermite_draw, dense=_sphere),
)}
_TARGETS: dict[str, Target] = dict(_BUILTINS)
DEFAULT = "parity"  # the target of a study that names none (its own code path: sparse.py)


def register_target(name: str, fn: Callable, *, binary: bool = False,
                    inputs: tuple[str, ...] = INPUTS,
                    params: Mapping[str, tuple] | None = None,
                    variance: float | None = None) -> None:
    """Registers ``fn`` as target ``name`` for studies of this process (``task.target``).

    Args:
      name: the target's name; a study's fingerprint holds the name, not the code, so resuming
        a store with another function of the same name is the caller's responsibility.
      fn: a jnp function of z (rows, k) -> y (rows,), traced inside the compiled program; with
        ``params``, called as ``fn(z, **values)`` with the cell's value of each.
      binary: whether y is always ±1 (success by test error; label noise allowed); otherwise
        success is by normalized test MSE and the loss must be square.
      inputs: the input distributions ("boolean", "gaussian") it is defined on.
      params: its parameters, ``[task]`` keys of a study: name -> (type, lo, hi, default), type
        ``int`` or ``float``, [lo, hi] the allowed range, default None for a required one. Each
        may be a grid axis.
      variance: a real-valued target's population variance over its inputs (what its success
        divides the test MSE by, ``train.nmse = "population"``); None: estimated once on a
        fixed sample (``terms.population_moments``). It must not depend on the parameters.

    Raises:
      ConfigError: a built-in's name, a name already registered to another function, or bad
        arguments. Registering the same function again is allowed (and changes nothing).
    """
    if not isinstance(name, str) or not name or not name.isprintable():
        raise bad("target", name, "a target's name must be a non-empty string")
    if name in _BUILTINS:
        raise bad("target", name, "the name of a built-in target; choose another name")
    if not callable(fn):
        raise bad("target", name, f"fn must be a function of z (rows, k), got "
                  f"{type(fn).__name__}")
    if not isinstance(binary, bool):
        raise bad("target", name, f"binary must be a bool, got {type(binary).__name__}")
    inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
    if not inputs or any(i not in INPUTS for i in inputs):
        raise bad("target", name, f"inputs = {list(inputs)}: each must be one of "
                  f"{', '.join(INPUTS)}")
    declared = _params(name, params)
    if variance is not None and (binary or isinstance(variance, bool) or not isinstance(
            variance, int | float) or not 0 < variance < math.inf):
        raise bad("target", name, f"variance = {show(variance)}: must be a positive number, "
                  "for a real-valued target")
    variance = None if variance is None else float(variance)
    old = _TARGETS.get(name)
    if old is not None and (old.source is not fn or old.binary != binary
                            or old.inputs != inputs or old.params != declared
                            or old.variance != variance):
        # a program compiled for this name holds the first function: another one under the
        # same name would silently train the old target
        raise bad("target", name, "already registered (to another function or settings); "
                  "choose another name")
    _TARGETS[name] = Target(name, lambda z, args: fn(z, **args.params), binary=binary,
                            inputs=inputs, params=declared, source=fn, variance=variance)


_RESERVED = ("n", "k", "m", "n_test", "noise", "online", "inputs", "target")


def _params(name: str, params: Mapping[str, tuple] | None) -> tuple[Param, ...]:
    """The declared parameters of a registered target, checked."""
    if params is None:
        return ()
    if not isinstance(params, Mapping):
        raise bad("target", name, "params must be a dict: name -> (type, lo, hi, default)")
    out = []
    for pname, spec in params.items():
        if not isinstance(pname, str) or not pname.isidentifier() or pname in _RESERVED:
            raise bad("target", name, f"parameter {show(pname)}: must be an identifier other "
                      f"than {', '.join(_RESERVED)}")
        if not (isinstance(spec, tuple) and len(spec) == 4 and spec[0] in (int, float)):
            raise bad("target", name, f"parameter {pname}: must be (int or float, lo, hi, "
                      "default)")
        typ, lo, hi, default = spec
        rule = (int_rule(lo, hi, grid=True) if typ is int
                else float_rule(lo, hi, lo_open=False, hi_open=False, grid=True))
        if default is not None:
            rule.check(f"task.{pname}", default)
        for other in _TARGETS.values():  # one name, one meaning: a [task] key has one rule
            for p in other.params:
                if p.name == pname and p.rule != rule:
                    raise bad("target", name, f"parameter {pname}: {other.name}'s parameter "
                              "of that name has other bounds; choose another name")
        out.append(Param(pname, rule, default, doc=f"{typ.__name__} in [{lo}, {hi}]"))
    return tuple(out)


def get(name: str) -> Target:
    """The registered target ``name``; a ConfigError naming task.target if there is none."""
    check_name(name)
    return _TARGETS[name]


def registered() -> list[str]:
    """The names of every registered target, sorted."""
    return sorted(_TARGETS)


def param_names() -> list[str]:
    """Every registered target's parameter names ([task] keys), in registration order."""
    return list(dict.fromkeys(p.name for t in _TARGETS.values() for p in t.params))


def param_rule(name: str) -> Rule:
    """The rule of parameter ``name`` (one rule per name: ``register_target`` sees to it)."""
    return next(p.rule for t in _TARGETS.values() for p in t.params if p.name == name)


def implicit(name: str) -> Any:
    """The implicit value of parameter ``name`` (``Param.implicit``; None if it has none)."""
    return next((p.implicit for t in _TARGETS.values() for p in t.params if p.name == name),
                None)


def reads_all(name: str, params: Mapping[str, Any]) -> bool:
    """Whether target ``name`` with these parameters reads every coordinate, x (rows, n),
    instead of z = x_S (hermite's sphere direction)."""
    dense = get(name).dense
    return dense is not None and dense(params)


def is_binary(name: str) -> bool:
    """Whether target ``name`` is ±1-valued (as declared)."""
    return get(name).binary


def metric(name: str) -> str:
    """What success of target ``name`` measures: "error" (test error, a ±1 target) or "nmse"
    (normalized test MSE, a real-valued one: ``train.nmse`` says by which variance); either
    way the tracker's "error" <= threshold."""
    return "error" if is_binary(name) else "nmse"


def values(name: str, z: jax.Array, args: Args | None = None) -> jax.Array:
    """y (rows,) of target ``name`` at z (rows, k), float32."""
    import jax.numpy as jnp

    return get(name).fn(z, Args() if args is None else args).astype(jnp.float32)


def cell_params(name: str, given: Mapping[str, Any],
                grid: Sequence[str] = ()) -> tuple[tuple[str, Any], ...]:
    """A cell's parameters of target ``name``, from the ``[task]`` values ``given`` (a
    parameter of another target is ignored, as dense cells ignore ``s``; a strict one is
    refused unless a target of the study's ``grid`` reads it): (name, value) pairs in the
    target's order, hashable, defaults filled in."""
    own = get(name).params
    for pname, v in given.items():
        strict = [p for t in _TARGETS.values() for p in t.params if p.name == pname and p.strict]
        if v is not None and strict and pname not in {p.name for p in own}:
            if v == strict[0].implicit or any(
                    strict[0] in _TARGETS[t].params for t in grid if t in _TARGETS):
                continue  # what every target did before it existed, or another cell's
            users = sorted(t.name for t in _TARGETS.values() if strict[0] in t.params)
            raise ConfigError(f"task.{pname} = {show(v)}: means nothing for target = "
                              f"{show(name)}; only for target = {' or '.join(users)} (allowed "
                              f"values: {', '.join(strict[0].rule.choices)})")
    out = []
    for p in own:
        v = given.get(p.name)
        if v is None:
            v = p.default
        if v is None:
            raise ConfigError(f"task.{p.name}: required for target = {show(name)} ({p.doc})")
        p.rule.check(f"task.{p.name}", v)
        if p.implicit is not None and v == p.implicit:
            continue  # left out: the cell is the one it was before the parameter existed
        out.append((p.name, p.hashable(v)))
    return tuple(out)


def label(name: str, params: Mapping[str, Any]) -> str:
    """A target with its parameters, for a table or a title ("hermite degree=3",
    "polynomial (2 terms)"): a number as name=value, a list by its length."""
    shown = [f"{k}={v}" if isinstance(v, int | float | str) else f"({len(v)} {k})"
             for k, v in params.items() if v is not None]
    return " ".join([name, *shown])


# ---- checks: one ConfigError line naming the field --------------------------------------------


def check_name(target: Any) -> None:
    if not isinstance(target, str) or target not in _TARGETS:
        raise bad("task.target", target, f"not a registered target; registered: "
                  f"{', '.join(registered())} (a target registered from Python, "
                  "pj.register_target, exists only in the process that registered it)")


def check(target: str, *, k: int, inputs: str = "boolean",
          params: Mapping[str, Any] | None = None, noise: float = 0.0,
          loss: str | None = None) -> None:
    """Every rule of a target's settings (``params``: the cell's), the first broken one raised
    as a ConfigError."""
    check_name(target)
    t = _TARGETS[target]
    if inputs not in INPUTS:
        raise bad("task.inputs", inputs, f"must be one of {', '.join(INPUTS)}")
    if inputs not in t.inputs:
        raise bad("task.inputs", inputs, f"target = {show(target)} needs "
                  f"{' or '.join(t.inputs)} inputs")
    if t.k_rule is not None and (rule := t.k_rule(k)) is not None:
        raise ConfigError(f"task.k = {k}: {rule} for target = {show(target)}")
    if t.check is not None:
        t.check(params or {}, k)
    if noise and not t.binary:
        raise ConfigError(f"task.noise = {noise}: label noise flips ±1 labels; target = "
                          f"{show(target)} is real-valued (use noise = 0)")
    # a real-valued target trains with the square loss (hinge and logistic assume ±1 labels)
    if loss is not None and loss != "square" and not t.binary:
        raise ConfigError(f"train.loss = {show(loss)}: target = {show(target)} is "
                          "real-valued; use loss = \"square\"")


def check_labels(name: str, y, rows: int, *, what: str = "labels") -> None:
    """Labels of target ``name`` as evaluated (numpy, host side): shape (rows,), finite and
    within float32, ±1 where declared binary. A ConfigError naming task.target otherwise: a
    label the training cannot use never becomes a silent p = 0 or a 'diverged' trial. (A
    real-valued target's variance is the one rule of ``terms.check_variance``.)"""
    import numpy as np

    y = np.asarray(y)
    where = f"task.target = {show(name)}"
    if y.shape != (rows,):
        raise ConfigError(f"{where}: its function returned {what} of shape {y.shape}, not "
                          f"({rows},): one value per row of z (rows, k)")
    if y.dtype.kind not in "biuf":
        raise ConfigError(f"{where}: its function returned {what} of dtype {y.dtype}; "
                          "must be numbers")
    y64 = y.astype(np.float64)
    out = ~(np.isfinite(y64) & (np.abs(y64) <= FLOAT32_MAX))
    if np.any(out):
        raise ConfigError(f"{where}: {what} not finite or beyond float32's range (e.g. "
                          f"{show(float(y64[out][0]))})")
    if get(name).binary and (y.dtype.kind == "b" or not np.all(np.abs(y64) == 1)):
        odd = y64[np.abs(y64) != 1]
        raise ConfigError(f"{where}: declared binary, but its {what} are not all ±1 (e.g. "
                          f"{show(float(odd[0]) if odd.size else bool(y.flat[0]))})")
