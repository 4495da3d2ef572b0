"""Each experiment runs once on a tiny config; its config matches the built-in default; out is
checked before its work; the tabular script writes its outputs and resumes."""

import json
import sqlite3
import sys
from pathlib import Path

import faults
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_experiment, one_error

import parity_jax
from parity_jax import DEFAULT_STUDY, Study, core, devices, experiment, forest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_fig1_config_is_the_built_in_default_study():
    assert Study.from_toml(EXPERIMENTS / "fig1_cpu.toml").fingerprint() == \
        DEFAULT_STUDY.fingerprint()


@pytest.mark.slow
def test_fig1_script_on_a_tiny_config(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text((EXPERIMENTS / "fig1_cpu.toml").read_text()
                      .replace("seeds = 16", "seeds = 2")
                      .replace("m = [200, 500, 1000, 2000, 5000]", "m = [50, 300]")
                      .replace("n = 50", "n = 10").replace("k = 3", "k = 2")
                      .replace("width = [10, 30, 100, 300, 1000]", "width = [4, 16]")
                      .replace("n_test = 2000", "n_test = 200")
                      .replace("steps = 10000", "steps = 500"))
    curves = tmp_path / "curves.toml"
    curves.write_text(TINY.format(name="c", m=60, width=[8, 16], init='["dense", "sparse"]',
                                  extra="stop_on_success = false\nrecord_curves = true"))
    result = fig1.main(config, tmp_path / "out", progress=None, curves_config=curves)
    assert len(result["cells"]) == 8 and all(c["trials"] == 2 for c in result["cells"])
    assert sorted(p.name for p in result["pngs"]) == ["curves.png", "heatmap_dense.png",
                                                      "heatmap_sparse-s2.png"]
    for name in ("report.txt", "report.csv", "report.json", "report.md"):
        assert (tmp_path / "out" / name).stat().st_size > 100
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Width helps" in report and "the median test error of 3 trials" in report


TINY = """
name = "{name}"
seeds = 3
[task]
n = 10
k = 2
m = {m}
n_test = 200
[model]
width = {width}
init = {init}
s = 2
[train]
steps = 400
batch = 8
{extra}
"""


def _tiny(tmp_path, **kw):
    kw = {"name": "tiny", "m": [40, 80], "width": [4, 16], "init": '["dense", "sparse"]',
          "extra": "", **kw}
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(**kw))
    return path


def _check_outputs(result, out, pngs, words):
    assert sorted(p.name for p in result["pngs"]) == sorted(pngs)
    for p in result["pngs"]:
        assert p.stat().st_size > 5000  # a real figure
    text = (out / "report.md").read_text()
    for w in words:
        assert w in text, w
    for p in pngs:
        assert f"]({p})" in text


@pytest.mark.slow
def test_fig2_on_a_tiny_config(tmp_path):
    out = tmp_path / "out"
    result = fig2.main(_tiny(tmp_path), out, progress=None)
    assert len(result["cells"]) == 8
    assert all("steps_to_target" in c for c in result["cells"])
    _check_outputs(result, out, ["p_vs_m.png", "steps_vs_m.png"],
                   ["Width helps monotonically", "Non-monotone in m", "Sparse (s=2) vs dense"])


@pytest.mark.slow
def test_luck_on_a_tiny_config(tmp_path):
    out = tmp_path / "out"
    result = luck.main(_tiny(tmp_path, width=[2, 4, 16], extra='vary = "init"'), out,
                       progress=None)
    assert len(result["fits"]) == 4  # (dense, sparse) x two m
    for f in result["fits"]:
        assert 0 <= f["q_low"] <= f["q"] <= f["q_high"] <= 1
    _check_outputs(result, out, ["p_vs_width.png"], ["Per-neuron success probability q"])


# faults' small grid (widths 16, 32; m 40, 80; dense and sparse), 16 seeds, in rounds from 4
ADAPTIVE_TINY = faults.SMALL.replace("seeds = 3", "seeds = 16").replace(
    "steps = 3000", "steps = 400").replace("stop_on_success = false", "") \
    + "[adaptive]\nfirst = 4\n"


