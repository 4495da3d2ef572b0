"""The fused kernel's fail-safe: its numeric self-check against the XLA step and the cached
verdicts (``parity_jax.kernel`` is the Pallas program itself).

Before a program first runs the kernel (in "auto" and "interpret" modes, ``failsafe``),
``self_check`` runs a few trials of its geometry a few steps with the kernel and with the XLA
step and compares their parameters; its verdict is cached per device kind, jax and jaxlib
versions and geometry (``verdict``, ``record``) in this process and in ``VERDICTS_FILE`` beside
the compile cache. That file is read through ``files.read_json``: one that is missing, damaged,
too large or not a regular file counts as absent (the check runs again). A program whose check
fails, or whose kernel fails to lower, compile or run, runs on the XLA step instead, with one
warning line (``devices.FailSafe``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from parity_jax import core, errors, files, kernel, steps, trackers
from parity_jax.tasks import sparse

CHECK_STEPS = 4  # the self-check's interval: a few steps, so chaos cannot amplify rounding
CHECK_TRIALS = 4  # its trials: groups of the program's P trials (at most 4)
CHECK_ROWS = 1024  # its training set's rows, at most (the kernel gathers rows by index)
CHECK_SLACK = 4.0  # C of the tolerance (see ``_compare``)
EPS32 = 2.0 ** -23  # float32's machine epsilon: every sum accumulates in float32
# a dot product's relative rounding of its two operands, by precision: none (float32), TF32's
# 10-bit and bfloat16's 7-bit mantissas (2 u each)
OPERAND_EPS = {"float32": 0.0, "tf32": 2.0 ** -10, "bfloat16": 2.0 ** -7}
VERDICTS_FILE = "kernel_checks.json"  # beside the compile cache (``devices.verdicts_file``)
VERDICTS_LIMIT = 1 << 20  # bytes: a verdicts file larger than this is damaged (absent)
DETAIL_LIMIT = 300  # characters of a verdict's detail in a warning line

_verdicts: dict[str, dict] = {}  # this process's verdicts, by ``verdict_key``


def failsafe() -> bool:
    """Whether a program's kernel is checked first and replaced by the XLA step when it fails
    ("auto" and "interpret"; "on" and "3xtf32" let its errors surface, for development)."""
    return kernel.requested() in ("auto", "interpret")


def describe(shape) -> str:
    """A program's geometry in a few words (warnings, verdicts)."""
    task = shape.task
    online = ", online" if task.online else ""
    return (f"n={task.n}, W={shape.W}, batch {task.batch}{online}, {shape.loss}, "
            f"{shape.precision}")


def warning(shape, detail: str) -> str:
    """The one warning line of a program that runs on the XLA step instead of the kernel."""
    return (f"warning: the fused kernel is off for the program ({describe(shape)}): "
            f"{short(detail)}; it runs on the XLA step instead (PARITY_JAX_KERNEL=off skips "
            "the kernel)")


def short(detail: object, limit: int = DETAIL_LIMIT) -> str:
    """A verdict's detail as one printable line of at most ``limit`` characters (a cached
    one is whatever the file held)."""
    line = errors.one_line(str(detail))
    return line if len(line) <= limit else line[:limit - 3] + "..."


def failure(error: BaseException) -> str:
    """A kernel error as a verdict's detail: its type and first line."""
    return f"the kernel failed: {errors.error_line(error, 240)}"


def self_check(shape) -> tuple[bool, float, str]:
    """Checks the kernel of a depth-1 program on this device: ``CHECK_TRIALS`` trials of its
    geometry (n, padded width W, batch, loss, precision; dense and sparse inits, some of them
    padded) run ``CHECK_STEPS`` steps with the kernel and with the XLA step from the same
    parameters.

    Returns (ok, max_rel_err, detail): whether every parameter agrees within the rounding of
    sums taken in another order (``_compare``); the largest difference relative to the
    interval's update of its parameter array (NaN when the kernel failed); one line saying
    how it went. ``shape.kernel`` "off" checks the kernel this platform would run ("pallas" on
    a GPU, "interpret" elsewhere). A failure of the kernel is a verdict, not an exception.
    """
    if shape.depth != 1 or shape.step != "fused":
        raise ValueError(f"self_check: the kernel runs depth-1 fused programs, not "
                         f"depth {shape.depth} {shape.step}")
    if shape.kernel == "off":
        shape = dataclasses.replace(
            shape, kernel="pallas" if jax.default_backend() == "gpu" else "interpret")
    task, P = shape.task, min(shape.P, CHECK_TRIALS)
    check = dataclasses.replace(  # one chunk: a small program of its own
        shape, G=CHECK_TRIALS // P, P=P, chunk=1, eval_every=CHECK_STEPS, curves=0,
        task=dataclasses.replace(task, M=min(task.M, CHECK_ROWS), n_test=min(task.n_test, 64)))
    try:
        ok, rel, worst = _compare(check, draw=0)
        if not ok:  # a kink flipped by rounding (see _compare) does not recur on another draw
            ok, rel, worst = _compare(check, draw=1)
    except Exception as e:  # noqa: BLE001 -- any error of the kernel is its verdict
        return False, math.nan, failure(e)
    if ok:
        return True, rel, (f"agrees with the XLA step (parameters within {worst:.2g} of the "
                           f"rounding tolerance; largest difference {rel:.1e} of their update)")
    return False, rel, (f"it disagrees with the XLA step: parameters differ by up to {rel:.2g} "
                        f"of their update, {worst:.3g} times the tolerance of rounding")


