"""Figures: success heatmaps over (m, width), one per init, with the m-frontier drawn."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from parity_jax import reduce  # noqa: E402


def _varying(records: list[dict], exclude: tuple[str, ...]) -> list[str]:
    return [f for f in reduce.CELL_FIELDS
            if f not in exclude and len({r[f] for r in records}) > 1]


def heatmaps(records: list[dict], out_dir: str | Path, target: float = 0.5) -> list[Path]:
    """Writes heatmap_<init>[_<other settings>].png per init (and per setting of any other
    varying field); returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    others = _varying(records, exclude=("m", "width", "init", "s"))
    panels: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        label = r["init"] if r["init"] == "dense" else f"sparse-s{r['s']}"
        panels[(label, *(r[f] for f in others))].append(r)
    paths = []
    for key, rs in sorted(panels.items(), key=lambda kv: str(kv[0])):
        label, rest = key[0], dict(zip(others, key[1:], strict=True))
        ms = sorted({r["m"] for r in rs})
        widths = sorted({r["width"] for r in rs})
        grid = np.full((len(widths), len(ms)), np.nan)
        for r in rs:
            if r["p"] is not None:
                grid[widths.index(r["width"]), ms.index(r["m"])] = r["p"]
        fig, ax = plt.subplots(figsize=(1.1 * len(ms) + 2.5, 0.8 * len(widths) + 1.8))
        im = ax.imshow(grid, origin="lower", vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i in range(len(widths)):
            for j in range(len(ms)):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center",
                            color="white" if grid[i, j] < 0.6 else "black", fontsize=8)
        # Frontier: a staircase along the left edge of each width's smallest m with p >= target.
        fx, fy = [], []
        for i in range(len(widths)):
            hits = [j for j in range(len(ms)) if np.isfinite(grid[i, j]) and grid[i, j] >= target]
            x = min(hits) - 0.5 if hits else np.nan
            fx += [x, x]
            fy += [i - 0.5, i + 0.5]
        fx, fy = np.array(fx), np.array(fy)
        if np.isfinite(fx).any():
            ax.plot(fx, fy, color="red", lw=2, label=f"frontier p >= {target:g}")
            ax.legend(loc="upper right", fontsize=7)
        ax.set_xticks(range(len(ms)), [str(m) for m in ms])
        ax.set_yticks(range(len(widths)), [str(w) for w in widths])
        ax.set_xlabel("training samples m")
        ax.set_ylabel("width r")
        extra = ", ".join(f"{k}={v}" for k, v in rest.items())
        n, k = rs[0]["n"], rs[0]["k"]
        ax.set_title(f"success probability, ({n},{k})-parity, {label}"
                     + (f"\n{extra}" if extra else ""), fontsize=9)
        fig.colorbar(im, ax=ax, label="p(success)")
        fig.tight_layout()
        suffix = "".join(f"_{k}{v}" for k, v in rest.items())
        path = out_dir / f"heatmap_{label}{suffix}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
