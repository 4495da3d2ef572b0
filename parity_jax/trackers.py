"""Trackers: what a run keeps of its evaluations (docs/DESIGN.md §2).

- ``FirstHit`` (parity): the first evaluation whose test error is at most the trial's
  threshold (and, for ``FirstHit(terms=T)``, whose T per-term recoveries are each at least the
  trial's ``recover``); with ``stop_on_success`` the trial stops there.
- ``BestValidation`` (tabular model selection): the evaluation with the lowest validation loss,
  with its validation and test error.

Each keeps the ``Tracker`` protocol below: ``init(lead) -> state``, ``update(state, metrics,
evaluated, diverged, steps_run, inputs) -> state``, ``stopped(state)`` and ``outcome(state,
steps_run, diverged, curves, final)``, all per trial (arrays of the batch's leading trial axes).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from flax import struct

from parity_jax.tasks import PyTree

TRACKERS = ("first_hit", "best_validation")
TrackerInputs = PyTree  # per-trial settings of a batch (FirstHitInputs) or None: Batch.track
TrackerState = PyTree  # per-trial state between evaluations (FirstHitState, BestState)


@runtime_checkable
class Tracker(Protocol):
    """What the core (``parity_jax.core``) asks of a tracker: an init/update pair over the
    evaluations, when a trial may stop, and its outcome."""

    curves: tuple[str, ...]  # the metrics a recorded curve holds

    def init(self, lead: tuple[int, ...]) -> TrackerState:
        """The state before any evaluation, for trial axes ``lead``."""
        ...

    def update(self, st: TrackerState, metrics: dict, evaluated: jax.Array,
               diverged: jax.Array, steps_run: jax.Array,
               inputs: TrackerInputs) -> TrackerState:
        """The state after one evaluation (``metrics``: the task's ``evaluate``; ``inputs``:
        the batch's ``track``); only trials where ``evaluated`` measured anything."""
        ...

    def stopped(self, st: TrackerState) -> jax.Array:
        """Per trial: whether the tracker has seen enough (the trial stops training)."""
        ...

    def outcome(self, st: TrackerState, steps_run: jax.Array, diverged: jax.Array,
                curves: dict, final: dict) -> PyTree:
        """Per-trial results (``Outcome``, ``XYOutcome``; ``final``: the task's ``final``
        metrics)."""
        ...


@struct.dataclass
class FirstHitInputs:
    """Per-trial settings of the first-hit tracker."""

    threshold: jax.Array  # float32: success = test error <= threshold
    stop_on_success: jax.Array  # bool
    recover: jax.Array | None = None  # float32: and every term's recovery >= recover (terms)


@struct.dataclass
class FirstHitState:
    hit: jax.Array  # step of the first hit, -1 if none
    err: jax.Array  # test error at the last evaluation
    stopped: jax.Array
    rec_hit: jax.Array | None = None  # (..., T) per-term recovery at the first hit (NaN: none)
    rec_last: jax.Array | None = None  # (..., T) at the last evaluation


@struct.dataclass
class Outcome:
    """Per-trial results of a parity batch."""

    success: jax.Array
    first_hit: jax.Array  # step of the first evaluation with error <= threshold, -1 if none
    test_error: jax.Array  # at the trial's last evaluation (NaN if diverged)
    train_loss: jax.Array  # mean loss over its m training samples at the end (NaN if diverged)
    steps_run: jax.Array
    diverged: jax.Array
    curve_error: jax.Array  # (..., curves): test error at each evaluation (NaN: none)
    curve_loss: jax.Array  # (..., curves): train loss at each evaluation (NaN: none)
    recovery_hit: jax.Array | None = None  # (..., T) per-term recovery at the first hit
    recovery_end: jax.Array | None = None  # (..., T) at the last evaluation (NaN if diverged)


@dataclasses.dataclass(frozen=True)
class FirstHit:
    """The first hit; with ``terms`` = T > 0 the task's evaluations hold a (..., T)
    "recovery" (``tasks.success.recovery``) and a hit also needs each term's >= recover."""

    terms: int = 0
    curves = ("error", "loss")  # the metrics a recorded curve holds

    def init(self, lead: tuple[int, ...]) -> FirstHitState:
        nan = jnp.full(lead + (self.terms,), jnp.nan, jnp.float32) if self.terms else None
        return FirstHitState(hit=jnp.full(lead, -1, jnp.int32), err=jnp.ones(lead, jnp.float32),
                             stopped=jnp.zeros(lead, bool), rec_hit=nan, rec_last=nan)

    def update(self, st: FirstHitState, metrics: dict, evaluated, diverged, steps_run,
               inputs: FirstHitInputs) -> FirstHitState:
        err = metrics["error"]
        good = err <= inputs.threshold
        rec_hit = rec_last = None
        if self.terms:
            rec = metrics["recovery"]
            good = good & jnp.all(rec >= inputs.recover[..., None], axis=-1)
        new_hit = evaluated & (st.hit < 0) & good
        hit = jnp.where(new_hit, steps_run, st.hit)
        if self.terms:
            rec_hit = jnp.where(new_hit[..., None], rec, st.rec_hit)
            rec_last = jnp.where(evaluated[..., None], rec,
                                 jnp.where(diverged[..., None], jnp.nan, st.rec_last))
        return FirstHitState(
            hit=hit,
            err=jnp.where(evaluated, err, jnp.where(diverged, jnp.nan, st.err)),
            stopped=st.stopped | (inputs.stop_on_success & (hit >= 0)),
            rec_hit=rec_hit, rec_last=rec_last,
        )

    @staticmethod
    def stopped(st: FirstHitState) -> jax.Array:
        return st.stopped

    @staticmethod
    def outcome(st: FirstHitState, steps_run, diverged, curves: dict, final: dict) -> Outcome:
        return Outcome(
            success=st.hit >= 0,
            first_hit=st.hit,
            test_error=st.err,
            train_loss=jnp.where(diverged, jnp.nan, final["loss"]),
            steps_run=steps_run,
            diverged=diverged,
            curve_error=curves["error"],
            curve_loss=curves["loss"],
            recovery_hit=st.rec_hit,
            recovery_end=st.rec_last,
        )


@struct.dataclass
class BestState:
    val_loss: jax.Array  # lowest validation loss so far (+inf: none)
    val_error: jax.Array
    test_error: jax.Array
    step: jax.Array  # its step (-1: none)


@struct.dataclass
class XYOutcome:
    """Per-trial results of a tabular batch; *_best at the lowest-validation-loss evaluation."""

    val_loss: jax.Array  # best (lowest) mean validation loss
    val_error: jax.Array
    test_error: jax.Array
    best_step: jax.Array
    final_val_loss: jax.Array
    final_test_error: jax.Array
    steps_run: jax.Array
    diverged: jax.Array
    curve_val_loss: jax.Array  # (..., evaluations)
    curve_test_error: jax.Array


class BestValidation:
    curves = ("val_loss", "test_error")

    @staticmethod
    def init(lead: tuple[int, ...]) -> BestState:
        nan = jnp.full(lead, jnp.nan, jnp.float32)
        return BestState(val_loss=jnp.full(lead, jnp.inf, jnp.float32), val_error=nan,
                         test_error=nan, step=jnp.full(lead, -1, jnp.int32))

    @staticmethod
    def update(st: BestState, metrics: dict, evaluated, diverged, steps_run, inputs) -> BestState:
        val_loss = jnp.where(jnp.isfinite(metrics["val_loss"]), metrics["val_loss"], jnp.inf)
        better = evaluated & (val_loss < st.val_loss)
        return BestState(
            val_loss=jnp.where(better, val_loss, st.val_loss),
            val_error=jnp.where(better, metrics["val_error"], st.val_error),
            test_error=jnp.where(better, metrics["test_error"], st.test_error),
            step=jnp.where(better, steps_run, st.step),
        )

    @staticmethod
    def stopped(st: BestState) -> jax.Array:
        return jnp.zeros(st.step.shape, bool)

    @staticmethod
    def outcome(st: BestState, steps_run, diverged, curves: dict, final: dict) -> XYOutcome:
        return XYOutcome(
            val_loss=st.val_loss, val_error=st.val_error, test_error=st.test_error,
            best_step=st.step, final_val_loss=curves["val_loss"][..., -1],
            final_test_error=curves["test_error"][..., -1], steps_run=steps_run,
            diverged=diverged, curve_val_loss=curves["val_loss"],
            curve_test_error=curves["test_error"])


def make(name: str | Tracker) -> Tracker:
    """The tracker a program's shape names (``Shape.tracker``: a name of ``TRACKERS``, or a
    tracker with settings of its own, ``FirstHit(terms=3)``)."""
    if not isinstance(name, str):
        return name
    return {"first_hit": FirstHit(), "best_validation": BestValidation}[name]
