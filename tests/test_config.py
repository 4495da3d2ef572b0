"""Study config: grid expansion, defaults, validation; files that are no small regular UTF-8
file, sizes past the engine, the shipped configs within the bounds, the tabular fields."""

import dataclasses
import datetime
import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import TINY_TOML, load_experiment, one_error

import parity_jax
from parity_jax import (
    DEFAULT_STUDY,
    ConfigError,
    Model,
    Study,
    TabularStudy,
    Task,
    Train,
    cli,
    datasets,
    kinds,
)
from parity_jax import config as cfg
from parity_jax.kinds.tabular.config import MLP, Forest, Split

pytestmark = pytest.mark.quick  # pure Python: make test-quick

SMALL = TINY_TOML.replace('name = "tiny"', 'name = "edges"')


def test_lists_become_a_cartesian_grid_and_dense_ignores_s():
    study = Study(task=Task(m=[100, 200]), model=Model(width=[10, 20], init=["dense", "sparse"],
                                                       s=[1, 2]))
    cells = study.cells()
    # per (m, width): one dense cell + two sparse cells (s = 1, 2) -> 2 * 2 * 3
    assert len(cells) == 12
    assert sorted({c.s for c in cells if c.init == "dense"}, key=str) == [None]
    assert sorted({c.s for c in cells if c.init == "sparse"}) == [1, 2]
    assert len({c.key() for c in cells}) == 12


def test_default_study_is_the_design_example():
    cells = DEFAULT_STUDY.cells()
    assert len(cells) == 50 and DEFAULT_STUDY.seeds == 16
    assert {c.width for c in cells} == {10, 30, 100, 300, 1000}
    assert {c.m for c in cells} == {200, 500, 1000, 2000, 5000}
    assert {(c.init, c.s) for c in cells} == {("dense", None), ("sparse", 2)}
    c = cells[0]
    assert (c.n, c.k, c.n_test, c.steps, c.eval_every, c.lr, c.wd, c.batch, c.loss) == (
        50, 3, 2000, 10000, 100, 0.1, 0.01, 32, "hinge")


def test_toml_round_trip(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "x"\nseeds = 3\n[task]\nn = 20\nm = [50, 100]\n'
                    '[model]\nwidth = 8\ninit = "sparse"\ns = 3\n[train]\nlr = 0.05\n'
                    'vary = "init"\n')
    study = Study.from_toml(path)
    assert study.seeds == 3 and study.task.m == [50, 100] and study.train.vary == "init"
    assert Study.from_dict(study.to_dict()).fingerprint() == study.fingerprint()
    assert study.fingerprint() != DEFAULT_STUDY.fingerprint()


@pytest.mark.parametrize("bad,field", [
    ({"task": {"k": 0}}, "task.k"),
    ({"task": {"n": 5, "k": 6}}, "task.k"),
    ({"model": {"init": "sparse", "s": 51}}, "model.s"),
    ({"train": {"lr": 0}}, "train.lr"),
    ({"task": {"m": [100, 100]}}, "task.m"),
    ({"task": {"m": []}}, "task.m"),
    ({"seeds": 0}, "seeds"),
    ({"train": {"stop_on_success": 1}}, "train.stop_on_success"),
    ({"model": {"width": 1.5}}, "model.width"),
    ({"model": {"width": True}}, "model.width"),
])
def test_bad_values_name_their_field(bad, field):
    with pytest.raises(ConfigError, match=f"^{field.replace('.', '[.]')}"):
        Study.from_dict(bad)


def test_dense_cells_ignore_an_out_of_range_s():
    Study.from_dict({"model": {"init": "dense", "s": 99}}).validate()


def test_python_api_is_validated_too():
    with pytest.raises(ConfigError, match="train.wd"):
        Study(train=Train(wd=-1.0)).validate()


