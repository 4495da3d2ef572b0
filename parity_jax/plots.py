"""Drawing helpers: a success-probability heatmap with its frontier staircase, line panels,
step-function panels with bands, training curves. What to draw is the caller's (a kind's report
groups its cells). Each file is replaced whole, never written through a link
(``files.save_figure``).

Figures are plain ``matplotlib.figure.Figure`` objects, saved by format (Agg for PNG): no
pyplot, so no GUI backend is chosen and importing this module changes no matplotlib setting."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from parity_jax import files, render


def heatmap(grid, xs: list[str], ys: list[str], path: str | Path, *, target: float,
            xlabel: str, ylabel: str, title: str, value: str = "p(success)") -> Path:
    """A success-probability heatmap: ``grid`` (len(ys), len(xs)) of p (NaN: no value), each
    value written in its square, with a red staircase along the left edge of each row's
    smallest x whose p >= ``target`` (none above 1); ``value`` names the colour bar; saved to
    ``path``."""
    path = Path(path)
    fig = Figure(figsize=(1.1 * len(xs) + 2.5, 0.8 * len(ys) + 1.8))
    ax = fig.subplots()
    im = ax.imshow(grid, origin="lower", vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center",
                        color="white" if grid[i, j] < 0.6 else "black", fontsize=8)
    fx, fy = [], []
    for i in range(len(ys)):
        hits = [j for j in range(len(xs)) if np.isfinite(grid[i, j]) and grid[i, j] >= target]
        x = min(hits) - 0.5 if hits else np.nan
        fx += [x, x]
        fy += [i - 0.5, i + 0.5]
    fx, fy = np.array(fx), np.array(fy)
    if np.isfinite(fx).any():
        ax.plot(fx, fy, color="red", lw=2, label=f"frontier p >= {target:g}")
        ax.legend(loc="upper right", fontsize=7)
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label=value)
    fig.tight_layout()
    files.save_figure(fig, path, dpi=110)
    return path


def _label(r: dict) -> str:
    """The init as plots name it (panels, file names): ``dense``, ``sparse-s2``."""
    return render.init_label(r, slug=True)


def line_panels(records: list[dict], x: str, y: str, series: str, path: str | Path, *,
                ylabel: str, panel=_label, logx: bool = True, band: tuple[str, str] | None =
                ("ci_low", "ci_high"), fits: dict | None = None, title: str = "") -> Path:
    """One panel per ``panel(record)`` (default: the init), one line per value of ``series``:
    ``y`` against ``x``, with the ``band`` columns as error bars (Wilson 95% for p).
    ``fits``: {(panel, series value): (xs, ys)} drawn dashed in the same colour."""
    panels = defaultdict(list)
    for r in records:
        if r.get(y) is not None and r.get(x) is not None:
            panels[panel(r)].append(r)
    names = sorted(panels)
    fig = Figure(figsize=(4.2 * max(1, len(names)), 3.4))
    axes = fig.subplots(1, max(1, len(names)), sharey=True, squeeze=False)
    values = sorted({r[series] for rs in panels.values() for r in rs}, key=str)
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, max(1, len(values))))
    for ax, name in zip(axes[0], names, strict=False):
        for color, v in zip(colors, values, strict=True):
            rs = sorted((r for r in panels[name] if r[series] == v), key=lambda r: r[x])
            if not rs:
                continue
            xs = np.array([r[x] for r in rs], float)
            ys = np.array([r[y] for r in rs], float)
            if band:
                lo = ys - np.array([r[band[0]] for r in rs], float)
                hi = np.array([r[band[1]] for r in rs], float) - ys
                ax.errorbar(xs, ys, yerr=[lo, hi], color=color, marker="o", ms=3, capsize=2,
                            label=f"{series}={v}")
            else:
                ax.plot(xs, ys, color=color, marker="o", ms=3, label=f"{series}={v}")
            if fits and (name, v) in fits:
                fx, fy = fits[name, v]
                ax.plot(fx, fy, color=color, ls="--", lw=1)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(x)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path, title)


def curves(records: list[dict], path: str | Path, *, per_panel: int = 4,
           threshold: float = 0.1) -> Path:
    """Test error against step for a few trials per (init, width) panel: the sudden drop."""
    panels = defaultdict(list)
    for r in records:
        panels[(_label(r), r["width"])].append(r)
    keys = sorted(panels, key=str)
    cols = min(4, len(keys))
    rows = -(-len(keys) // cols)
    fig = Figure(figsize=(3.6 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for ax, key in zip(axes.flat, keys, strict=False):
        for r in sorted(panels[key], key=lambda r: r["seed"])[:per_panel]:
            ax.plot(r["step"], r["test_error"], lw=1, label=f"seed {r['seed']}")
        ax.axhline(threshold, color="red", lw=0.8, ls=":")
        ax.set_title(f"{key[0]}, width {key[1]}", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    axes[0][0].set_ylabel("test error")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    path = Path(path)
    files.save_figure(fig, path, dpi=110)
    return path


def step_panels(panels: dict[str, list], path: str | Path, *, ylabel: str, title: str = "",
                cols: int = 4) -> Path:
    """Step functions, one panel per key of ``panels``: each line (label, x, y, lo, hi) drawn
    from (0, 0) holding each y until the next x, with its [lo, hi] band shaded; a label's
    colour is the same in every panel (in order of first appearance)."""
    labels = list(dict.fromkeys(line[0] for lines in panels.values() for line in lines))
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, max(1, len(labels))))
    cols = min(cols, max(1, len(panels)))
    rows = -(-max(1, len(panels)) // cols)
    fig = Figure(figsize=(3.8 * cols, 3.0 * rows + (0.4 if title else 0)))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for ax, (name, lines) in zip(axes.flat, panels.items(), strict=False):
        for label, x, y, lo, hi in lines:
            color = colors[labels.index(label)]
            xs = np.concatenate([[0], x])
            ax.step(xs, np.concatenate([[0], y]), where="post", color=color, lw=1.2,
                    label=label)
            ax.fill_between(xs, np.concatenate([[0], lo]), np.concatenate([[0], hi]),
                            step="post", color=color, alpha=0.12, lw=0)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("step t")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    if len(labels) > 1:
        seen: dict = {}
        for ax in axes.flat[:len(panels)]:
            for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
                seen.setdefault(n, h)
        axes.flat[0].legend(list(seen.values()), list(seen), fontsize=6, loc="upper left")
    return _save(fig, path, title)


def _save(fig, path: str | Path, title: str | None = None) -> Path:
    """A panel figure's title, layout and file (its folder made where missing)."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    files.save_figure(fig, path, dpi=110)
    return path
