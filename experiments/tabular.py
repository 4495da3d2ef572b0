"""tabular: wide sparse-init MLPs against tuned random forests, training sets downsampled.

    python experiments/tabular.py [--full] [--config F] [--out DIR]

The paper's practical claim (Edelman et al. 2023, after Grinsztajn et al. 2022): on tabular
classification, sparsely initialised MLPs are more sample-efficient than dense ones and
sometimes beat tuned random forests. The CPU default runs datasets scikit-learn ships plus a
planted sparse parity among real-valued noise features; ``--full`` runs the benchmark's 16
OpenML datasets (fetched once into the cache, see ``parity_jax.tabular``).

Per (dataset, fraction): the best dense MLP and the best sparse MLP (lowest median validation
loss over seeds among widths, depths, s and learning rates) and the tuned forest, test error as
a mean over seeds with a 95% t-interval. Writes table.md, table.csv, one PNG per dataset,
trials.json and report.md.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from parity_jax import experiment, files, plots, run
from parity_jax.kinds.tabular.config import TabularStudy

HERE = Path(__file__).resolve().parent
LABEL = {"dense": "dense MLP", "sparse": "sparse MLP", "forest": "tuned RF"}


def beats(a: dict | None, b: dict | None) -> tuple[bool, bool]:
    """(a's mean test error is below b's, and a's interval lies wholly below b's)."""
    if a is None or b is None:
        return False, False
    return a["test_error"] < b["test_error"], a["ci_high"] < b["ci_low"]


def main(config: str | Path = HERE / "tabular.toml", out: str | Path = "runs/tabular",
         progress=sys.stderr) -> dict:
    out = Path(out)
    study = TabularStudy.from_toml(config)
    results = run(study, out, progress=progress)
    trials = results.trials()
    files.write_text(out / "trials.json", json.dumps(trials, indent=1))
    best = results.cells()  # the best of each family per (dataset, fraction)
    for r in best:
        r["model"] = LABEL[r["family"]]
    by = {(r["dataset"], r["fraction"], r["family"]): r for r in best}

    rows = []
    for spec in study.axis("datasets"):
        for f in sorted(study.axis("fractions"), reverse=True):
            cells = {fam: by.get((spec, f, fam)) for fam in LABEL}
            row = {"dataset": spec, "fraction": f,
                   "m": next(c["m"] for c in cells.values() if c)}
            for fam, c in cells.items():
                row[LABEL[fam]] = (f"{c['test_error']:.3f} [{c['ci_low']:.3f}, "
                                   f"{c['ci_high']:.3f}]" if c else "-")
                if c and c["diverged"]:
                    row[LABEL[fam]] += f" ({c['diverged']} of {c['seeds']} diverged)"
            s = cells["sparse"]
            row["sparse MLP config"] = (f"w{s['width']} d{s['depth']} s{s['s']} "
                                        f"{s['optimizer']} lr{s['lr']:g}" if s else "-")
            rows.append(row)
    cols = list(rows[0])
    files.write_text(out / "table.md", "\n".join(experiment.table(rows, cols)) + "\n")
    table_csv = io.StringIO(newline="")
    w = csv.DictWriter(table_csv, cols)
    w.writeheader()
    w.writerows(rows)
    files.write_text(out / "table.csv", table_csv.getvalue())

    pngs = [plots.line_panels([r for r in best if r["dataset"] == spec], "fraction",
                              "test_error", "model", out / f"{_file(spec)}.png",
                              panel=lambda r: r["dataset"], ylabel="test error")
            for spec in study.axis("datasets")]

    summary = []
    for f in sorted(study.axis("fractions"), reverse=True):
        counts = {}
        for fam in ("dense", "sparse"):
            wins = [beats(by.get((d, f, fam)), by.get((d, f, "forest")))
                    for d in study.axis("datasets")]
            counts[fam] = (sum(w for w, _ in wins), sum(s for _, s in wins))
        sparse_vs_dense = [beats(by.get((d, f, "sparse")), by.get((d, f, "dense")))
                           for d in study.axis("datasets")]
        summary.append(
            f"- fraction {f:g}: sparse MLP beats the forest on {counts['sparse'][0]} of "
            f"{len(study.axis('datasets'))} datasets ({counts['sparse'][1]} with disjoint "
            f"intervals), dense MLP on {counts['dense'][0]} ({counts['dense'][1]}); sparse beats "
            f"dense on {sum(w for w, _ in sparse_vs_dense)} "
            f"({sum(s for _, s in sparse_vs_dense)})")
    mlp = study.mlp
    report = experiment.write_report(out, f"tabular — MLPs vs tuned forests ({study.name})", [
        ("Setup", [
            f"{len(study.axis('datasets'))} datasets x fractions {study.axis('fractions')}; "
            f"{study.seeds} seeds. MLP grid: widths {study.axis('mlp.width')}, depths "
            f"{study.axis('mlp.depth')}, init {study.axis('mlp.init')} (s {study.axis('mlp.s')}),"
            f" {study.axis('mlp.optimizer')} lr {study.axis('mlp.lr')}, wd {mlp.wd}, "
            f"batch {mlp.batch}, "
            f"{mlp.steps} steps (validation every {mlp.eval_every}; each trial reports its "
            f"lowest-validation-loss evaluation). Forest: {study.forest.iterations} random-"
            f"search configurations (n_estimators <= {study.forest.n_estimators_max}). Config "
            f"`{Path(config).name}`."]),
        ("Summary (mean test error; 'disjoint' = 95% intervals do not overlap)", summary),
        ("Best of each family per dataset and fraction (test error, mean [95% CI])",
         experiment.table(rows, cols)),
    ], pngs)
    print(report.read_text())
    return {"trials": trials, "best": best, "rows": rows, "pngs": pngs, "report": report,
            "summary": summary}


def _file(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in spec)


if __name__ == "__main__":
    sys.exit(experiment.main(__doc__, HERE, "tabular", main))