def test_online_cells_ignore_m_and_later_settings_keep_old_fingerprints():
    study = Study(task=Task(m=[100, 200], online=[False, True]), model=Model(width=10))
    cells = study.cells()
    assert sorted((c.online, c.m) for c in cells) == [(False, 100), (False, 200), (True, None)]
    # settings added later stay out of a study's identity while at their defaults: stores
    # written before them keep their fingerprint (this value is from before they existed)
    assert DEFAULT_STUDY.fingerprint() == "027c097ad67f79d6"
    assert "online" not in DEFAULT_STUDY.cells()[0].key()
    curves = Study(train=Train(record_curves=True))
    assert curves.fingerprint() != Study().fingerprint()
    assert Study.from_dict(curves.to_dict()) == curves
    with pytest.raises(ConfigError, match="task.online = 'yes': must be a bool"):
        Study(task=Task(online="yes")).validate()


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj).encode()).hexdigest()[:16]


def test_fingerprints_and_grid_order_are_pinned():
    # computed before the config fields were typed and validation moved to one rule table:
    # stores are keyed by these, so they must never change by accident
    assert DEFAULT_STUDY.fingerprint() == "027c097ad67f79d6"
    assert Study().fingerprint() == "3d74dc2c02c53b8a"
    # TabularStudy() lost fraction 0.01 (4 rows of breast_cancer: under the 10-row floor);
    # pinned with Adam, its optimizer before SGD became the default
    assert TabularStudy(mlp=MLP(optimizer="adam")).fingerprint() == "05b6687f321ce9d6"
    assert TabularStudy().mlp.optimizer == "sgd"
    assert TabularStudy().fingerprint() == TabularStudy(mlp=MLP(optimizer="sgd")).fingerprint()
    assert _digest([c.key() for c in DEFAULT_STUDY.cells()]) == "c520d016a39f0622"
    mixed = Study(task=Task(n=[5, 3], k=[1, 3], online=[True, False]),
                  model=Model(init=["sparse", "dense"], s=[3, 1]),
                  train=Train(lr=[1, 0.5], vary=["data", "both"]))
    cells = mixed.cells()
    assert len(cells) == 96 and mixed.fingerprint() == "41007abca048fd8a"
    assert _digest([c.key() for c in cells]) == "bb8e222637ae7427"
    assert isinstance(cells[0].lr, float) and isinstance(cells[0].noise, float)
    tab = TabularStudy(mlp=MLP(width=[8, 16], lr=0.01, optimizer="adam"),
                       fractions=[1.0, 0.5])
    assert tab.fingerprint() == "47ff438c77060e99"
    assert tab.axis("mlp.width") == [8, 16] and tab.axis("mlp.lr") == [0.01]


SECTION_TYPES = [Task, Model, Train, Split, MLP, Forest]


@pytest.mark.parametrize("section", SECTION_TYPES, ids=lambda c: c.__name__)
def test_config_fields_are_typed(section):
    for f in dataclasses.fields(section):
        assert "Any" not in str(f.type), (section.__name__, f.name, f.type)


@pytest.mark.parametrize("study", [Study, TabularStudy], ids=lambda c: c.__name__)
def test_every_setting_has_exactly_one_rule(study):
    settings = set()
    for f in dataclasses.fields(study):
        if f.name in study.SECTIONS:
            settings |= {f"{f.name}.{g.name}" for g in dataclasses.fields(study.SECTIONS[f.name])
                         if g.name != "params"}  # a target's parameters: its registry entry
        else:
            settings.add(f.name)
    assert settings == set(study.RULES)


def test_a_studys_grid_axes_are_its_fields_then_its_targets_parameters():
    # a Study's grid axes are its sections' fields in declaration order, the target's
    # parameters (rules from the registry) right after task.target
    study = Study(task=Task(target="hermite", inputs="gaussian", degree=[2, 3]))
    keys = [k for k in cfg.keys(study) if "." in k]
    fields = [f"{s}.{f.name}" for s in ("task", "model", "train")
              for f in dataclasses.fields(Study.SECTIONS[s]) if f.name != "params"]
    i = fields.index("task.target") + 1
    assert keys == fields[:i] + ["task.degree"] + fields[i:]
    assert cfg.rule_of(study, "task.degree").grid
    assert len(study.cells()) == 2 * len(DEFAULT_STUDY.cells()) // 50


