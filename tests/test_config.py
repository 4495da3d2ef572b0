"""Study config: grid expansion, defaults, validation."""

import pytest

from parity_jax import DEFAULT_STUDY, ConfigError, Model, Study, Task, Train


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
