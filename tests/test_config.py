"""Study config: grid expansion, defaults, validation."""

import dataclasses
import datetime
import hashlib
import json

import pytest

from parity_jax import DEFAULT_STUDY, ConfigError, Model, Study, Task, Train
from parity_jax import config as cfg
from parity_jax.config import MLP, Forest, Split, TabularStudy


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


SECTION_TYPES = [Task, Model, cfg.Train, Split, MLP, Forest]


@pytest.mark.parametrize("section", SECTION_TYPES, ids=lambda c: c.__name__)
def test_config_fields_are_typed(section):
    for f in dataclasses.fields(section):
        assert "Any" not in str(f.type), (section.__name__, f.name, f.type)


def test_every_setting_has_exactly_one_rule():
    kinds = {Study: Study._SECTIONS, TabularStudy: TabularStudy._SECTIONS}
    settings = set()
    for study, sections in kinds.items():
        for f in dataclasses.fields(study):
            if f.name in sections:
                settings |= {f"{f.name}.{g.name}" for g in dataclasses.fields(sections[f.name])}
            else:
                settings.add(f.name)
    assert settings == set(cfg._RULES)
    # a Study's grid axes are its sections' fields, in declaration order
    study_keys = [k for k in cfg._keys(Study()) if "." in k]
    assert study_keys == [f"{s}.{f.name}" for s in ("task", "model", "train")
                          for f in dataclasses.fields(Study._SECTIONS[s])]
    # every one a possible grid axis but a polynomial's lists (one polynomial per study)
    assert [k for k in study_keys if not cfg._RULES[k].grid] == ["task.terms", "task.coefs"]


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