def _compare(shape, draw: int) -> tuple[bool, float, float]:
    """(ok, max_rel_err, worst difference / tolerance) of the kernel against the XLA step on
    the check batch ``draw``.

    The tolerance. Both paths compute the same float32 operations on the same numbers; only
    the order of their sums differs (and, in a TF32 or bfloat16 program, how each path rounds
    its dots' operands). Two orders of a k-term float32 sum differ by at most
    2 (k - 1) u sum|terms| <= k eps sum|terms| (u = eps / 2, eps = ``EPS32``). A step's update
    of a parameter, lr (g + wd p), is a B-row sum (g), fed through the forward pass by the
    (n + 1)-term sums of the pre-activations and the (W + 1)-term sum of the output: the two
    updates differ by at most about (K eps + e_op) |update|, with K = B + n + W + 2 and e_op
    the operands' rounding (``OPERAND_EPS``; 0 in float32), and rounding the update into p
    adds a few eps |p|. Over the T steps of the interval, taking the largest update of the
    trial's parameter array, Delta = max |p_T - p_0|, for the scale of T steps' sum|terms|,
    every parameter of that array agrees within

        tol = C ((K eps + e_op) Delta + T eps max|p|)

    with C = ``CHECK_SLACK`` = 4 for what Delta leaves out: terms of both signs (an update
    smaller than its terms' magnitudes) and rounding carried from one step into the next.
    Measured (interpret mode against XLA:CPU, 32 trials per geometry, n = 50, batch 32,
    W = 64 and 256, all three losses): differences up to 0.035 tol. A fault is far above it:
    a minibatch row missed or a mask wrong in one step moves parameters by about
    Delta / (B T) (Delta / 128 at B = 32, T = 4), 30 to 40 times tol at these geometries in
    float32 (Delta ~ 1e-2, |p| < 1; in TF32 about 2 times: the check sees gross faults only);
    a kernel whose w1 is off by 1e-5 of itself is 3 times over it (tests).

    A kink -- a pre-activation within rounding of 0 (ReLU) or a margin within rounding of 1
    (hinge) -- can legitimately flip one row's gradient of one neuron: a whole term, not a
    rounding. It needs a value within about 1e-7 of the kink among the T B P W
    pre-activations (a few percent of checks at W = 256), so a mismatch is confirmed on a
    second draw before the kernel is turned off; a fault fails both.
    """
    b = check_batch(shape, draw)
    p0, xla = intervals(dataclasses.replace(shape, kernel="off"), CHECK_STEPS, b, 1)
    _, ker = intervals(shape, CHECK_STEPS, b, 1)
    task = shape.task
    K = task.batch + task.n + shape.W + 2
    scale = K * EPS32 + OPERAND_EPS[shape.precision]
    worst, rel = 0.0, 0.0
    for name in ("w1", "b1", "a", "c"):
        x0, x, k = (np.asarray(getattr(p, name), np.float64).reshape(shape.G * shape.P, -1)
                    for p in (p0, xla, ker))
        diff = np.nan_to_num(np.abs(k - x).max(axis=1), nan=np.inf)
        delta = np.abs(x - x0).max(axis=1)
        tol = CHECK_SLACK * (scale * delta + CHECK_STEPS * EPS32 * np.abs(x).max(axis=1))
        tiny = np.finfo(np.float32).tiny
        worst = max(worst, float(np.max(diff / np.maximum(tol, tiny))))
        rel = max(rel, float(np.max(diff / np.maximum(delta, tiny))))
    return worst <= 1.0, rel, worst


