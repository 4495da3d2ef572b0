"""Adaptive studies (``[adaptive]``): which seeds each cell runs, as a pure function of the stored
outcomes, so that a killed run resumes to the same final store and ``check`` knows when a store
is complete.

A cell looks at its outcomes after n = ``first`` seeds, then 2n, 4n, ... up to the study's
``seeds`` (the last look at ``seeds`` itself). At each look it decides from its first n seeds
alone (``reduce.decide``: the anytime-valid confidence sequence for p at level ``alpha``, lying
wholly above or below ``target``); it stops at the first look that decides, or at ``seeds``
("open" there). Because the sequence holds at every n simultaneously, the interval at the
look where a cell stops keeps its coverage however the looks depended on the outcomes (Howard,
Ramdas, McAuliffe & Sekhon 2021). A trial is (cell, seed index), its keys and bits those of the
same trial in the study run with every seed: adaptivity only chooses which seed indices run.
"""

from __future__ import annotations

from collections.abc import Mapping

from parity_jax import reduce


def looks(first: int, seeds: int) -> list[int]:
    """The numbers of seeds a cell is looked at: first, 2 first, 4 first, ..., then seeds."""
    out, n = [], first
    while n < seeds:
        out.append(n)
        n *= 2
    return out + [seeds]


def cell_state(adaptive, seeds: int, cell: int, success: Mapping[tuple[int, int], bool]
               ) -> tuple[int, str | None]:
    """(n, decision) of one cell given the stored successes by (cell, seed): n the seeds it
    wants stored now, decision "above" / "below" / "open" once it has stopped (its first n
    seeds stored and decided, or n = seeds), else None (its round is not stored yet)."""
    for n in looks(adaptive.first, seeds):
        outcomes = [success.get((cell, s)) for s in range(n)]
        if any(o is None for o in outcomes):
            return n, None
        decision = reduce.decide(sum(outcomes), n, adaptive.target, adaptive.alpha)
        if decision != "open" or n == seeds:
            return n, decision
    raise AssertionError("looks() ends at seeds")  # pragma: no cover


def wanted(study, n_cells: int, success: Mapping[tuple[int, int], bool]) -> set:
    """The (cell, seed) an adaptive study wants stored given the stored successes: for each
    cell, the seeds of its current look (every one already stored once it has stopped)."""
    out = set()
    for c in range(n_cells):
        n, _ = cell_state(study.adaptive, study.seeds, c, success)
        out |= {(c, s) for s in range(n)}
    return out


def round_of(study, n_cells: int, success: Mapping[tuple[int, int], bool]) -> tuple[int, int]:
    """(the round a run is in: 1 for the first look, ..., the cells still open)."""
    states = [cell_state(study.adaptive, study.seeds, c, success) for c in range(n_cells)]
    open_ = [n for n, decision in states if decision is None]
    sizes = looks(study.adaptive.first, study.seeds)
    return (sizes.index(min(open_)) + 1 if open_ else len(sizes)), len(open_)