@pytest.mark.parametrize("study,message", [
    (Study(task={"n": 3}), "task: must be a Task (or a [task] table in TOML), got dict"),
    (Study(model=None), "model: must be a Model (or a [model] table in TOML), got NoneType"),
    (Study(train=Task()), "train: must be a Train (or a [train] table in TOML), got Task"),
    (TabularStudy(mlp={"width": 3}), "mlp: must be an MLP (or a [mlp] table in TOML), got dict"),
    (TabularStudy(split={}), "split: must be a Split (or a [split] table in TOML), got dict"),
    (TabularStudy(forest=[]), "forest: must be a Forest (or a [forest] table in TOML), got list"),
])
def test_a_section_of_the_wrong_type_is_a_config_error(study, message):
    with pytest.raises(ConfigError) as e:
        study.validate()
    assert str(e.value) == message
    if isinstance(study, Study):
        with pytest.raises(ConfigError, match="must be a"):
            study.cells()


STUDY_ERRORS = [
    ({"name": 3}, "name = 3: must be a str, got int"),
    ({"seed": -1}, "seed = -1: must be an integer in 0..4294967295"),
    ({"seeds": "16"}, "seeds = '16': must be an integer in 1..1000000, got str"),
    ({"seeds": [1, 2]}, "seeds = [1, 2]: must be an integer in 1..1000000, got list"),
    ({"task": {"n": 0}}, "task.n = 0: must be an integer in 1..2147483647"),
    ({"task": {"n": 2.0}}, "task.n = 2.0: must be an integer in 1..2147483647, got float"),
    ({"task": {"k": 0}}, "task.k = 0: must be an integer in 1..n"),
    ({"task": {"k": "3"}}, "task.k = '3': must be an integer in 1..n, got str"),
    ({"task": {"n": 5, "k": [2, 6]}}, "task.k = 6: must be an integer in 1..n (n = 5)"),
    ({"task": {"noise": 0.5}}, "task.noise = 0.5: must be a number in [0.0, 0.5)"),
    ({"task": {"noise": True}}, "task.noise = True: must be a number in [0.0, 0.5), got bool"),
    ({"task": {"online": "yes"}}, "task.online = 'yes': must be a bool, got str"),
    ({"task": {"m": [100, 100]}}, "task.m: list has duplicate values [100, 100]"),
    # one number however written: refused alike, never silently collapsed into one cell
    ({"train": {"lr": [1, 1.0]}}, "train.lr: list has duplicate values [1, 1.0]"),
    ({"train": {"lr": [0.1, 0.10]}}, "train.lr: list has duplicate values [0.1, 0.1]"),
    ({"task": {"noise": [0, 0.0]}}, "task.noise: list has duplicate values [0, 0.0]"),
    ({"task": {"m": []}}, "task.m: an empty list has no values"),
    ({"model": {"init": "orthogonal"}}, "model.init = 'orthogonal': must be one of dense, sparse"),
    ({"model": {"s": 0}}, "model.s = 0: must be an integer in 1..n for sparse init"),
    ({"model": {"init": "sparse", "s": 51}},
     "model.s = 51: must be an integer in 1..n (n = 50) for sparse init"),
    ({"train": {"lr": 0}}, "train.lr = 0: must be a number > 0.0"),
    ({"train": {"lr": [0.1, True]}}, "train.lr = True: must be a number > 0.0, got bool"),
    ({"train": {"wd": float("inf")}}, "train.wd = inf: must be a number >= 0.0"),
    ({"train": {"threshold": 1.0}}, "train.threshold = 1.0: must be a number in [0.0, 1.0)"),
    ({"train": {"loss": "mse"}}, "train.loss = 'mse': must be one of hinge, logistic, square"),
    ({"train": {"vary": "all"}}, "train.vary = 'all': must be one of both, init, data"),
    ({"train": {"data_seed": -1}}, "train.data_seed = -1: must be an integer in 0..2147483647"),
    # the first bad field (in declaration order) is reported; single-field rules come first
    ({"seeds": 0, "task": {"n": 0}}, "seeds = 0: must be an integer in 1..1000000"),
    ({"task": {"n": 5, "k": 6}, "train": {"lr": 0}}, "train.lr = 0: must be a number > 0.0"),
    ({"task": {"k": [0, 0]}}, "task.k = 0: must be an integer in 1..n"),
]