@pytest.mark.slow
def test_adaptive_on_a_tiny_config_spends_less_with_the_same_decisions(tmp_path):
    adaptive = load_experiment("adaptive")
    config = tmp_path / "adaptive.toml"
    config.write_text(ADAPTIVE_TINY)
    out = tmp_path / "out"
    result = adaptive.main(config, out, progress=None)
    assert result["agreement"]["disagree"] == 0
    assert result["steps"]["adaptive"] < result["steps"]["full"]
    assert result["trials"]["full"] == 16 * len(result["full_cells"])
    _check_outputs(result, out, ["seeds_dense.png", "seeds_sparse-s2.png"],
                   ["trial-steps: adaptive", "decisions:", "Per cell"])
    # the full run's store is reused: nothing trained again, the same cells
    again = adaptive.main(config, out, progress=None)
    assert again["full_cells"] == result["full_cells"] and again["steps"] == result["steps"]


def test_the_adaptive_config_is_the_default_grid_with_64_seeds():
    study = Study.from_toml(EXPERIMENTS / "adaptive.toml")
    assert study.seeds == 64 and study.adaptive.first == 8
    assert study.cells() == DEFAULT_STUDY.cells()


@pytest.mark.slow
def test_sparsity_on_a_tiny_config(tmp_path):
    out = tmp_path / "out"
    result = sparsity.main(_tiny(tmp_path, m=80, width=16), out, progress=None)
    assert {c["nonzeros"] for c in result["cells"]} == {2, 10}
    _check_outputs(result, out, ["p_vs_s.png", "steps_vs_s.png"], ["Which s works best"])


@pytest.mark.slow
def test_pareto_on_a_tiny_config(tmp_path):
    out = tmp_path / "out"
    result = pareto.main(_tiny(tmp_path), out, progress=None)
    for front in result["fronts"].values():
        assert all(p["steps"] is not None for p in front)
    for front in result["compute"].values():  # less data costs more compute along it
        assert [p["m"] for p in front] == sorted({p["m"] for p in front})
        assert all(a["tflop"] > b["tflop"] for a, b in zip(front, front[1:], strict=False))
    _check_outputs(result, out, ["pareto.png"], ["Frontier, dense", "Data-compute frontier",
                                                 "Measured against"])


fig1 = load_experiment("fig1_cpu")
fig2 = load_experiment("fig2")
luck = load_experiment("luck")
sparsity = load_experiment("sparsity")
pareto = load_experiment("pareto")


@pytest.mark.slow
def test_lottery_on_a_tiny_config(tmp_path, capsys):
    config = tmp_path / "lottery.toml"
    config.write_text(TINY.format(name="lot", m=1, width=16, init='"sparse"',
                                  extra="steps = 2000") .replace("steps = 400\n", "")
                      .replace("[task]", "[task]\nonline = true")
                      + "[lottery]\nkeep = 4\n")
    out = tmp_path / "out"
    result = lottery.main(config, out, progress=None)
    rows = {r["arm"]: r for r in result["rows"]}
    won = rows["full width, from scratch"]["successes"]
    assert won > 0
    for arm in lottery.ARMS:
        assert rows[arm]["trials"] == won
    for arm in lottery.ARMS[:2]:
        assert 0 <= rows[arm]["covers_S"] <= 1
    _check_outputs(result, out, ["lottery.png"], ["Measured against the paper"])
    # a bad K is one clear error
    config.write_text(config.read_text().replace("keep = 4", "keep = 16"))
    with pytest.raises(parity_jax.ConfigError, match="lottery.keep = 16"):
        lottery.main(config, out, progress=None)


@pytest.mark.slow
def test_a_subnetwork_of_kept_neurons_starts_from_the_rewound_init(shape_factory):
    import dataclasses

    from conftest import make_batch

    from parity_jax import devices

    shape = shape_factory(G=1, P=1, W=16)
    pruned = dataclasses.replace(shape, task=lottery.LotteryTask.of(shape.task))
    b = make_batch([{"data": 0, "m": 100, "trials": [{"init": 0, "width": 16,
                                                       "sparse": True, "s": 2}]}], P=1)
    keep = jnp.zeros((1, 1, 16), bool).at[0, 0, :4].set(True)
    sub_batch = b.replace(task=lottery.LotteryInputs.of(b.task, keep,
                                                        jnp.zeros((1,), jnp.int32)))
    with jax.debug_key_reuse(False):
        full = core.initial_params(shape, b)
        sub = core.initial_params(pruned, sub_batch)
        _, trained = devices.train_on_devices(pruned, sub_batch)
    np.testing.assert_array_equal(sub.w1[0, 0, :4], full.w1[0, 0, :4])
    assert not np.any(sub.w1[0, 0, 4:]) and not np.any(sub.a[0, 0, 4:])
    # pruned neurons stay pruned through training
    assert not np.any(trained.w1[0, 0, 4:]) and not np.any(trained.a[0, 0, 4:])