def check_batch(shape, draw: int, steps: int = CHECK_STEPS):
    """The self-check's batch: G groups (each its own data) of P trials, of widths W down to
    5/8 W (padded neurons), dense and sparse (s = 2) inits, the default lr and wd, each trial
    running ``steps`` steps (the race's timed batch is this one with steps enough)."""
    G, P, W, n = shape.G, shape.P, shape.W, shape.task.n
    root = jax.random.key(draw)
    trial = np.arange(G * P).reshape(G, P)
    full = functools.partial(np.full, (G, P))
    return core.Batch(
        task=sparse.Inputs(data_key=jax.vmap(lambda g: jax.random.fold_in(root, g))(
                               jnp.arange(G)),
                           k=np.full(G, min(3, n), np.int32), m=np.full(G, shape.task.M, np.int32),
                           noise=np.zeros(G, np.float32)),
        init_key=jax.vmap(lambda i: jax.random.fold_in(root, G + i))(trial.ravel()).reshape(G, P),
        width=np.maximum(1, W - W * trial // (2 * G * P)).astype(np.int32),
        sparse=trial % 2 == 1, s=full(min(2, n), np.int32),
        lr=full(0.1, np.float32), wd=full(0.01, np.float32), steps=full(steps, np.int32),
        valid=full(True, bool),
        track=trackers.FirstHitInputs(threshold=full(0.0, np.float32),
                                      stop_on_success=full(False, bool)))


@functools.partial(jax.jit, static_argnums=(0, 1))
def intervals(shape, n_steps: int, b, calls):
    """(initial, final) parameters of a batch ``b`` after ``calls`` intervals of ``n_steps``
    steps from step 0, without evaluations (``calls`` is traced: one compile per shape and
    n_steps). The self-check runs one interval of ``CHECK_STEPS``; the engine race times
    several (``parity_jax.race``)."""
    with jax.default_matmul_precision(core.MATMUL_PRECISION[shape.precision]):
        b = core.typed(shape, b)
        streams, shared = shape.task.prepare(b.task, b.shared)
        p0 = core.init_params(shape, b)
        step = steps.make(shape)
        state = steps.over_groups(step.init, len(shape.lead))(p0, b.lr, b.wd)
        hyper = core.step_hyper(shape, b)

        def body(i, carry):
            p, s = carry
            return steps.interval(shape, step, streams, shared, p, s, hyper,
                                  (i * n_steps).astype(jnp.int32), b.valid, n_steps)

        return p0, jax.lax.fori_loop(0, calls, body, (p0, state))[0]


def verdict_key(shape) -> str:
    """What a verdict holds for: the device kind, jax and jaxlib versions and the geometry."""
    param = "" if shape.param == "standard" else f", {shape.param} (base {shape.base_width})"
    return (f"{jax.local_devices()[0].device_kind} | jax {jax.__version__} | jaxlib "
            f"{jaxlib.__version__} | {shape.kernel}: {describe(shape)}{param}")


def verdict(shape, path: str | None) -> tuple[bool, str]:
    """The kernel's verdict on a program's geometry on this device: (ok, detail), from this
    process, the verdicts file ``path`` (JSON; None: this process only) or ``self_check``
    now (then recorded in both)."""
    key = verdict_key(shape)
    entry = cached_entry(key, path)
    if isinstance(entry, dict) and isinstance(entry.get("ok"), bool):
        if key not in _verdicts:  # read from the file: say where, once
            _verdicts[key] = {**entry, "detail": f"{short(entry.get('detail', ''))} (verdict "
                                                 f"cached in {errors.one_line(path)}; delete "
                                                 "it to check again)"}
    else:
        ok, rel, detail = self_check(shape)
        record(shape, ok, rel, detail, path)
    return _verdicts[key]["ok"], _verdicts[key]["detail"]


def record(shape, ok: bool, max_rel_err: float, detail: str, path: str | None) -> None:
    """Keeps a verdict on a program's geometry, in this process and in ``path``."""
    keep(verdict_key(shape), {"ok": ok, "detail": detail,
                              "max_rel_err": max_rel_err if math.isfinite(max_rel_err) else None},
         path)


def cached_entry(key: str, path: str | None):
    """A verdict (the kernel's, or the engine race's: ``parity_jax.race``) from this process
    or, failing that, from the verdicts file ``path``: None when neither holds it."""
    if key in _verdicts:
        return _verdicts[key]
    return _read(path).get(key) if path else None


def keep(key: str, entry: dict, path: str | None) -> None:
    """Keeps a verdict in this process and in ``path`` (replaced atomically; a file that
    cannot be written keeps it in this process only)."""
    _verdicts[key] = entry
    if not path:
        return
    verdicts = {**_read(path), key: entry}
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        files.write_text(path, json.dumps(verdicts, indent=1, sort_keys=True), "verdicts")
    except (OSError, files.OutputError):
        pass


def _read(path: str) -> dict:
    """The verdicts file's entries: {} when it is missing or damaged (not a regular file, over
    ``VERDICTS_LIMIT``, not a JSON object; ``files.read_json``): absent, so checks run again."""
    try:
        verdicts = files.read_json(path, VERDICTS_LIMIT, "verdicts")
    except files.InputError:
        return {}
    return verdicts if isinstance(verdicts, dict) else {}
