"""scaling: how the online-SGD steps to learn a sparse target grow with the input dimension n.

    python experiments/scaling.py [--quick] [--config F] [--out DIR]

Per target family (parity k = 3, a staircase, a leap-2 polynomial, Hermite degree 2 and 3 on a
direction uniform on the sphere) and per n of its grid: ``seeds`` trials of online SGD (a fresh
minibatch every step), the median first-hit step with a bootstrap interval, then a fitted
exponent beta of median steps ~ n^beta (least squares on log-log, bootstrap interval over
seeds) against the exponent theory predicts (``THEORY``). ``--quick``: the tiny config
(``scaling_quick.toml``, seconds). The config is the shared settings plus ``[families.NAME]``
tables (``n``: the grid; ``theory``: a key of ``THEORY``; ``task``/``model``/``train``
merged in); ``[success]`` sets every family's threshold in one place; ``n0`` is the dimension
at which ``train.lr`` and ``train.eval_every`` hold (lr ~ (n0/n)^lr_power, lr_power = 1 by
default, and eval_every ~ 1/lr). Each (family,
n) is one study in DIR/NAME/n<n> (each resumes alone). Writes scaling.png and report.md.
"""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from parity_jax import ConfigError, Study, experiment, files, render, run, targets
from parity_jax.config import read_toml

HERE = Path(__file__).resolve().parent
SECTIONS = ("task", "model", "train")
FAMILY_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
BOOTSTRAP = 2000  # resamples of the seeds, per interval
LEVEL = 0.95

# What theory predicts for the number of online-SGD steps at a fixed batch (steps = samples /
# batch), as n grows: (beta, what "n^beta" stands for, the argument and its source).
#
# - Abbe, Boix-Adsera & Misiakiewicz, "SGD learning on neural networks: leap complexity and
#   saddle-to-saddle dynamics", COLT 2023: on uniform Boolean or isotropic Gaussian inputs, the
#   time to learn a function of few coordinates is Theta~(n^max(Leap, 2)) (their main
#   conjecture, proven for a class of Gaussian targets with 2-layer nets under extra
#   assumptions on how SGD is run); time counts n operations per sample, so online SGD needs
#   Theta~(n^max(Leap - 1, 1)) samples. Leap: the largest number of new coordinates a target's
#   monomials, taken in the best order, add at once.
# - Ben Arous, Gheissari & Jagannath, "Online stochastic gradient descent on non-convex losses
#   from high-dimensional inference", JMLR 2021: a single-index target with information exponent
#   k* (the first non-zero Hermite coefficient of its link) needs n^(k*-1) samples for k* >= 3,
#   n log n for k* = 2, n for k* = 1, with step sizes that shrink with n; tight for online SGD.
# - Damian, Nichani, Ge & Lee, "Smoothing the landscape boosts the signal for SGD", NeurIPS
#   2023: online SGD on a *smoothed* loss needs only n^(k*/2) (the CSQ lower bound). Plain SGD,
#   as here, has no smoothing: the Ben Arous et al. regime.
THEORY = {
    "leap3": (2.0, "n^2", "parity of k = 3 coordinates has leap 3: n^max(3-1, 1) = n^2 "
              "(Abbe et al. 2023)"),
    "leap2": (1.0, "n", "z1 + z1z2z3 has leap 2 (z2, z3 come together): n^max(2-1, 1) = n "
              "(Abbe et al. 2023)"),
    "leap1": (1.0, "n", "a staircase has leap 1 (one new coordinate per monomial): "
              "n^max(1-1, 1) = n (Abbe et al. 2023)"),
    "ie2": (1.0, "n log n", "He2 has information exponent k* = 2: n log n (Ben Arous et al. "
            "2021); smoothing does not change k* = 2"),
    "ie3": (2.0, "n^2", "He3 has information exponent k* = 3: n^(k*-1) = n^2 for plain online "
            "SGD (Ben Arous et al. 2021); n^(k*/2) = n^1.5 with a smoothed loss (Damian et "
            "al. 2023), which is not what runs here"),
}


