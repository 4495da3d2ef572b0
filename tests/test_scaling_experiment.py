"""experiments/scaling.py: its config, its statistics (medians with censoring, the fitted
exponent) and one end-to-end run of its tiny config."""

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import load_experiment

import parity_jax

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
scaling = load_experiment("scaling")


@pytest.mark.quick
def test_the_default_config_scales_lr_and_takes_success_from_one_place():
    settings, families = scaling.load(EXPERIMENTS / "scaling.toml")
    assert [f["family"] for f in families] == ["parity", "staircase", "leap2", "hermite2",
                                               "hermite3"]
    assert [f["theory"] for f in families] == ["leap3", "leap1", "leap2", "ie2", "ie3"]
    n0, success = settings["n0"], settings["success"]
    for f in families:
        cells = [s.cells() for s in f["studies"]]
        assert all(len(c) == 1 for c in cells)
        cells = [c[0] for c in cells]
        assert [c.n for c in cells] == f["n"] and all(c.online for c in cells)
        lr0 = cells[0].lr * cells[0].n / n0
        assert all(math.isclose(c.lr * c.n / n0, lr0) for c in cells)  # lr ~ 1/n
        metric = parity_jax.targets.metric(cells[0].target)
        assert all(c.threshold == success["error" if metric == "error" else "nmse"]
                   for c in cells)
        if f["family"].startswith("hermite"):
            assert all(c.direction == "sphere" and c.inputs == "gaussian" for c in cells)


@pytest.mark.quick
def test_lr_power_zero_keeps_the_lr_fixed(tmp_path):
    config = tmp_path / "fixed.toml"
    config.write_text((EXPERIMENTS / "scaling_quick.toml").read_text()
                      .replace("n0 = 8", "n0 = 8\nlr_power = 0"))
    settings, families = scaling.load(config)
    cells = [s.cells()[0] for s in families[0]["studies"]]
    assert settings["lr_power"] == 0 and [c.n for c in cells] == [6, 10]
    assert [c.lr for c in cells] == [0.2, 0.2] and [c.eval_every for c in cells] == [20, 20]
    _, families = scaling.load(EXPERIMENTS / "scaling_quick.toml")  # lr_power = 1 (default)
    cells = [s.cells()[0] for s in families[0]["studies"]]
    assert [c.eval_every for c in cells] == [15, 25]
    assert [c.lr for c in cells] == pytest.approx([0.2 * 8 / 6, 0.2 * 8 / 10])


@pytest.mark.quick
def test_censored_medians_and_the_fitted_exponent():
    rng = np.random.default_rng(1)
    ns = [16, 32, 64, 128]
    # steps ~ 3 n^2 with lognormal luck; at n = 128 most seeds hit the budget
    hits = [3 * n**2 * np.exp(0.2 * rng.standard_normal(31)) for n in ns[:3]]
    hits.append(np.array([30000.0] * 10 + [np.inf] * 21))
    budgets = [50000, 50000, 50000, 40000]
    m = scaling.median_steps(hits[-1], rng)
    assert m["median"] == math.inf and m["hi"] == math.inf  # censored: ">= budget"
    assert scaling._steps(m["median"], 40000) == ">= 40000"
    m = scaling.median_steps(hits[0], rng)
    assert m["lo"] <= m["median"] <= m["hi"] and math.isfinite(m["hi"])
    fit = scaling.fit_exponent(ns, hits, budgets, rng)
    assert fit["fitted_n"] == [16, 32, 64]  # the censored n is left out
    assert fit["lo"] < 2 < fit["hi"] and abs(fit["beta"] - 2) < 0.1 and fit["hi"] - fit["lo"] < 0.3
    assert fit["last_pair"][:2] == (32, 64)
    # fewer than two uncensored n: no fit
    assert scaling.fit_exponent(ns[:2], [hits[-1], hits[-1]], budgets[:2], rng)["beta"] is None
    # n log n's slope over a range is above 1
    assert 1.1 < scaling.effective_slope("ie2", [16, 256]) < 1.4
    assert scaling.effective_slope("ie3", [16, 256]) == 2.0


@pytest.mark.quick
@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace('theory = "ie2"', 'theory = "ie9"'),
     "families.hermite2.theory = 'ie9': must be one of leap3, leap2, leap1, ie2, ie3"),
    (lambda t: t.replace("n = [6, 10]", "n = [6]", 1),
     "families.parity.n = [6]: must be a list of at least two distinct"),
    (lambda t: t.replace("nmse = 0.3", "nmse = 1.5"), "success: must be a table"),
    (lambda t: t.replace("n0 = 8", "n0 = 0"), "n0 = 0: must be a positive integer"),
    (lambda t: t.replace("n0 = 8", "n0 = 8\nlr_power = -1"),
     "lr_power = -1: must be a number in [0, 2]"),
    (lambda t: t.replace('direction = "sphere"', 'direction = "round"'),
     "families.hermite2 (n = 6): task.direction = 'round': must be one of sparse, sphere"),
])
def test_bad_configs_are_one_line(tmp_path, edit, message):
    config = tmp_path / "bad.toml"
    config.write_text(edit((EXPERIMENTS / "scaling_quick.toml").read_text()))
    with pytest.raises(parity_jax.ConfigError) as e:
        scaling.load(config)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_scaling_runs_its_quick_config_end_to_end(tmp_path):
    out = tmp_path / "out"
    result = scaling.main(EXPERIMENTS / "scaling_quick.toml", out, progress=None)
    families = result["families"]
    assert [f["family"] for f in families] == ["parity", "hermite2"]
    for f in families:
        assert [r["n"] for r in f["rows"]] == [6, 10] and all(r["seeds"] == 4 for r in f["rows"])
        assert all((out / f["family"] / f"n{n}" / "results.sqlite").exists() for n in f["n"])
    report = result["report"].read_text()
    assert "## Fitted vs predicted exponents" in report and "n log n" in report
    assert "![scaling](scaling.png)" in report and (out / "scaling.png").stat().st_size > 1000
    again = scaling.main(EXPERIMENTS / "scaling_quick.toml", out, progress=None)  # resumes
    assert [r["median"] for f in again["families"] for r in f["rows"]] == \
        [r["median"] for f in families for r in f["rows"]]