lottery = load_experiment("lottery")


TASKS_TINY = """
name = "tiny"
seeds = 4
[task]
n = 10
n_test = 200
m = [40, 80]
[model]
width = [4, 16]
init = ["dense", "sparse"]
s = 2
param = "mup"
[train]
steps = 300
batch = 8
lr = [0.05, 0.2]
[select]
over = "lr"
[families.parity]
task = { target = "parity", k = 2 }
[families.leap]
task = { target = "polynomial", k = 3, terms = [[1], [1, 2, 3]], coefs = [1.0, 1.0] }
train = { threshold = 0.5 }
[baseline]
families = ["leap"]
model = { param = "standard", init = "dense" }
train = { lr = 0.05 }
"""


@pytest.mark.slow
def test_tasks_on_a_tiny_config(tmp_path):
    config = tmp_path / "tasks.toml"
    config.write_text(TASKS_TINY)
    out = tmp_path / "out"
    result = tasks.main(config, out, progress=None)
    assert [f for f, _ in result["studies"]] == ["parity", "leap"]
    assert len(result["cells"]) == 32 and all(c["trials"] == 4 for c in result["cells"])
    by = {c["family"]: c for c in result["cells"]}
    assert (by["parity"]["loss"], by["parity"]["metric"], by["parity"]["param"]) == \
        ("hinge", "error", "mup")
    assert (by["leap"]["loss"], by["leap"]["metric"], by["leap"]["threshold"]) == \
        ("square", "nmse", 0.5)
    assert all((out / f / "results.sqlite").exists() for f in ("parity", "leap"))
    # one record per (family, init, m, width), its p the held-out one: the lr chosen on one
    # half of the seeds scored on the other, every seed held out once
    records = result["records"]
    assert len(records) == 16 and all(r["trials"] == 4 for r in records)
    arms = {(c["family"], c["init"], c["m"], c["width"], c["lr"]): c for c in result["cells"]}
    for r in records:
        even, odd = (arms[r["family"], r["init"], r["m"], r["width"], lr] for lr in r["chosen"])
        assert even["successes_even"] / even["trials_even"] == max(
            arms[r["family"], r["init"], r["m"], r["width"], lr]["successes_even"] / 2
            for lr in (0.05, 0.2))
        assert r["successes"] == even["successes_odd"] + odd["successes_even"]
        assert len(r["first_hits"]) == r["successes"]
        assert r["ci_low"] - 1e-12 <= r["p"] <= r["ci_high"] + 1e-12  # Wilson rounds
    # the old protocol on the same cells: standard parametrization, one lr, no selection
    base = result["baseline_cells"]
    assert len(base) == 4 and {(c["family"], c["param"], c["lr"], c["init"]) for c in base} \
        == {("leap", "standard", 0.05, "dense")} and (out / "leap-baseline").is_dir()
    _check_outputs(result, out, ["tasks.png", "p_vs_steps.png"],
                   ["**parity**: width", "**leap**: width", "Data-compute frontier",
                    "held-out p", "at one lr for every width", "The old protocol"])
    # a family's bad setting names the family and the field
    config.write_text(TASKS_TINY.replace('k = 2 }', 'k = 2, target2 = 1 }'))
    with pytest.raises(parity_jax.ConfigError, match="families.parity: .*target2"):
        tasks.main(config, out, progress=None)
    config.write_text(TASKS_TINY.replace('[select]\nover = "lr"\n', ""))
    with pytest.raises(parity_jax.ConfigError, match='families.parity: .*over = "lr"'):
        tasks.main(config, out, progress=None)
    config.write_text(TASKS_TINY.replace("lr = 0.05 }", "lr = [0.05, 0.1] }"))
    with pytest.raises(parity_jax.ConfigError, match=r"baseline \(leap\): .*single value"):
        tasks.main(config, out, progress=None)
    config.write_text(TASKS_TINY.replace('families = ["leap"]', 'families = ["leap3"]'))
    with pytest.raises(parity_jax.ConfigError, match="baseline.families"):
        tasks.main(config, out, progress=None)
    config.write_text(TASKS_TINY.split("[families.parity]")[0])
    with pytest.raises(parity_jax.ConfigError, match="families: must be"):
        tasks.main(config, out, progress=None)