def load(config: str | Path) -> tuple[dict, list[dict]]:
    """(settings, families): each family a dict with its name, theory key, n grid and one
    study per n (the shared study, the family's tables merged in, lr and eval_every scaled
    from n0; its success threshold from ``[success]``)."""
    d = read_toml(config)
    families = d.pop("families", None)
    success = d.pop("success", None)
    n0 = d.pop("n0", None)
    power = d.pop("lr_power", 1.0)
    if not isinstance(families, dict) or not families:
        raise ConfigError("families: must be one or more tables [families.NAME] (the settings "
                          "each target family adds to the shared study)")
    if not (isinstance(success, dict) and set(success) == {"error", "nmse"}
            and all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1
                    for v in success.values())):
        raise ConfigError("success: must be a table with error = and nmse = thresholds in "
                          "[0, 1) (a ±1-valued target's test error, a real-valued one's "
                          "normalized test MSE)")
    if isinstance(n0, bool) or not isinstance(n0, int) or n0 < 1:
        raise ConfigError(f"n0 = {n0!r}: must be a positive integer (the dimension at which "
                          "train.lr and train.eval_every hold)")
    if isinstance(power, bool) or not isinstance(power, int | float) or not 0 <= power <= 2:
        raise ConfigError(f"lr_power = {power!r}: must be a number in [0, 2] (lr(n) = lr * "
                          "(n0 / n)^lr_power)")
    out = []
    for family, extra in families.items():
        if not FAMILY_NAME.fullmatch(family) or not isinstance(extra, dict):
            raise ConfigError(f"families.{family}: must be a table named by 1-64 letters, "
                              "digits, '_' or '-' (it names the family's store folder)")
        extra = dict(extra)
        ns, theory = extra.pop("n", None), extra.pop("theory", None)
        if not (isinstance(ns, list) and len(ns) >= 2 and all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in ns)
                and len(set(ns)) == len(ns)):
            raise ConfigError(f"families.{family}.n = {ns!r}: must be a list of at least two "
                              "distinct positive integers (the dimensions swept)")
        if theory not in THEORY:
            raise ConfigError(f"families.{family}.theory = {theory!r}: must be one of "
                              f"{', '.join(THEORY)}")
        merged = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
        for key, value in extra.items():
            if key in SECTIONS and isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
        target = merged.get("task", {}).get("target", targets.DEFAULT)
        studies = []
        for n in sorted(ns):
            s = {k: dict(v) if isinstance(v, dict) else v for k, v in merged.items()}
            s["name"] = f"{d.get('name', 'scaling')}-{family}-n{n}"
            s["task"]["n"] = n
            train = s.setdefault("train", {})
            try:
                # lr(n) = lr(n0) (n0 / n)^power; evaluations every ~ 1 / lr
                train["lr"] = float(train.get("lr", 0.1)) * n0**power / n**power
                train["eval_every"] = max(1, round(int(train.get("eval_every", 100))
                                                   * n**power / n0**power))
                train["threshold"] = float(
                    success["error" if targets.metric(target) == "error" else "nmse"])
                studies.append(Study.from_dict(s))
            except (ConfigError, TypeError, ValueError) as e:
                raise ConfigError(f"families.{family} (n = {n}): {e}") from None
        out.append({"family": family, "theory": theory, "n": sorted(ns), "studies": studies})
    return {"n0": n0, "lr_power": power, "success": success, "seeds": d.get("seeds")}, out


# ---- statistics ------------------------------------------------------------------------------


def _quantiles(x: np.ndarray) -> tuple[float, float]:
    """The (1 - LEVEL) / 2 and (1 + LEVEL) / 2 quantiles (inverted CDF: inf stays inf)."""
    a = (1 - LEVEL) / 2
    return tuple(float(np.quantile(x, q, method="inverted_cdf")) for q in (a, 1 - a))


