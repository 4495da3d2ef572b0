"""hermite's ``task.direction``: "sparse" (signs / sqrt(k) on S, as before) or "sphere" (u
uniform on the unit sphere of R^n, the single-index model of online-SGD theory)."""

import math

import jax
import numpy as np
import pytest
from numpy.polynomial import hermite_e

from parity_jax import keys, run, targets
from parity_jax.errors import ConfigError
from parity_jax.kinds.parity.config import Model, Study, Task, Train
from parity_jax.kinds.parity.sample import sample
from parity_jax.tasks import sparse


def _sphere(n=40, k=3, degree=3, **kw):
    return Task(n=n, k=k, target="hermite", inputs="gaussian", degree=degree,
                direction="sphere", **kw)


def _data_key(task: Task, seed: int, index: int = 0):
    return keys.parity_data_keys(seed, np.array([keys.data_id(task.n, task.k)]),
                                 np.array([index]))[0]


def _u(task: Task, seed: int = 0, index: int = 0) -> np.ndarray:
    static = sparse.SparseTask(n=task.n, M=1, batch=1, n_test=1,
                               **sparse.target_fields(_cell(task)))
    return np.asarray(sparse.target_draw(static, _data_key(task, seed, index)))


def _cell(task: Task):
    return Study(seeds=1, task=task, model=Model(width=2), train=Train()).cells()[0]


def test_the_sphere_direction_is_a_dense_unit_vector_fixed_by_the_data_key():
    task = _sphere()
    u = _u(task)
    assert u.shape == (40,) and u.dtype == np.float32
    assert abs(np.linalg.norm(u.astype(np.float64)) - 1) < 1e-6
    assert np.all(u != 0)  # dense: every coordinate carries weight
    assert np.sum(u.astype(np.float64) ** 4) < 0.5  # not concentrated on a few coordinates
    np.testing.assert_array_equal(u, _u(task))  # the same per data key
    assert not np.allclose(u, _u(task, index=1)) and not np.allclose(u, _u(task, seed=1))
    # the draw reads neither k nor S: u = g / |g| for g ~ N(0, I_n) of the stream's draw key
    def key():  # a fresh copy each time (tests run with jax_debug_key_reuse)
        return jax.random.fold_in(_data_key(task, 0), sparse._DRAW)

    draw = targets.get("hermite").draw
    u3, u5 = (np.asarray(draw(key(), k, 40, {"direction": "sphere"})) for k in (3, 5))
    np.testing.assert_array_equal(u3, u5)
    g = np.asarray(jax.random.normal(key(), (40,)), np.float64)
    np.testing.assert_allclose(u3, g / np.linalg.norm(g), rtol=1e-5, atol=1e-7)


def test_directions_over_many_streams_look_uniform_on_the_sphere():
    task = _sphere(n=8, k=2)
    us = np.stack([_u(task, index=i) for i in range(200)]).astype(np.float64)
    # uniform on S^{n-1}: mean 0 and E u u^T = I / n, within ~5 standard errors
    assert np.all(np.abs(us.mean(0)) < 5 / math.sqrt(200 * 8))
    assert np.all(np.abs(np.diag(us.T @ us / 200) - 1 / 8) < 5 * math.sqrt(2 / 200) / 8)


@pytest.mark.parametrize("degree", [1, 2, 3, 5])
def test_sphere_labels_are_the_numpy_hermite_of_the_projection(degree):
    task = _sphere(n=16, k=2, degree=degree)
    x, y, S = sample(task, seed=3, rows=500, index=1)
    u = _u(task, seed=3, index=1).astype(np.float64)
    t = x.astype(np.float64) @ u
    ref = hermite_e.hermeval(t, [0] * degree + [1]) / math.sqrt(math.factorial(degree))
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    assert np.var(t) == pytest.approx(1, abs=0.2)  # <u, x> ~ N(0, 1) for a unit u


def test_sparse_is_the_default_and_changes_nothing():
    plain = Task(n=12, k=3, target="hermite", inputs="gaussian", degree=3)
    given = Task(n=12, k=3, target="hermite", inputs="gaussian", degree=3, direction="sparse")
    assert plain == given and plain.direction is None
    s = [Study(seeds=2, task=t, train=Train(loss="square")) for t in (plain, given)]
    assert s[0].fingerprint() == s[1].fingerprint()
    assert [c.key() for c in s[0].cells()] == [c.key() for c in s[1].cells()]
    np.testing.assert_array_equal(sample(plain, 0, 50).y, sample(given, 0, 50).y)
    sphere = Study(seeds=2, task=_sphere(n=12), train=Train(loss="square"))
    assert sphere.fingerprint() != s[0].fingerprint()
    assert '"direction": "sphere"' in sphere.cells()[0].key()
    assert not np.allclose(sample(plain, 0, 50).y, sample(_sphere(n=12), 0, 50).y)


def test_a_grid_over_directions_has_one_cell_each():
    study = Study(seeds=1, task=Task(n=12, k=3, target="hermite", inputs="gaussian", degree=2,
                                     direction=["sparse", "sphere"]),
                  train=Train(loss="square"))
    assert [c.direction for c in study.cells()] == [None, "sphere"]


@pytest.mark.parametrize("task,message", [
    (dict(target="parity", direction="sphere"),
     "task.direction = 'sphere': means nothing for target = 'parity'; only for target = "
     "hermite (allowed values: sparse, sphere)"),
    (dict(target="staircase", inputs="gaussian", direction="sphere"),
     "task.direction = 'sphere': means nothing for target = 'staircase'"),
    (dict(target="hermite", inputs="gaussian", degree=2, direction="dense"),
     "task.direction = 'dense': must be one of sparse, sphere"),
    (dict(target="hermite", inputs="gaussian", degree=2, direction=3),
     "task.direction = 3: must be one of sparse, sphere"),
])
def test_direction_is_refused_where_it_means_nothing(task, message):
    with pytest.raises(ConfigError) as e:
        Study.from_dict({"seeds": 1, "task": {"n": 10, "k": 3, **task}})
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="task.direction"):
        sample(Task(n=10, k=3, **task), 0, 4)


@pytest.mark.slow  # a study
def test_a_sphere_study_runs_online_and_stores_its_direction(tmp_path):
    study = Study(seeds=2, task=_sphere(n=10, k=1, degree=2, n_test=300, online=True),
                  model=Model(width=32), train=Train(steps=200, eval_every=100, lr=0.02,
                                                     batch=16))
    results = run(study, tmp_path, progress=None)
    cells, trials = results.cells(), results.trials()
    assert [c["direction"] for c in cells] == ["sphere"] and cells[0]["metric"] == "nmse"
    assert len(trials) == 2 and all(np.isfinite(t["test_error"]) for t in trials)