@pytest.mark.parametrize("d,message", STUDY_ERRORS, ids=[m.split(" ")[0] for _, m in STUDY_ERRORS])
def test_study_error_messages(d, message):
    with pytest.raises(ConfigError) as e:
        Study.from_dict(d)
    assert str(e.value) == message


TABULAR_ERRORS = [
    ({"seeds": 0}, "seeds = 0: must be an integer in 1..1000000"),
    ({"datasets": []}, "datasets: an empty list has no values"),
    ({"datasets": ["a", 1]}, "datasets = 1: must be a str, got int"),
    ({"datasets": ["a", "a"]}, "datasets: list has duplicate values ['a', 'a']"),
    ({"fractions": [0.0]}, "fractions = 0.0: must be a number in (0.0, 1.0]"),
    ({"fractions": [datetime.date(2024, 1, 1)]},
     "fractions = datetime.date(2024, 1, 1): must be a number in (0.0, 1.0], got date"),
    ({"mlp": {"width": [10, 10]}}, "mlp.width: list has duplicate values [10, 10]"),
    ({"mlp": {"lr": [1, 1.0]}}, "mlp.lr: list has duplicate values [1, 1.0]"),
    ({"fractions": [1, 1.0]}, "fractions: list has duplicate values [1, 1.0]"),
    ({"mlp": {"depth": 4}}, "mlp.depth = 4: must be an integer in 1..3"),
    ({"mlp": {"init": ["dense", "lottery"]}}, "mlp.init = 'lottery': must be one of dense, sparse"),
    ({"mlp": {"s": 0}}, "mlp.s = 0: must be an integer in 1..2147483647"),
    ({"mlp": {"lr": [0.1, -1]}}, "mlp.lr = -1: must be a number > 0.0"),
    ({"mlp": {"optimizer": "rmsprop"}}, "mlp.optimizer = 'rmsprop': must be one of sgd, adam"),
    ({"mlp": {"wd": -1}}, "mlp.wd = -1: must be a number >= 0.0"),
    ({"mlp": {"batch": [32, 64]}},
     "mlp.batch = [32, 64]: must be an integer in 1..2147483647, got list"),
    ({"mlp": {"steps": 150, "eval_every": 100}},
     "mlp.steps = 150: must be a multiple of mlp.eval_every (100)"),
    ({"mlp": {"eval_every": 0}}, "mlp.eval_every = 0: must be an integer in 1..1000000000"),
    ({"split": {"max_train": 0}}, "split.max_train = 0: must be an integer in 1..2147483647"),
    ({"split": {"max_eval": 1.5}},
     "split.max_eval = 1.5: must be an integer in 1..2147483647, got float"),
    ({"forest": {"iterations": -1}}, "forest.iterations = -1: must be an integer in 0..10000"),
    ({"forest": {"n_estimators_max": 9}},
     "forest.n_estimators_max = 9: must be an integer in 10..2147483647"),
    # mlp fields are checked before split and forest, single-field rules before cross-field ones
    ({"split": {"max_train": 0}, "mlp": {"s": 0}},
     "mlp.s = 0: must be an integer in 1..2147483647"),
    ({"mlp": {"steps": 150}, "forest": {"iterations": -1}},
     "forest.iterations = -1: must be an integer in 0..10000"),
    ({"mlp": {"lr": 0, "optimizer": "x"}}, "mlp.lr = 0: must be a number > 0.0"),
]


@pytest.mark.parametrize("d,message", TABULAR_ERRORS,
                         ids=[m.split(" ")[0] for _, m in TABULAR_ERRORS])
def test_tabular_error_messages(d, message):
    with pytest.raises(ConfigError) as e:
        TabularStudy.from_dict(d)
    assert str(e.value) == message


