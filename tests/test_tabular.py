"""The tabular benchmark: datasets and loader, splits, the (X, y) trainer against a plain optax
reference, the planted parity, the forest baseline, model selection, the experiment script."""

import json
import sys
import urllib.error
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_experiment

from parity_jax import core, datasets, devices, forest, merge, models, oracles, reduce
from parity_jax.config import ConfigError, TabularStudy
from parity_jax.tasks import xy

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


# ---- datasets ---------------------------------------------------------------------------------


def test_the_benchmark_lists_its_16_numerical_classification_datasets():
    names = [s.name for s in datasets.GRINSZTAJN]
    ids = [s.openml_id for s in datasets.GRINSZTAJN]
    assert len(names) == 16 and len(set(names)) == 16 and len(set(ids)) == 16
    assert datasets.BY_NAME["electricity"].openml_id == 44120
    assert datasets.BY_NAME["california"].target == "price_above_median"
    assert all(s.rows >= 3000 and s.features >= 4 for s in datasets.GRINSZTAJN)


class _Bunch:
    def __init__(self, X, y, names):
        self.data, self.target, self.feature_names = X, y, names


def test_openml_datasets_are_fetched_once_then_read_offline_from_the_cache(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = np.where(X[:, 0] > 0, "up", "down")
    calls = []

    def fetch(**kw):
        calls.append(kw)
        return _Bunch(X, y, [f"f{i}" for i in range(5)])

    first = datasets.load("electricity", cache=tmp_path, fetch=fetch)
    assert calls[0]["data_id"] == 44120 and calls[0]["target_column"] == "class"
    assert (tmp_path / "openml-44120-class.npz").is_file()  # cached per (id, target)

    def offline(**kw):
        raise urllib.error.URLError("no network")

    second = datasets.load("electricity", cache=tmp_path, fetch=offline)
    np.testing.assert_array_equal(first.X, second.X)
    np.testing.assert_array_equal(first.y, second.y)
    assert second.features == ("f0", "f1", "f2", "f3", "f4")
    assert second.classes == ("down", "up") and set(np.unique(second.y)) == {0, 1}


def test_unknown_names_bad_ids_and_unreachable_openml_are_one_line_errors(tmp_path):
    with pytest.raises(datasets.DataError, match="electricity.*covertype"):
        datasets.load("no-such-dataset")
    with pytest.raises(datasets.DataError, match="positive integer"):
        datasets.load("openml:abc")

    def offline(**kw):
        raise urllib.error.URLError("[Errno -3] Temporary failure\nin name resolution")

    with pytest.raises(datasets.DataError) as e:
        datasets.load("Higgs", cache=tmp_path, fetch=offline)
    msg = str(e.value)
    assert "OpenML id 44129" in msg and "not in the cache" in msg and "\n" not in msg
    with pytest.raises(datasets.DataError, match="OpenML id 99999999"):
        datasets.load("openml:99999999", cache=tmp_path, fetch=offline)
    assert not list(tmp_path.glob("*.npz"))  # nothing half-written


def test_own_csv_and_npz_files_and_their_errors(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("a,b,label\n1,2,x\n3,4,y\n5,,x\n7,8,z\n9,1,y\n2,2,x\n")
    t = datasets.load(str(good))
    # the row with a missing value is dropped; 3 classes -> the two most frequent (x, y)
    assert t.features == ("a", "b") and t.classes == ("x", "y")
    assert t.X.shape == (4, 2) and list(t.y) == [0, 1, 1, 0]
    with pytest.raises(datasets.DataError, match="numeric"):  # then "label" is a feature
        datasets.load(str(good), target="a")

    bad = {
        "text.csv": ("a,label\n1,x\nhello,y\n", "numeric"),
        "ragged.csv": ("a,b,label\n1,2,x\n3,y\n", "row 3"),
        "oneclass.csv": ("a,label\n1,x\n2,x\n", "two classes"),
        "empty.csv": ("a,label\n", "header row"),
    }
    for name, (text, why) in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(datasets.DataError, match=why):
            datasets.load(str(tmp_path / name))
    with pytest.raises(datasets.DataError, match="target column 'nope'"):
        datasets.load(str(good), target="nope")
    with pytest.raises(datasets.DataError, match="no such file"):
        datasets.load(str(tmp_path / "missing.csv"))
    np.savez(tmp_path / "nox.npz", A=np.zeros(3))
    with pytest.raises(datasets.DataError, match="arrays X and y"):
        datasets.load(str(tmp_path / "nox.npz"))
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip file")
    with pytest.raises(datasets.DataError, match="not a readable"):
        datasets.load(str(tmp_path / "corrupt.npz"))
    np.savez(tmp_path / "whole.npz", X=np.zeros((10, 2)), y=np.arange(10) % 2)
    (tmp_path / "cut.npz").write_bytes((tmp_path / "whole.npz").read_bytes()[:200])
    with pytest.raises(datasets.DataError, match="not a readable"):
        datasets.load(str(tmp_path / "cut.npz"))
    np.save(tmp_path / "plain.npy", np.zeros(3))
    (tmp_path / "plain.npy").rename(tmp_path / "plain.npz")
    with pytest.raises(datasets.DataError, match="not an .npz archive"):
        datasets.load(str(tmp_path / "plain.npz"))
    (tmp_path / "nolabel.csv").write_text("a,label\n1,x\n2,\n3,y\n")
    assert datasets.load(str(tmp_path / "nolabel.csv")).X.shape == (2, 1)  # unlabeled row dropped
    np.savez(tmp_path / "ok.npz", X=np.arange(20.0).reshape(10, 2), y=np.arange(10) % 2)
    assert datasets.load(str(tmp_path / "ok.npz")).X.shape == (10, 2)


def test_files_without_features_long_fields_and_label_spellings(tmp_path, capsys):
    from parity_jax import cli

    (tmp_path / "target_only.csv").write_text("y\n" + "0\n1\n" * 20)
    np.savez(tmp_path / "no_columns.npz", X=np.zeros((40, 0)), y=np.arange(40) % 2)
    (tmp_path / "long.csv").write_text("a,y\n1,0\n2," + "1" * 200_000 + "\n")
    for name, says in [("target_only.csv", "no feature column"),
                       ("no_columns.npz", "no feature column"),
                       ("long.csv", "line 3: field larger than field limit")]:
        with pytest.raises(datasets.DataError, match=says):
            datasets.load(str(tmp_path / name))
        config = tmp_path / "c.toml"  # the CLI: one line, exit 2, nothing written
        config.write_text(f'datasets = ["{tmp_path / name}"]\n')
        capsys.readouterr()
        assert cli.main(["run", str(config), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: datasets:") and says in err[0], err
        assert not (tmp_path / "o").exists()
    # "nan", "NaN", "inf" and empty labels are missing (dropped); 0, -0, 0.0 are one class
    (tmp_path / "labels.csv").write_text(
        "a,y\n1,0\n2,-0\n3,0.0\n4,1\n5,nan\n6,NaN\n7,\n8,1.0\n9,inf\n10, 1\n")
    t = datasets.load(str(tmp_path / "labels.csv"))
    assert t.classes == ("0", "1") and t.dropped == 4
    assert t.X[:, 0].tolist() == [1, 2, 3, 4, 8, 10] and t.y.tolist() == [0, 0, 0, 1, 1, 1]
    (tmp_path / "words.csv").write_text("a,y\n1,cat\n2,nan\n3,dog\n4,cat\n5,NAN\n6,dog\n")
    t = datasets.load(str(tmp_path / "words.csv"))
    assert t.classes == ("cat", "dog") and t.dropped == 2 and t.y.tolist() == [0, 1, 0, 1]
    t = datasets.from_arrays("floats", np.arange(4.0)[:, None], np.array([0.0, -0.0, 1.0, 1.0]))
    assert t.classes == ("0", "1") and t.y.tolist() == [0, 0, 1, 1]


def test_bundled_sklearn_datasets_are_binary():
    for name, rows in (("breast_cancer", 569), ("wine", 178), ("digits", 1797)):
        t = datasets.load(f"sklearn:{name}")
        assert t.X.shape[0] == rows and set(np.unique(t.y)) == {0, 1}
    with pytest.raises(datasets.DataError, match="breast_cancer, wine, digits"):
        datasets.load("sklearn:iris")


def test_split_proportions_caps_and_nested_subsamples():
    t = datasets.planted_parity(rows=1000, features=6, k=2)
    s = datasets.split(t, seed=3)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (700, 90, 210)
    again = datasets.split(t, seed=3)
    np.testing.assert_array_equal(s.x_train, again.x_train)
    capped = datasets.split(t, seed=3, max_train=100, max_eval=50)
    assert (len(capped.y_train), len(capped.y_val), len(capped.y_test)) == (100, 50, 50)
    raw = datasets.split(t, seed=3, quantile=False)
    rows = {tuple(r) for r in raw.x_train}
    assert not rows & {tuple(r) for r in raw.x_test}  # disjoint splits
    # Gaussianised: standard normal marginals on the training split
    assert abs(float(s.x_train.mean())) < 0.05 and abs(float(s.x_train.std()) - 1) < 0.1
    perm = datasets.permutation(700, seed=1)
    small, large = perm[:datasets.train_rows(700, 0.01)], perm[:datasets.train_rows(700, 0.1)]
    assert len(small) == 7 and len(large) == 70 and set(small) <= set(large)
    assert datasets.train_rows(700, 0.0001) == 1
    with pytest.raises(datasets.DataError, match="too few"):
        datasets.split(datasets.from_arrays("tiny", np.zeros((5, 2)), [0, 1, 0, 1, 0]))


# ---- the trainer --------------------------------------------------------------------------


def _data(splits):
    return xy.Shared.from_splits(splits)


def _shape(splits, *, depth, W, T, batch, steps, eval_every, optimizer):
    """A tabular program: T trials (one per group) of padded width W."""
    return core.Shape(task=xy.XYTask(d=splits.d, n_train=len(splits.y_train), batch=batch),
                      depth=depth, W=W, G=T, P=1, eval_every=eval_every, loss="logistic",
                      step=optimizer, layout="vmapped", tracker="best_validation",
                      curves=steps // eval_every)


def _batch(trials, n_train, steps, seed=0):
    T = len(trials)
    root = jax.random.key(seed)
    keys = jax.random.split(root, 2 * T)
    return core.Batch(
        task=xy.Inputs(
            order_key=keys[T:],
            rows=jnp.asarray(np.stack([datasets.permutation(n_train, t["seed"])
                                       for t in trials])),
            m=jnp.array([t["m"] for t in trials], jnp.int32)),
        init_key=keys[:T],
        width=jnp.array([t["width"] for t in trials], jnp.int32),
        sparse=jnp.array([t["sparse"] for t in trials]),
        s=jnp.array([t.get("s", 2) for t in trials], jnp.int32),
        lr=jnp.array([t["lr"] for t in trials], jnp.float32),
        wd=jnp.array([t.get("wd", 0.0) for t in trials], jnp.float32),
        steps=jnp.full((T,), steps, jnp.int32), valid=jnp.ones((T,), bool))


def _train(shape, data, b):
    """The core's tabular outcome of a batch."""
    return devices.train_on_devices(shape, b.replace(shared=data))[0]


@pytest.mark.slow
@pytest.mark.parametrize("optimizer,depth", [("sgd", 1), ("adam", 1), ("adam", 2)])
def test_train_xy_equals_the_plain_optax_reference_trial_by_trial(optimizer, depth):
    splits = datasets.split(datasets.load("sklearn:wine"), seed=0)
    data, n = _data(splits), len(splits.y_train)
    lr = 0.05 if optimizer == "sgd" else 0.01
    trials = [dict(m=n, width=8, sparse=False, lr=lr, seed=0),
              dict(m=20, width=5, sparse=True, s=2, lr=lr / 2, seed=1, wd=0.01),  # padded
              dict(m=50, width=8, sparse=True, s=4, lr=lr, seed=2)]
    shape = _shape(splits, depth=depth, W=8, T=3, batch=16, steps=200, eval_every=100,
                   optimizer=optimizer)
    b = _batch(trials, n, 200)
    out = _train(shape, data, b)
    b = _batch(trials, n, 200)  # the same keys again, unconsumed
    for i, t in enumerate(trials):
        p = oracles.reference_xy(data, b.init_key[i], b.task.order_key[i], b.task.rows[i],
                                 m=t["m"],
                                width=t["width"], depth=depth, sparse=t["sparse"],
                                s=t.get("s", 2), lr=t["lr"], wd=t.get("wd", 0.0), batch=16,
                                steps=200, optimizer=optimizer)
        f = models.apply(p, data.x_val)
        val_loss = float(jnp.mean(models.loss_fn("logistic", f, data.y_val)))
        test_err = float(jnp.mean(jnp.sign(models.apply(p, data.x_test)) != data.y_test))
        np.testing.assert_allclose(float(out.final_val_loss[i]), val_loss, rtol=2e-4)
        assert float(out.final_test_error[i]) == pytest.approx(test_err, abs=1.5 / len(
            splits.y_test))
        assert float(out.val_loss[i]) <= float(out.final_val_loss[i])  # the best evaluation
        assert int(out.best_step[i]) in (100, 200)


def test_new_learning_rates_compile_nothing_new_and_a_diverging_trial_is_isolated():
    splits = datasets.split(datasets.load("sklearn:wine"), seed=0)
    data, n = _data(splits), len(splits.y_train)
    shape = _shape(splits, depth=1, W=8, T=2, batch=16, steps=100, eval_every=50,
                   optimizer="sgd")
    ok = dict(m=n, width=8, sparse=False, lr=0.05, seed=0)
    alone = _train(shape, data, _batch([ok, ok], n, 100))
    before = devices.program(shape)._cache_size()
    boom = dict(m=n, width=8, sparse=False, lr=1e6, seed=1)
    both = _train(shape, data, _batch([ok, boom], n, 100))
    assert devices.program(shape)._cache_size() == before
    assert bool(both.diverged[1]) and not bool(both.diverged[0])
    assert np.isinf(float(both.val_loss[1])) and np.isnan(float(both.test_error[1]))
    for f in ("val_loss", "test_error", "final_val_loss"):
        assert float(getattr(both, f)[0]) == float(getattr(alone, f)[0])


@pytest.mark.slow
def test_sparse_init_beats_dense_on_a_planted_parity_at_a_small_fraction():
    """The paper's mechanism on tabular data: y = the XOR of the signs of 2 of 20 Gaussian
    features; with 300 training rows a sparse (s = 2) init learns it, a dense one mostly not.
    Asserted on the means' 95% intervals over 8 seeds."""
    splits = datasets.split(datasets.planted_parity(rows=4000, features=20, k=2), seed=0)
    data, n = _data(splits), len(splits.y_train)
    seeds = 8
    trials = [dict(m=300, width=256, sparse=sp, s=2, lr=0.1, seed=i)
              for sp in (False, True) for i in range(seeds)]
    shape = _shape(splits, depth=1, W=256, T=len(trials), batch=64, steps=2000,
                   eval_every=200, optimizer="sgd")
    err = np.asarray(_train(shape, data, _batch(trials, n, 2000)).test_error)
    dense = reduce.mean_interval(err[:seeds])
    sparse = reduce.mean_interval(err[seeds:])
    assert sparse[2] < dense[1], (dense, sparse)


# ---- the forest ------------------------------------------------------------------------------


def test_forest_search_space_and_tuning_on_a_tiny_grid():
    rng = np.random.default_rng(0)
    draws = [forest.sample(rng) for _ in range(300)]
    assert all(10 <= d["n_estimators"] <= 3000 for d in draws)
    assert all(2 <= d["min_samples_leaf"] <= 50 for d in draws)
    assert {d["criterion"] for d in draws} == {"gini", "entropy"}
    assert {d["max_depth"] for d in draws} == {None, 2, 3, 4}
    assert {d["bootstrap"] for d in draws} == {True, False}
    assert set(map(str, (d["max_features"] for d in draws))) == set(map(str,
                                                                         forest.MAX_FEATURES))
    assert max(d["n_estimators"] for d in draws) > 1000  # log-uniform reaches the top decade
    assert max(forest.sample(rng, n_estimators_max=50)["n_estimators"] for _ in range(50)) <= 50

    s = datasets.split(datasets.load("sklearn:breast_cancer"), seed=0)
    best = forest.tune(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test,
                       iterations=3, seed=0, n_estimators_max=30)
    assert best["iterations"] == 3 and best["test_error"] < 0.15
    assert 0 <= best["val_error"] <= 1 and best["val_loss"] > 0
    again = forest.tune(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test,
                        iterations=3, seed=0, n_estimators_max=30)
    assert again == best  # seeded


@pytest.mark.slow
def test_a_forest_search_gives_the_same_bits_in_every_call():
    """scikit-learn sums a forest's tree probabilities in thread order (values 1 ulp apart
    from one call to the next); the search's own sum runs in the trees' order."""
    from sklearn.ensemble import RandomForestClassifier

    s = datasets.split(datasets.load("sklearn:breast_cancer"), seed=0)
    rf = RandomForestClassifier(n_estimators=300, min_samples_leaf=3, random_state=0,
                                n_jobs=8).fit(s.x_train, s.y_train)
    in_order = sum(tree.predict_proba(s.x_test) for tree in rf.estimators_) / 300
    for n_jobs in (None, 1, 3, 8, -1):
        assert forest.predict_proba(rf, s.x_test, n_jobs).tobytes() == in_order.tobytes()
    for seed in range(3):  # best configurations of 11 to 96 trees with impure leaves
        runs = {repr(forest.tune(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test,
                                 iterations=4, seed=seed, n_estimators_max=300, n_jobs=8))
                for _ in range(5)}  # repr: a float's shortest round-trip text, its bits
        assert len(runs) == 1, seed
    best = forest.tune(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test,
                       iterations=4, seed=1, n_estimators_max=300, n_jobs=8)
    again = forest.tune(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test,
                        iterations=4, seed=1, n_estimators_max=300, n_jobs=1)
    assert best["val_loss"].hex() == again["val_loss"].hex() and best == again


DETERMINISTIC = """
name = "forests"
seeds = 3
datasets = ["sklearn:breast_cancer"]
fractions = [1.0, 0.5]
[mlp]
width = [4]
init = ["dense"]
optimizer = "sgd"
lr = [0.05]
batch = 16
steps = 20
eval_every = 10
[forest]
iterations = 4
n_estimators_max = 300
"""


@pytest.mark.slow
def test_two_fresh_runs_of_a_tabular_study_store_the_same_rows_and_merge(tmp_path):
    import parity_jax
    from parity_jax import store

    study = TabularStudy.from_dict(__import__("tomllib").loads(DETERMINISTIC))

    def rows(out):
        s = store.Store.open(out)
        try:
            return s.rows()
        finally:
            s.close()

    for name in ("a", "b"):
        parity_jax.run(study, tmp_path / name, progress=None)
    a, b = rows(tmp_path / "a"), rows(tmp_path / "b")
    assert len(a) == 12 and [r.val_loss.hex() for r in a if r.extra != "{}"] == \
        [r.val_loss.hex() for r in b if r.extra != "{}"]
    assert a == b
    written, duplicates = merge.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    assert (written, duplicates) == (12, 12) and rows(tmp_path / "m") == a


# ---- reduction, config, the experiment -------------------------------------------------------


def test_select_picks_the_lowest_median_validation_loss_per_family():
    def rec(init, lr, seed, val, test):
        return {"model": "mlp", "dataset": "d", "fraction": 0.1, "m": 10, "init": init,
                "s": None if init == "dense" else 2, "width": 10, "depth": 1,
                "optimizer": "sgd", "lr": lr, "seed": seed, "val_loss": val, "test_error": test}

    records = [rec("dense", 0.1, i, v, 0.3) for i, v in enumerate([0.5, 0.6, 9.0])]
    records += [rec("dense", 0.2, i, v, 0.2) for i, v in enumerate([0.55, 0.58, 0.59])]
    records += [rec("sparse", 0.1, i, None, 0.1) for i in range(3)]  # diverged: never best
    records += [rec("sparse", 0.2, i, 1.0, 0.4 + 0.1 * i) for i in range(3)]
    records += [{"model": "forest", "dataset": "d", "fraction": 0.1, "m": 10, "seed": i,
                 "val_loss": 0.3, "test_error": 0.25} for i in range(3)]
    best = {r["family"]: r for r in reduce.select(records)}
    assert best["dense"]["lr"] == 0.2 and best["dense"]["val_loss"] == 0.58
    assert best["sparse"]["lr"] == 0.2
    assert best["sparse"]["test_error"] == pytest.approx(0.5)
    assert best["sparse"]["ci_low"] < 0.5 < best["sparse"]["ci_high"]
    assert best["forest"]["test_error"] == 0.25 and best["forest"]["seeds"] == 3
    assert reduce.mean_interval([0.2]) == (0.2, 0.2, 0.2)


def test_tabular_config_errors_name_the_field():
    for d, field in [({"mlp": {"optimizer": "rmsprop"}}, "mlp.optimizer"),
                     ({"mlp": {"depth": 4}}, "mlp.depth"),
                     ({"fractions": [0.0]}, "fractions"),
                     ({"mlp": {"steps": 150, "eval_every": 100}}, "mlp.steps"),
                     ({"forest": {"trees": 3}}, "forest.trees"),
                     ({"mlp": {"width": [10, 10]}}, "mlp.width")]:
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            TabularStudy.from_dict(d)
    TabularStudy.from_toml(EXPERIMENTS / "tabular.toml")
    full = TabularStudy.from_toml(EXPERIMENTS / "tabular_full.toml")
    assert set(full.axis("datasets")) == set(datasets.BY_NAME)


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
    import sqlite3

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
    from parity_jax.store import StoreError

    with pytest.raises(StoreError, match="another study"):
        script.main(config, tmp_path / "out", progress=None)
    assert store.read_bytes() == before


def test_a_bad_dataset_in_the_config_is_exit_status_2_and_one_line(tmp_path, capsys,
                                                                   monkeypatch):
    config = tmp_path / "bad.toml"
    config.write_text('datasets = ["sklearn:iris"]\n')
    script = load_experiment("tabular")
    monkeypatch.setattr(sys, "argv", ["tabular.py", "--config", str(config), "--out",
                                      str(tmp_path / "o")])
    assert script.experiment.main(script.__doc__, EXPERIMENTS, "tabular", script.main) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: datasets:") and "iris" in err[0]
    for text, field in [('datasets = ["parity:rows=10,features=3,k=2"]', "datasets:"),
                        ('datasets = ["sklearn:wine"]\n[mlp]\ns = [2, 20]', "mlp.s = 20")]:
        config.write_text(text + "\n")
        assert script.experiment.main(script.__doc__, EXPERIMENTS, "tabular", script.main) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {field}"), err
    assert not (tmp_path / "o").exists()  # nothing written


def test_planted_parity_labels_are_the_product_of_the_planted_signs():
    t = datasets.planted_parity(rows=500, features=6, k=3, seed=4)
    planted = [i for i, f in enumerate(t.features) if f.endswith("*")]
    assert len(planted) == 3
    expected = np.prod(np.sign(t.X[:, planted]), axis=1) > 0
    np.testing.assert_array_equal(t.y, expected.astype(np.int8))
    noisy = datasets.planted_parity(rows=2000, features=6, k=3, seed=4, noise=0.2)
    assert [i for i, f in enumerate(noisy.features) if f.endswith("*")] == planted
    flipped = np.mean(noisy.y != (np.prod(np.sign(noisy.X[:, planted]), axis=1) > 0))
    assert 0.15 < flipped < 0.25
    with pytest.raises(datasets.DataError, match="unknown option 'n'"):
        datasets.load("parity:n=3")
