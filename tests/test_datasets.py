"""datasets: the benchmark's list, OpenML (cached), own CSV/NPZ files and sklearn's, splits and
nested subsamples, the planted parity, bad rows and fractions, and every bad input as one line."""

import sys
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import load_experiment, one_error

from parity_jax import cli, datasets

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


def test_rows_with_nan_or_inf_are_dropped_and_counted_when_too_few_remain(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\nnan,1,0\ninf,2,1\n3,-inf,0\n,4,1\n")
    with pytest.raises(datasets.DataError, match="needs two classes, found 0 in the 0 rows left "
                                                "after dropping 4 of 4 that hold a missing or "
                                                "non-finite value"):
        datasets.load(str(path))
    rows = ["a,b,y"] + [f"{i},{i % 3},{i % 2}" for i in range(6)] + ["nan,1,0"] * 20
    path.write_text("\n".join(rows) + "\n")
    table = datasets.load(str(path))
    assert len(table.y) == 6 and table.dropped == 20
    with pytest.raises(datasets.DataError, match=r"6 rows \(left after dropping 20 of 26"):
        datasets.split(table)


@pytest.mark.parametrize("fractions,batch,message", [
    ([1.0, 0.001], 64, "fractions = 0.001: leaves 1 training row of dataset 'sklearn:wine' "
                       "(124 in its training split); a fraction must leave at least 10 rows"),
    ([0.05], 8, "fractions = 0.05: leaves 6 training rows of dataset 'sklearn:wine' (124 in "
                "its training split); a fraction must leave at least mlp.batch = 8 rows"),
])
def test_a_fraction_leaving_too_few_training_rows_is_an_error(tmp_path, capsys, fractions,
                                                              batch, message):
    path = tmp_path / "t.toml"
    path.write_text(f'datasets = ["sklearn:wine"]\nfractions = {fractions}\n[mlp]\n'
                    f"batch = {batch}\n")
    assert cli.main(["plan", str(path)]) == 2
    assert one_error(capsys) == f"error: {message}"


def test_library_warnings_never_print_before_the_error_line(tmp_path):
    def offline(**kw):
        warnings.warn("A network error occurred while downloading; retrying", UserWarning,
                      stacklevel=2)
        raise OSError("Temporary failure in name resolution")

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(datasets.DataError, match="openml:999999999"):
            datasets.load("openml:999999999", cache=tmp_path, fetch=offline)
    assert seen == []