def test_tabular_defaults_and_round_trip():
    study = TabularStudy()
    study.validate()
    assert study.axis("datasets") == ["sklearn:breast_cancer"]
    assert study.axis("mlp.init") == ["dense", "sparse"] and study.axis("mlp.depth") == [1]
    again = TabularStudy.from_dict(study.to_dict())
    assert again.fingerprint() == study.fingerprint()


@pytest.mark.parametrize("data,says", [
    ('name = "caf\xe9"\n'.encode("latin-1"), "is not UTF-8 text (byte 0xe9 on line 1)"),
    (bytes(range(128, 256)), "is not UTF-8 text (byte 0x80 on line 1)"),
    (b"seeds = " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    (b"seed = " + b"9" * 5000, "cannot parse"),
])
def test_an_unreadable_config_is_one_error_line(tmp_path, capsys, data, says):
    path = tmp_path / "bad.toml"
    path.write_bytes(data)
    for command in ("plan", "run"):
        assert cli.main([command, str(path), *(["--out", str(tmp_path / "o")]
                                               if command == "run" else [])]) == 2
        assert says in one_error(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory", "huge"])
def test_a_config_that_is_no_small_regular_file_is_refused_at_once(tmp_path, capsys, kind):
    path = {"dev-zero": Path("/dev/zero"), "fifo": tmp_path / "fifo.toml",
            "directory": tmp_path, "huge": tmp_path / "huge.toml"}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # no writer: reading it would wait for ever
    if kind == "huge":
        path.write_bytes(SMALL.encode() + b"# padding\n" * 200_000)  # 2 MB, valid TOML
    says = {"dev-zero": "is not a regular file", "fifo": "is not a regular file",
            "directory": "is a directory", "huge": "is larger than 1 MiB"}[kind]

    def too_slow(*_):
        raise TimeoutError("the config was waited on (or read whole)")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(20)
    try:
        for command in ("plan", "run"):
            assert cli.main([command, str(path), *(["--out", str(tmp_path / "o")]
                                                   if command == "run" else [])]) == 2
            assert f"config: {path} {says}" in one_error(capsys)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert not (tmp_path / "o").exists()


def test_a_utf8_config_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + SMALL.encode())
    assert kinds.load_study(path).name == "edges"


BOUNDS = [
    ("[model]\nwidth = 3000000000", "model.width = 3000000000: must be an integer in "
     "1..2147483647"),
    ("[task]\nm = 3000000000", "task.m = 3000000000: must be an integer in 1..2147483647"),
    ("[train]\nsteps = 3000000000", "train.steps = 3000000000: must be an integer in "
     "1..1000000000"),
    ("[train]\nbatch = 1000000000000", "train.batch = 1000000000000: must be an integer in "
     "1..2147483647"),
    ("[train]\neval_every = 1000000000000", "train.eval_every = 1000000000000: must be an "
     "integer in 1..1000000000"),
    ("seed = 18446744073709551615", "seed = 18446744073709551615: must be an integer in "
     "0..4294967295"),
    ("[task]\nn_test = 1000000000000", "task.n_test = 1000000000000: must be an integer in "
     "1..2147483647"),
    ("[train]\ndata_seed = 2147483648", "train.data_seed = 2147483648: must be an integer in "
     "0..2147483647"),
    ("seeds = 1000000000", "seeds = 1000000000: must be an integer in 1..1000000"),
    ("seeds = 1000000\n[model]\nwidth = [1, 2]", "seeds = 1000000: 2 cells x 1000000 seeds = "
     "2000000 trials; a study may hold at most 1000000"),
    ("[task]\nn = 1000000000", "model.width = 100: must be at most 2 for n = 1000000000 "
     "(n x width <= 2147483647"),
    ("[task]\nn = 1000\nn_test = 3000000", "task.n_test = 3000000: must be at most 2147483 "
     "for n = 1000"),
    ("[task]\nn = 1000\nm = 3000000", "task.m = 3000000: must be at most 2147483 for n = 1000"),
    ("[model]\nwidth = 50000\ndepth = 2", "model.width = 50000: must be at most 46340 for "
     "depth = 2"),
    ("[model]\ndepth = 17", "model.depth = 17: must be an integer in 1..16"),
    ("[model]\nwidth = 40000000\n[train]\nbatch = 100", "train.batch = 100: must be at most "
     "53 for n = 50, width = 40000000"),
    ("[train]\nrecord_curves = true\nsteps = 1000000000\neval_every = 1",
     "train.eval_every = 1: must be at least 1000 for steps = 1000000000 with record_curves"),
    ("[train]\nlr = 1e400", "train.lr = inf: must be a number > 0.0"),
    ('name = "a\\u0000b"', r"name = 'a\x00b': must be a string without control characters"),
    ('name = ""', "name = '': must be a non-empty string"),
    ('"a\\nb" = 1', r"'a\nb': unknown key"),
    (f"seed = 0x{'f' * 5000}", "seed = <a 20000-bit integer>: must be an integer in "
     "0..4294967295"),
]


@pytest.mark.parametrize("text,message", BOUNDS, ids=[m.split(" ")[0] for _, m in BOUNDS])
def test_sizes_past_the_engine_are_refused_by_plan_and_run_at_once(tmp_path, capsys, text,
                                                                     message):
    path = tmp_path / "big.toml"
    path.write_text(text + "\n")
    start = time.perf_counter()
    assert cli.main(["plan", str(path)]) == 2
    assert one_error(capsys).startswith(f"error: {message}")
    assert cli.main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    assert one_error(capsys).startswith(f"error: {message}")
    assert time.perf_counter() - start < 10  # no grid of 10^9 cells or trials is built first
    assert not (tmp_path / "o").exists()


def test_a_grid_of_too_many_cells_is_refused_before_it_is_built():
    big = list(range(1, 1001))
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"^grid = 1000000000 cells: a study may have at most "
                                          r"100000"):
        Study(seeds=1, task=Task(n=10, m=big, n_test=big), model=Model(width=big)).validate()
    assert time.perf_counter() - start < 5


