"""[select]: the lr (or wd) tuned per group, cross-fitted on the even / odd seed halves -- the
config's rules, the selection rule, unbiasedness where every lr is equally good (while the
naive best-of p is biased upward), and the report of a tiny study."""

from __future__ import annotations

import re
import tomllib

import faults
import numpy as np
import pytest
from conftest import one_error

import parity_jax
from parity_jax import cli, kinds, reduce
from parity_jax.errors import ConfigError
from parity_jax.kinds.parity import select
from parity_jax.kinds.parity.config import Select, Study

PLAIN = faults.SMALL.replace("seeds = 3", "seeds = 4").replace(
    "steps = 3000", "steps = 600\nlr = [0.03, 0.3]").replace("init = [\"dense\", \"sparse\"]",
                                                           "init = \"dense\"")
SELECT = PLAIN + '[select]\nover = "lr"\n'


def _study(text: str = SELECT) -> Study:
    return Study.from_dict(tomllib.loads(text))


def _trials(outcomes, hits) -> list[dict]:
    """A cell's trial records: seed i succeeded at first hit hits[i] where outcomes[i]."""
    return [{"seed": i, "success": bool(o), "first_hit": int(h) if o else None,
             "diverged": False} for i, (o, h) in enumerate(zip(outcomes, hits, strict=True))]


def _group(key, lrs, outcomes_LxS, hits_LxS) -> list[dict]:
    """One group's cell records, as ``report.summarize`` makes them for [select]."""
    recs = []
    for lr, o, h in zip(lrs, outcomes_LxS, hits_LxS, strict=True):
        n = len(o)
        recs.append({"g": key, "lr": lr, "p": float(np.mean(o)), "trials": n,
                     "select_over": "lr", **select.half_fields(_trials(o, h))})
    return recs


# ---- config --------------------------------------------------------------------------------

@pytest.mark.quick
def test_without_select_the_study_and_its_fingerprint_are_what_they_were():
    plain, sel = _study(PLAIN), _study()
    assert plain.select is None and "select" not in plain.to_dict()
    assert parity_jax.DEFAULT_STUDY.fingerprint() == "027c097ad67f79d6"
    assert sel.select == Select("lr") and sel.to_dict()["select"] == {"over": "lr"}
    assert sel.fingerprint() != plain.fingerprint()
    assert sel.cells() == plain.cells()  # [select] is no grid axis: the same trials


@pytest.mark.quick
@pytest.mark.parametrize("section,message", [
    ('over = "wd"', "select.over = 'wd': must be a [train] grid axis of at least 2 values; "
                    "allowed: lr"),
    ('over = "width"', "select.over = 'width': must be one of lr, wd"),
    ("over = 1", "select.over = 1: must be one of lr, wd"),
    ('by = "lr"', "select.by: unknown key; allowed: over"),
])
def test_bad_select_values_are_one_line_naming_the_field(tmp_path, capsys, section, message):
    config = tmp_path / "s.toml"
    config.write_text(PLAIN + "[select]\n" + section + "\n")
    assert cli.main(["run", str(config), "--out", str(tmp_path / "o")]) == 2
    assert one_error(capsys) == f"error: {message}"
    assert not (tmp_path / "o").exists()


@pytest.mark.quick
def test_select_needs_its_axis_to_be_a_list_of_two_or_more(tmp_path, capsys):
    one = PLAIN.replace("lr = [0.03, 0.3]", "lr = [0.03]") + '[select]\nover = "lr"\n'
    with pytest.raises(ConfigError, match=r"^select.over = 'lr': must be a \[train\] grid axis "
                                          r"of at least 2 values; allowed: none \(train.lr"):
        _study(one)
    wd = PLAIN.replace("steps = 600", "steps = 600\nwd = [0.0, 0.01]") + "[select]\nover='wd'\n"
    assert _study(wd).select.over == "wd"


@pytest.mark.quick
def test_select_needs_two_seeds_and_no_adaptive_section(tmp_path, capsys):
    # one seed planned fine and reported "-" for every group; with [adaptive] the halves'
    # sizes depend on the outcomes
    one_seed = re.sub(r"seeds = \d+", "seeds = 1", PLAIN) + '[select]\nover = "lr"\n'
    adaptive = PLAIN + '[select]\nover = "lr"\n[adaptive]\nfirst = 1\n'
    for text, message in ((one_seed, "error: seeds = 1: must be at least 2 with [select]"),
                          (adaptive, "error: select: must not be combined with [adaptive]")):
        config = tmp_path / "s.toml"
        config.write_text(text)
        assert cli.main(["plan", str(config)]) == 2
        assert one_error(capsys).startswith(message)


@pytest.mark.quick
def test_select_in_a_tabular_study_is_refused(tmp_path, capsys):
    config = tmp_path / "t.toml"
    config.write_text('datasets = ["sklearn:wine"]\n[select]\nover = "lr"\n')
    assert cli.main(["plan", str(config)]) == 2
    assert one_error(capsys).startswith("error: select: unknown key")
    with pytest.raises(ConfigError, match="select"):
        kinds.load_study(config)


# ---- the selection rule --------------------------------------------------------------------