@pytest.mark.parametrize("name", ["tasks.toml", "tasks_full.toml"])
def test_tasks_configs_hold_the_five_families(name):
    studies = tasks.load(EXPERIMENTS / name)
    targets = {f: s.cells()[0] for f, s in studies}
    assert [targets[f].target for f in targets] == ["parity", "majority", "staircase",
                                                    "polynomial", "hermite"]
    assert targets["hermite"].inputs == "gaussian" and targets["hermite"].degree == 3
    assert targets["leap2"].terms == ((1,), (1, 2, 3))
    for _, study in studies:  # the fair protocol: a width-aware parametrization, lr tuned
        cells = study.cells()
        assert {c.param for c in cells} == {"mup"} and study.select.over == "lr"
        assert len({c.lr for c in cells}) >= 3


tasks = load_experiment("tasks")


def test_an_experiment_checks_out_before_its_work(tmp_path, monkeypatch, capsys):
    called = []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out, says in [(blocker, "exists and is not a directory"),
                      (blocker / "sub", "is not a directory")]:
        monkeypatch.setattr(sys, "argv", ["fig2.py", "--out", str(out)])
        assert experiment.main("doc", tmp_path, "fig2", lambda c, o: called.append(o)) == 2
        assert says in one_error(capsys)
    assert called == []


@pytest.mark.slow
def test_tabular_script_on_a_tiny_config_writes_outputs_and_resumes(tmp_path, monkeypatch):
    config = tmp_path / "tiny.toml"
    config.write_text("""
name = "tiny"
seeds = 2
datasets = ["sklearn:wine", "parity:rows=400,features=6,k=2"]
fractions = [1.0, 0.3]
[mlp]
width = [8, 16]
init = ["dense", "sparse"]
s = [2]
optimizer = ["sgd", "adam"]
lr = [0.05]
batch = 16
steps = 100
eval_every = 50
[forest]
iterations = 2
n_estimators_max = 20
""")
    script = load_experiment("tabular")
    out = script.main(config, tmp_path / "out", progress=None)
    # 2 datasets x 2 fractions x 2 inits x 2 optimizers x 2 widths x 2 seeds MLPs; 2x2x2 forests
    assert sum(r["model"] == "mlp" for r in out["trials"]) == 64
    assert sum(r["model"] == "forest" for r in out["trials"]) == 8
    assert len(out["best"]) == 2 * 2 * 3 and len(out["rows"]) == 4
    assert all(p.stat().st_size > 5000 for p in out["pngs"])
    text = out["report"].read_text()
    for heading in ("## Setup", "## Summary", "## Best of each family"):
        assert heading in text
    assert (tmp_path / "out" / "table.csv").read_text().startswith("dataset,fraction,m,")

    # Resume: everything is stored, so nothing is trained again and the results are equal.
    def fail(*a, **k):
        raise AssertionError("trained again")

    real_train, real_tune = devices.train_on_devices, forest.tune
    monkeypatch.setattr(devices, "train_on_devices", fail)
    monkeypatch.setattr(forest, "tune", fail)
    again = script.main(config, tmp_path / "out", progress=None)
    assert again["trials"] == out["trials"]

    # A crash mid-run (trials missing from the store): only those are trained again.

    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as conn:
        settings = dict(conn.execute("SELECT cell, settings FROM cells").fetchall())
        mlp = [c for c, v in settings.items() if json.loads(v)["model"] == "mlp"]
        rf = [c for c, v in settings.items() if json.loads(v)["model"] == "forest"]
        conn.execute("DELETE FROM tabular_trials WHERE (cell = ? AND seed = 1) OR "
                     "(cell = ? AND seed = 0)", (mlp[-1], rf[0]))
    calls = []
    monkeypatch.setattr(devices, "train_on_devices",
                        lambda *a: calls.append("mlp") or real_train(*a))
    monkeypatch.setattr(forest, "tune", lambda *a, **k: calls.append("rf") or real_tune(*a, **k))
    resumed = script.main(config, tmp_path / "out", progress=None)
    assert sorted(calls) == ["mlp", "rf"]

    def key(r):
        return json.dumps({k: v for k, v in r.items() if k != "params"}, sort_keys=True)

    assert sorted(map(key, resumed["trials"])) == sorted(map(key, out["trials"]))

    # Another study in the same directory is refused without touching it.
    store = tmp_path / "out" / "results.sqlite"
    before = store.read_bytes()
    config.write_text(config.read_text().replace("seeds = 2", "seeds = 3"))
    from parity_jax.errors import StoreError

    with pytest.raises(StoreError, match="another study"):
        script.main(config, tmp_path / "out", progress=None)
    assert store.read_bytes() == before
