"""p against the step budget (issue 30): per cell, P(first hit <= t) for t up to its ``steps``,
from the stored first hits alone (no curve storage: a trial that hit first at step h has test
error under the threshold at h; a diverged or never-hitting one counts as not hit at every t).
Evaluations come every ``eval_every`` steps, so the curve is a step function on that grid
(``reduce.hit_curve``). ``report`` shows p at 1/4 and 1/2 of each cell's steps beside its p
(at 1 x steps); ``plot`` draws p_vs_steps.png: one line per cell with pointwise 95% Wilson
bands, coloured by one varying setting, one panel per setting of the others. An adaptive
study's curves are over the trials it stored (its seeds stopped on outcomes at full steps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from parity_jax import reduce, render

CHECKPOINTS = (0.25, 0.5)  # fractions of a cell's steps the report shows p at
COLUMN = "p at 1/4, 1/2 steps"
# the setting the figure colours its lines by, the first of these that varies
COLOUR_BY = ("width", "m", "lr", "init", "depth", "n", "k")
PANELS_PER_FIGURE = 24


def _order(v) -> tuple:
    """Numbers in numeric order, then anything else (None, strings) by its text."""
    return (0, v, "") if isinstance(v, int | float) and not isinstance(v, bool) else (1, 0, str(v))


def checkpoints(record: Mapping) -> str:
    """p at each of ``CHECKPOINTS`` x the cell's steps, as the report's column shows it.

    Between two evaluations P(first hit <= t) is the value at the last evaluation before t: a
    lower bound on the p of a study whose budget is t, which would also evaluate at t itself
    (where t is not a multiple of ``eval_every``)."""
    ps = [reduce.p_at(record["first_hits"], record["trials"], f * record["steps"])
          for f in CHECKPOINTS]
    return " ".join("-" if p is None else f"{p:.2f}" for p in ps)


def curve(record: Mapping) -> dict:
    """The cell's ``reduce.hit_curve``."""
    return reduce.hit_curve(record["first_hits"], record["trials"], record["steps"],
                            record["eval_every"])


def figure(records: Sequence[Mapping], varying: Sequence[str], out_dir: str | Path,
           title: str = "") -> list[Path]:
    """p_vs_steps.png (p_vs_steps_<i>.png past ``PANELS_PER_FIGURE`` panels): one line per
    cell, coloured by the first of ``COLOUR_BY`` among ``varying``, one panel per setting of
    the other varying fields (steps and eval_every shape the curves, not the panels)."""
    from parity_jax import plots  # matplotlib: only when figures are made

    shown = [f for f in varying if f not in ("steps", "eval_every")]
    colour = next((f for f in (*COLOUR_BY, *shown) if f in shown), None)
    rest = [f for f in shown if f != colour]
    panels: dict[str, list] = {}
    for r in sorted(records, key=lambda r: tuple(_order(r[f]) for f in [*rest, colour] if f)):
        name = ", ".join(f"{f}={render.format_value(r[f])}" for f in rest) or "all cells"
        c = curve(r)
        label = f"{colour}={render.format_value(r[colour])}" if colour else "p"
        panels.setdefault(name, []).append((label, c["step"], c["p"], c["ci_low"],
                                            c["ci_high"]))
    names = list(panels)
    chunks = [names[i:i + PANELS_PER_FIGURE] for i in range(0, len(names), PANELS_PER_FIGURE)]
    out_dir = Path(out_dir)
    paths = []
    for i, chunk in enumerate(chunks, 1):
        name = "p_vs_steps.png" if len(chunks) == 1 else f"p_vs_steps_{i}.png"
        paths.append(plots.step_panels({n: panels[n] for n in chunk}, out_dir / name,
                                       ylabel="P(first hit <= t)", title=title))
    return paths

