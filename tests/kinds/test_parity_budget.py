"""p against the step budget: P(first hit <= t) per cell from the stored first hits, against a
count by hand; the report's column, and plot's p_vs_steps figure."""

from __future__ import annotations

import tomllib

import faults
import numpy as np
import pytest

from parity_jax import reduce
from parity_jax.kinds.parity import budget, report
from parity_jax.kinds.parity.config import Study

pytestmark = pytest.mark.quick  # pure Python: make test-quick

# eight trials of a cell of 550 steps evaluated every 100: hits at 100, 100, 300 and 550; one
# diverged, one never hit, two more hit but are stored as diverged-after (success False)
HITS = [100, 100, 300, 550]
STEPS, EVERY, TRIALS = 550, 100, 8


def test_evaluation_steps_end_at_the_budget():
    assert reduce.eval_steps(550, 100).tolist() == [100, 200, 300, 400, 500, 550]
    assert reduce.eval_steps(600, 100).tolist() == [100, 200, 300, 400, 500, 600]
    assert reduce.eval_steps(50, 100).tolist() == [50]


def _at(curve: dict, t: int) -> int:
    """The curve's successes at step t: its value at the last step <= t (0 before the first)."""
    i = np.searchsorted(curve["step"], t, side="right") - 1
    return 0 if i < 0 else int(curve["successes"][i])


def test_the_curve_is_the_count_of_first_hits_up_to_each_evaluation():
    c = reduce.hit_curve([*HITS, None], TRIALS, STEPS, EVERY)
    assert c["step"].tolist() == [100, 300, 550]  # where it can change: the ends and the hits
    assert c["successes"].tolist() == [2, 3, 4]
    grid = reduce.eval_steps(STEPS, EVERY)
    assert [_at(c, t) for t in grid] == [2, 2, 3, 3, 3, 4]  # by hand
    assert [_at(c, t) for t in grid] == [sum(1 for h in HITS if h <= t) for t in grid]
    assert np.allclose(c["p"], c["successes"] / TRIALS)
    # pointwise 95% Wilson intervals: wilson(2, 8) = [0.0715, 0.5907] by its formula
    assert np.allclose([c["ci_low"][0], c["ci_high"][0]], [0.07152, 0.59077], atol=1e-4)
    assert np.all(c["ci_low"] <= c["p"]) and np.all(c["p"] <= c["ci_high"])
    assert reduce.p_at(HITS, TRIALS, STEPS / 4) == 2 / 8
    assert reduce.p_at(HITS, TRIALS, STEPS / 2) == 2 / 8  # 275: between evaluations
    assert reduce.p_at(HITS, TRIALS, 300) == 3 / 8
    assert reduce.p_at(HITS, 0, 100) is None
    assert np.isnan(reduce.hit_curve([], 0, 200, 100)["p"]).all()  # no trials
    # a budget of 10^9 steps evaluated every step: a handful of points, not 10^9
    big = reduce.hit_curve([7, 7, 12], 4, 10**9, 1)
    assert big["step"].tolist() == [1, 7, 12, 10**9] and big["successes"].tolist() == [0, 2, 3, 3]


def _summary(trials_per_cell: dict[int, list[tuple]]) -> list[dict]:
    """report.summarize of faults.SMALL's first cells, with steps 550 and these trials: (seed,
    success, first_hit, diverged) per cell."""
    text = faults.SMALL.replace("steps = 3000", f"steps = {STEPS}")
    cells = [{**c.to_dict(), "cell": i} for i, c in enumerate(Study.from_dict(
        tomllib.loads(text)).cells()) if i in trials_per_cell]
    trials = [{"cell": i, "seed": s, "success": ok, "first_hit": h, "diverged": d,
               "steps_run": STEPS, "test_error": 0.0, "train_loss": 0.0}
              for i, ts in trials_per_cell.items() for s, ok, h, d in ts]
    return report.summarize(cells, trials)


def test_summaries_hold_the_successful_trials_first_hits_and_the_report_their_checkpoints():
    first = [(0, True, 300, False), (1, True, 100, False), (2, True, 550, False),
             (3, True, 100, False), (4, False, None, True), (5, False, None, False),
             (6, False, None, False), (7, False, None, False)]
    # an adaptive study's cell may hold fewer trials: its curve is over those it stored
    second = [(0, True, 200, False), (1, False, None, True)]
    recs = _summary({0: first, 1: second})
    assert recs[0]["first_hits"] == [100, 100, 300, 550] and recs[0]["trials"] == 8
    assert recs[1]["first_hits"] == [200] and recs[1]["trials"] == 2
    assert [budget.checkpoints(r) for r in recs] == ["0.25 0.25", "0.00 0.50"]
    c = budget.curve(recs[1])
    assert c["step"].tolist() == [100, 200, 550] and c["p"].tolist() == [0, 0.5, 0.5]
    table = report.cells_table(recs).splitlines()
    assert "p at 1/4, 1/2 steps" in table[0]
    assert table[1].split()[-4:-2] == ["0.25", "0.25"]
    assert table[2].split()[-4:-2] == ["0.00", "0.50"]


def test_plot_draws_p_against_steps_in_panels_and_splits_many_panels(tmp_path, monkeypatch):
    rows = {i: [(0, True, 100 * (i + 1), False), (1, False, None, False)] for i in range(8)}
    recs = _summary(rows)
    paths = report.figures(recs, tmp_path)
    assert [p.name for p in paths if "steps" in p.name] == ["p_vs_steps.png"]
    assert (tmp_path / "p_vs_steps.png").read_bytes()[:4] == b"\x89PNG"
    # width colours the lines; m x init make 4 panels; past PANELS_PER_FIGURE, numbered files
    monkeypatch.setattr(budget, "PANELS_PER_FIGURE", 3)
    names = [p.name for p in budget.figure(recs, ["m", "width", "init", "s"], tmp_path / "x")]
    assert names == ["p_vs_steps_1.png", "p_vs_steps_2.png"]
