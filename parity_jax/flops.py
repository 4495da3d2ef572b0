"""FLOP counting, pure Python (no JAX): the effective FLOPs of a trial's SGD steps and
evaluations, so the reducer and the report count compute without starting JAX.

The effective FLOPs are the work an ideal step cannot avoid (``flops_per_trial_step``); the
compute axis of a trial is its FLOPs to a step (``flops_to_step``): every SGD step and every
evaluation's forward pass over the test set up to then.
"""

from __future__ import annotations

import math


def flops_per_trial_step(width: int, n: int, batch: int, depth: int = 1) -> int:
    """Effective FLOP of one SGD step of one trial: 4*B*r*(n + 2), plus 6*B*r^2 per hidden
    layer (forward, and the two gradient GEMMs) -- the work an ideal step cannot avoid."""
    return 4 * batch * width * (n + 2) + 6 * batch * width * width * (depth - 1)


def forward_flops(width: int, n: int, depth: int = 1) -> int:
    """FLOP of one forward pass of one input row."""
    return 2 * width * (n + 1) + 2 * width * width * (depth - 1)


def flops_to_step(step: int, *, width: int, n: int, batch: int, depth: int, n_test: int,
                  eval_every: int, **_) -> int:
    """Training FLOPs of a trial's first ``step`` steps: every SGD step and every evaluation's
    forward pass over the test set up to then (the compute axis: a trial's FLOPs to its first
    hit; all its steps, an upper bound on its cost). Takes a cell's fields by name."""
    evals = math.ceil(step / eval_every)
    return (step * flops_per_trial_step(width, n, batch, depth)
            + evals * n_test * forward_flops(width, n, depth))