def median_steps(hits: np.ndarray, rng: np.random.Generator) -> dict:
    """The median of first-hit steps (inf: no success within the budget) with a bootstrap
    interval over seeds; inf where more than half the seeds (or a resample's) never succeed."""
    hits = np.asarray(hits, float)
    boot = np.median(hits[rng.integers(len(hits), size=(BOOTSTRAP, len(hits)))], axis=1)
    lo, hi = _quantiles(boot)
    return {"median": float(np.median(hits)), "lo": lo, "hi": hi}


def fit_exponent(ns, hits: list[np.ndarray], budgets, rng: np.random.Generator) -> dict:
    """beta of median steps ~ n^beta: least squares on (log n, log median) over the n whose
    median is not censored (> half the seeds succeeded), with a bootstrap interval (the seeds
    of each n resampled). A resample whose median of a fitted n is censored uses that n's
    budget, a lower bound (``censored_resamples`` counts them)."""
    ns = np.asarray(ns, float)
    med = np.array([np.median(np.asarray(h, float)) for h in hits])
    fitted = np.isfinite(med)
    out = {"fitted_n": [int(n) for n in ns[fitted]], "beta": None, "lo": None, "hi": None,
           "censored_resamples": 0, "last_pair": None}
    if fitted.sum() < 2:
        return out
    x = np.log(ns[fitted])
    out["beta"] = float(np.polyfit(x, np.log(med[fitted]), 1)[0])
    boots = []
    for h, budget in zip([h for h, f in zip(hits, fitted, strict=True) if f],
                         np.asarray(budgets, float)[fitted], strict=True):
        h = np.asarray(h, float)
        b = np.median(h[rng.integers(len(h), size=(BOOTSTRAP, len(h)))], axis=1)
        boots.append(np.where(np.isfinite(b), b, budget))
        out["censored_resamples"] += int(np.sum(~np.isfinite(b)))
    logs = np.log(np.stack(boots))  # (fitted n, BOOTSTRAP)
    xc = x - x.mean()
    betas = xc @ (logs - logs.mean(axis=0)) / (xc @ xc)
    out["lo"], out["hi"] = _quantiles(betas)
    i, j = np.flatnonzero(fitted)[-2:]  # the local slope between the two largest fitted n
    out["last_pair"] = (int(ns[i]), int(ns[j]),
                        float(math.log(med[j] / med[i]) / math.log(ns[j] / ns[i])))
    return out


def effective_slope(theory: str, ns) -> float:
    """The log-log slope over ``ns`` of what the prediction stands for (n log n's is
    1 + 1/ln n at the geometric mean of the range, not 1)."""
    beta, form, _ = THEORY[theory]
    if form != "n log n" or len(ns) < 2:
        return beta
    a, b = min(ns), max(ns)
    return math.log(b * math.log(b) / (a * math.log(a))) / math.log(b / a)


# ---- running and reporting ---------------------------------------------------------------------


def _steps(v: float, budget: int | None = None) -> str:
    return f">= {budget}" if not math.isfinite(v) else f"{v:g}"