@pytest.mark.quick
def test_a_clearly_better_lr_is_chosen_on_both_halves():
    lrs = [0.01, 0.03, 0.1, 0.3]
    outcomes = [[i % 8 == 0 for i in range(16)], [i % 8 == 1 for i in range(16)],
                [i != 5 for i in range(16)], [i < 3 for i in range(16)]]
    hits = [[400] * 16] * 4
    (g,) = select.selections(_group(0, lrs, outcomes, hits), "lr", ["g", "lr"])
    assert g["chosen"] == (0.1, 0.1)
    # held out: 0.1's odd seeds (7 of 8: seed 5 failed) and its even ones (8 of 8)
    assert (g["successes"], g["trials"]) == (15, 16) and g["p"] == 15 / 16
    assert (g["ci_low"], g["ci_high"]) == reduce.wilson(7.5, 8)  # design effect 2
    assert g["best_p"] == 15 / 16
    assert [r["lr"] for r in g["arms"]] == lrs


@pytest.mark.quick
def test_ties_go_to_the_smaller_median_first_hit_then_the_smaller_value():
    arms = [{"value": 0.3, "successes": (2, 1), "trials": (4, 4),
             "median_first_hit": (500.0, 200.0)},
            {"value": 0.1, "successes": (2, 1), "trials": (4, 4),
             "median_first_hit": (300.0, 200.0)},
            {"value": 1.0, "successes": (1, 0), "trials": (4, 4),
             "median_first_hit": (100.0, None)}]
    assert reduce.choose(arms, 0) == 0.1  # 2/4 each: the smaller median first hit
    assert reduce.choose(arms, 1) == 0.1  # 1/4, 200 each: the smaller lr
    fit = reduce.cross_fit(arms)
    assert fit["chosen"] == (0.1, 0.1) and (fit["successes"], fit["trials"]) == (3, 8)
    # a half with no trials chooses nothing; the other half's choice is still held out
    empty = [{**a, "trials": (a["trials"][0], 0), "successes": (a["successes"][0], 0)}
             for a in arms]
    fit = reduce.cross_fit(empty)
    assert fit["chosen"] == (0.1, None) and (fit["successes"], fit["trials"]) == (0, 0)
    assert fit["p"] is None


@pytest.mark.quick
def test_where_every_lr_is_equally_good_the_held_out_p_is_unbiased_and_best_of_is_not():
    """4 lrs of equal p = 0.3, 16 seeds each, 4000 groups, through ``select.selections`` (what
    the report prints): the held-out p's mean is within Monte-Carlo error of p; the best-of
    p's is far above it (the winner's curse)."""
    rng = np.random.default_rng(30)
    groups, lrs, seeds, p = 4000, [0.01, 0.03, 0.1, 0.3], 16, 0.3
    outcomes = rng.random((groups, len(lrs), seeds)) < p
    hits = rng.integers(1, 50, (groups, len(lrs), seeds)) * 100
    records = [r for g in range(groups) for r in _group(g, lrs, outcomes[g], hits[g])]
    fits = select.selections(records, "lr", ["g", "lr"])
    held = np.array([f["p"] for f in fits])
    best = np.array([f["best_p"] for f in fits])
    se = held.std(ddof=1) / np.sqrt(groups)
    assert abs(held.mean() - p) < 4 * se, (held.mean(), se)
    assert best.mean() - p > 30 * se, (best.mean(), se)  # about 0.42 against 0.30
    # the interval (Wilson with a design effect of 2: the halves' counts are correlated)
    # covers p at least as often as it says; plain Wilson on the pooled counts would not
    cover = np.mean([f["ci_low"] <= p <= f["ci_high"] for f in fits])
    plain = np.mean([lo <= p <= hi for lo, hi in (reduce.wilson(f["successes"], f["trials"])
                                                  for f in fits)])
    assert cover >= 0.95 and plain < 0.93, (cover, plain)
    # the choice is deterministic in the outcomes and spread over the lrs
    assert {f["chosen"][0] for f in fits} == set(lrs)


# ---- end to end ----------------------------------------------------------------------------

@pytest.mark.slow
def test_a_select_study_reports_the_chosen_lr_per_group(tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text(SELECT)
    assert cli.main(["run", str(config), "--out", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    assert cli.main(["report", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "lr tuned per group, cross-fitted" in text
    res = parity_jax.Results(tmp_path / "o")
    cells = res.cells()
    assert all(c["select_over"] == "lr" and c["trials_even"] == c["trials_odd"] == 2
               for c in cells)
    fits = select.selections(cells, "lr", ["width", "m", "lr"])
    assert len(fits) == 4  # width x m
    for f in fits:
        # the same selection, recomputed from the stored trials
        by_lr = {r["lr"]: r for r in f["arms"]}
        trials = [t for t in res.trials() if t["width"] == f["width"] and t["m"] == f["m"]]
        for half in (0, 1):
            rate = {lr: np.mean([t["success"] for t in trials
                                 if t["lr"] == lr and t["seed"] % 2 == half]) for lr in by_lr}
            assert rate[f["chosen"][half]] == max(rate.values())
        even, odd = f["chosen"]
        line = (f"  width={f['width']}  m={f['m']}:  lr = {even:g} (even), {odd:g} (odd);  "
                f"held-out p = {f['p']:.2f} [{f['ci_low']:.2f}, {f['ci_high']:.2f}] "
                f"({f['successes']}/{f['trials']});  best-of p = {f['best_p']:.2f}")
        assert line in text.splitlines(), line
    assert text.count("    p per lr: 0.03: ") == 4