def test_every_shipped_config_is_within_the_bounds():
    here = Path(__file__).resolve().parent.parent
    paths = sorted((here / "experiments").glob("*.toml")) + sorted(
        (here / "benchmarks" / "scale").glob("*.toml"))
    assert len(paths) > 10
    for path in paths:
        d = cfg.read_toml(path)
        d.pop("lottery", None)
        if "families" in d:  # experiments/tasks*.toml: a study per family (scaling: and n)
            studies = ([s for f in load_experiment("scaling").load(path)[1]
                        for s in f["studies"]] if path.stem.startswith("scaling")
                       else [s for _, s in load_experiment("tasks").load(path)])
            for study in studies:
                study.validate()
            continue
        (TabularStudy if "datasets" in d else Study).from_dict(d).validate()


@pytest.mark.parametrize("call,message", [
    (lambda: Study(task={"n": 3}).validate(), "task: must be a Task"),
    (lambda: Study(task=Task(n="8")).validate(), "task.n = '8': must be an integer"),
    (lambda: Study(model=Model(width=[4, 2**40])).validate(), "model.width = 1099511627776"),
    (lambda: Study(train=Train(lr=float("nan"))).validate(), "train.lr = nan"),
    (lambda: parity_jax.run("x", out="o"), "study = 'x': must be a Study"),
    (lambda: parity_jax.run(Study(), out=123), "out = 123: must be a directory path"),
    (lambda: parity_jax.Results(None), "out = None: must be a directory path"),
    (lambda: Study.from_toml(123), "config = 123: must be a file path"),
    (lambda: Study.from_toml("a\x00b.toml"), "config = 'a\\x00b.toml': cannot read it"),
    (lambda: TabularStudy(fractions=[0.5, 2]).validate(), "fractions = 2"),
])
def test_python_api_errors_are_config_errors(call, message):
    with pytest.raises(ConfigError) as e:
        call()
    assert str(e.value).startswith(message), str(e.value)


EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


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
