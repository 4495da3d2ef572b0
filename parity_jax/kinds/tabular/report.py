"""The tabular kind's report: per-trial records (MLPs and tuned forests), model selection as in
the paper (the best configuration of each family per dataset and fraction, ``Results.cells``)
and the summary table. Its figures come from experiments/tabular.py.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from parity_jax import reduce, render
from parity_jax.errors import ConfigError

_MLP_FIELDS = ("dataset", "fraction", "m", "init", "s", "lr", "seed", "width", "depth",
               "optimizer", "val_loss", "val_error", "test_error", "best_step",
               "final_test_error", "diverged")
_FOREST_FIELDS = ("dataset", "fraction", "m", "seed", "val_error", "val_loss", "test_error")
COLUMNS = ["dataset", "fraction", "family", "m", "seeds", "diverged", "test_error", "ci_low",
           "ci_high", "width", "depth", "s", "optimizer", "lr"]


def _record(cell: dict, trial: dict) -> dict:
    """A stored tabular trial as the benchmark's record ({"model": "mlp" | "forest", ...})."""
    both = {**cell, **trial}
    if cell["model"] == "forest":
        return {"model": "forest", **{f: both[f] for f in _FOREST_FIELDS},
                "params": trial.get("params"), "iterations": cell["iterations"]}
    return {"model": "mlp", **{f: both[f] for f in _MLP_FIELDS}}


def trial_records(cells: Mapping[int, dict], trials: list[dict]) -> list[dict]:
    """``Results.trials``: one record per MLP trial and per tuned forest."""
    return [_record(cells[t["cell"]], t) for t in trials]


def summarize(cells: list[dict], trials: list[dict]) -> list[dict]:
    """``Results.cells``: the selected best of each family per (dataset, fraction)."""
    return select(trial_records({c["cell"]: c for c in cells}, trials))


def family(r: dict) -> str:
    """'dense', 'sparse' (any s) or 'forest': what one line of the tabular table compares."""
    return "forest" if r["model"] == "forest" else r["init"]


def select(records: list[dict],
           config: tuple[str, ...] = ("width", "depth", "s", "optimizer", "lr"),
           within: tuple[str, ...] = ("dataset", "fraction")) -> list[dict]:
    """Model selection as in the paper: per ``within`` group and family (dense MLP, sparse MLP,
    forest), the ``config`` setting with the lowest median validation loss over its seeds
    (forests: already tuned per seed, so all of them). Returns one record per group and family:
    the settings, ``seeds``, ``diverged`` (seeds without a test error, left out of the mean),
    ``test_error`` (mean) with a 95% t-interval ``ci_low``/``ci_high`` (clipped to [0, 1]),
    ``val_loss`` (median) and ``m``."""
    groups: dict[tuple, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        fam = family(r)
        cfg = () if fam == "forest" else tuple(r.get(c) for c in config)
        groups[tuple(r[w] for w in within) + (fam,)][cfg].append(r)
    out = []
    for key, configs in sorted(groups.items(), key=lambda kv: str(kv[0])):

        def median_val(rs):
            v = [r["val_loss"] if r["val_loss"] is not None else math.inf for r in rs]
            return float(np.median(v))

        cfg, rs = min(configs.items(), key=lambda kv: (median_val(kv[1]), str(kv[0])))
        mean, lo, hi = reduce.mean_interval([r["test_error"] for r in rs])
        lo, hi = max(lo, 0.0), min(hi, 1.0)  # an error rate's interval stays in [0, 1]
        rec = dict(zip(within + ("family",), key, strict=True))
        rec.update(dict(zip(config, cfg, strict=False)) if cfg else {})
        # diverged trials (no test error) are left out of the mean and counted apart
        diverged = sum(r["test_error"] is None for r in rs)
        rec.update(m=rs[0]["m"], seeds=len(rs), diverged=diverged, val_loss=median_val(rs),
                   test_error=mean, ci_low=lo, ci_high=hi, configs=len(configs))
        out.append(rec)
    return out


def no_frontier(out: Path) -> ConfigError:
    """The error of ``Results.frontier`` on a tabular store."""
    return ConfigError(f"frontier: {out} holds a tabular study, which has no success "
                       "probability; its comparison is cells() (the selected models per dataset "
                       "and fraction)")


def summary_table(records: list[dict]) -> str:
    """The selected models as a plain-text table (``COLUMNS``)."""
    return "\n".join(render.text_table(records, COLUMNS))


def no_plot(out: Path) -> ConfigError:
    """The error of ``plot`` on a tabular store."""
    return ConfigError(f"dir: {out} holds a tabular study; its figures come from "
                       "experiments/tabular.py")