def figure(families: list[dict], path: Path) -> Path:
    """One log-log panel per family: median steps vs n (bootstrap intervals; censored medians
    as triangles at the budget), the fitted line, and the theory slope through the data."""
    fig = Figure(figsize=(3.0 * len(families), 3.2))
    axes = fig.subplots(1, len(families), squeeze=False)[0]
    for ax, f in zip(axes, families, strict=True):
        rows, fit = f["rows"], f["fit"]
        ns = np.array([r["n"] for r in rows], float)
        med = np.array([r["median"] for r in rows])
        ok = np.isfinite(med)
        hi = np.array([r["hi"] if math.isfinite(r["hi"]) else r["steps"] for r in rows])
        lo = np.array([r["lo"] for r in rows])
        ax.errorbar(ns[ok], med[ok], yerr=[med[ok] - lo[ok], hi[ok] - med[ok]], fmt="o",
                    ms=4, capsize=2, color="C0", label="median steps (95% CI)")
        if (~ok).any():
            ax.plot(ns[~ok], [r["steps"] for r, o in zip(rows, ok, strict=True) if not o],
                    "^", color="C3", ms=6, label=">= budget (censored)")
        if fit["beta"] is not None:
            x = ns[ok]
            c = np.exp(np.mean(np.log(med[ok])) - fit["beta"] * np.mean(np.log(x)))
            ax.plot(x, c * x ** fit["beta"], "-", color="C0", lw=1,
                    label=f"fit: beta = {fit['beta']:.2f}")
            beta_t, form, _ = THEORY[f["theory"]]
            shape = x * np.log(x) if form == "n log n" else x ** beta_t
            c = np.exp(np.mean(np.log(med[ok])) - np.mean(np.log(shape)))
            ax.plot(x, c * shape, "--", color="k", lw=1, label=f"theory: {form}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ns, [str(int(n)) for n in ns], fontsize=7)
        ax.minorticks_off()
        ax.set_title(f"{f['family']}: theory {THEORY[f['theory']][1]}", fontsize=9)
        ax.set_xlabel("input dimension n")
        ax.legend(fontsize=6, loc="upper left")
    axes[0].set_ylabel("online SGD steps to success")
    fig.tight_layout()
    return files.save_figure(fig, path, dpi=100)


def main(config: str | Path = HERE / "scaling.toml", out: str | Path = "runs/scaling",
         progress=sys.stderr) -> dict:
    out = Path(out)
    settings, families = load(config)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for f in families:
        f["rows"], hits = [], []
        for n, study in zip(f["n"], f["studies"], strict=True):
            results = run(study, out / f["family"] / f"n{n}", progress=progress)
            (cell,) = results.cells()
            h = np.array([np.inf if t["first_hit"] is None else t["first_hit"]
                          for t in results.trials()])
            hits.append(h)
            f["rows"].append({"n": n, "lr": cell["lr"], "eval_every": cell["eval_every"],
                              "steps": cell["steps"], "seeds": len(h),
                              "successes": int(np.isfinite(h).sum()),
                              "diverged": cell["diverged"], **median_steps(h, rng)})
        f["fit"] = fit_exponent(f["n"], hits, [r["steps"] for r in f["rows"]], rng)
        c = f["studies"][0].cells()[0]
        f["label"] = targets.label(c.target, dict(c.params)) + (
            f" k={c.k}" if not targets.reads_all(c.target, dict(c.params)) else "")
    wall = time.perf_counter() - start
    png = figure(families, out / "scaling.png")
    report = experiment.write_report(out, "scaling — online-SGD steps vs the dimension n",
                                     _sections(settings, families, config, out, wall), [png])
    print(report.read_text())
    return {"families": families, "pngs": [png], "report": report, "wall_s": wall}


def _normaliser(families: list[dict]) -> str:
    """What the real-valued families' NMSE divides by (``train.nmse`` of their cells)."""
    modes = {c.nmse for f in families for st in f["studies"] for c in st.cells()} - {None}
    return " / ".join("MSE / Var y on the test set" if m == "test" else
                      "MSE / the target's population variance" for m in sorted(modes)) or "-"


def _sections(settings: dict, families: list[dict], config, out: Path, wall: float) -> list:
    c = families[0]["studies"][0].cells()[0]
    setup = [
        f"{sum(len(f['studies']) for f in families)} studies (one per family and n), stored in "
        f"`{out}/<family>/n<n>`; config `{Path(config).name}`. Online SGD (a fresh minibatch "
        f"of {c.batch} every step), MLP width {c.width}, weight decay {c.wd:g}, "
        f"{settings['seeds']} seeds (data, direction, init and minibatches all vary). The "
        f"learning rate scales as lr(n) = lr(n0) * (n0 / n)^{settings['lr_power']:g} (n0 = "
        f"{settings['n0']}; power 1: the per-step noise, ~ lr * n / batch, is the same at "
        "every n, as in the theorems' scaling limits; 0: a fixed lr). Success: test error <= "
        f"{settings['success']['error']:g} (±1-valued targets), normalized test MSE "
        f"({_normaliser(families)}) <= {settings['success']['nmse']:g} (real-valued); "
        "the first-hit step is the first evaluation at which it holds (evaluations every "
        "eval_every(n) = eval_every(n0) * lr(n0) / lr(n) steps: the resolution of a median).",
        "",
        "Censoring: a trial that does not succeed within its step budget counts as a first hit "
        "of +inf (>= budget). A median is censored (shown as `>= budget`) when half the seeds "
        "or more never succeed; such an n is left out of the fit, and marked in the table and "
        "the figure. The fit is least squares of log median steps on log n over the other n; "
        f"its {LEVEL:.0%} interval resamples the seeds of each n ({BOOTSTRAP} resamples); a "
        "resample whose median of a fitted n is censored uses the budget there (a lower bound; "
        "counted below). Median intervals: the same bootstrap, per n.",
        "",
        f"Wall time of the runs in this invocation: {wall:.0f} s (resumed cells cost nothing).",
        "",
        "Caveats: the exponents are measured over a small range of n (pre-asymptotic: a "
        "constant time to fit the target after its support is found flattens the small-n end); "
        "Theta~ hides log factors (n^2 log n has a local slope near 2.25 here); the theorems "
        "concern step sizes chosen for each n, while here lr ~ 1/n is fixed in advance: where a "
        "larger lr is stable at large n, fewer steps would do, so a fitted beta bounds the "
        "best-lr exponent from above; success is a threshold on the test error or normalized "
        "MSE, not the overlap with the hidden direction the theorems track.",
    ]
    summary = []
    for f in families:
        fit, (beta_t, form, _) = f["fit"], THEORY[f["theory"]]
        eff = effective_slope(f["theory"], fit["fitted_n"] or f["n"])
        summary.append({
            "family": f["family"], "target": f["label"], "n": f"{f['n'][0]}-{f['n'][-1]}",
            "fitted beta": "-" if fit["beta"] is None else
            f"{fit['beta']:.2f} [{fit['lo']:.2f}, {fit['hi']:.2f}]",
            "last-pair slope": "-" if fit["last_pair"] is None else
            f"{fit['last_pair'][2]:.2f} ({fit['last_pair'][0]}->{fit['last_pair'][1]})",
            "predicted": form + (f" (slope {eff:.2f} here)" if eff != beta_t else
                                 f" (beta = {beta_t:g})"),
            "censored n": ", ".join(str(r["n"]) for r in f["rows"]
                                    if not math.isfinite(r["median"])) or "none"})
    sections = [("Setup", setup),
                ("Fitted vs predicted exponents", [
                    *render.markdown_table(summary, list(summary[0])), "",
                    *(f"- **{f['family']}**: {THEORY[f['theory']][2]}." for f in families)])]
    for f in families:
        rows = [{"n": r["n"], "lr": f"{r['lr']:.4g}", "eval_every": r["eval_every"],
                 "budget": r["steps"], "seeds": r["seeds"], "successes": r["successes"],
                 "diverged": r["diverged"],
                 "median steps [95% CI]": f"{_steps(r['median'], r['steps'])} "
                 f"[{_steps(r['lo'], r['steps'])}, {_steps(r['hi'], r['steps'])}]"}
                for r in f["rows"]]
        fit = f["fit"]
        lines = render.markdown_table(rows, list(rows[0]))
        lines += ["", "Fitted beta: " + ("none (fewer than two uncensored n)" if fit["beta"] is
                  None else f"{fit['beta']:.2f} [{fit['lo']:.2f}, {fit['hi']:.2f}] over n = "
                  f"{', '.join(map(str, fit['fitted_n']))}; {fit['censored_resamples']} of "
                  f"{BOOTSTRAP * len(fit['fitted_n'])} resampled medians censored") +
                  f"; predicted {THEORY[f['theory']][1]}."]
        sections.append((f"{f['family']}: {f['label']}", lines))
    return sections


if __name__ == "__main__":
    if "--quick" in sys.argv:  # the tiny config: seconds
        i = sys.argv.index("--quick")
        sys.argv[i:i + 1] = ["--config", str(HERE / "scaling_quick.toml")]
    sys.exit(experiment.main(__doc__, HERE, "scaling", main))
