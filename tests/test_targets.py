"""Targets beyond parity (parity_jax.targets, kinds.parity.sample): labels against plain
numpy, parity's numbers unchanged, nested and batch-independent data, the normalized-MSE
rule, the kernel, and every bad setting as one ConfigError line."""

import dataclasses
import hashlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_batch
from numpy.polynomial import hermite_e

from parity_jax import devices, keys, models, targets
from parity_jax.core import Shape
from parity_jax.errors import ConfigError
from parity_jax.kinds.parity.config import DEFAULT_STUDY, Model, Study, Task, Train
from parity_jax.kinds.parity.sample import sample
from parity_jax.tasks import sparse


def _cube(z):  # a registered real-valued target: sum of cubes of z (defined on any inputs)
    return jnp.sum(z**3, axis=-1)


def _first_sign(z):  # a registered ±1 target
    return jnp.where(z[:, 0] >= 0, 1.0, -1.0)


targets.register_target("test_cube", _cube)
targets.register_target("test_first_sign", _first_sign, binary=True)


def _data_key(task: Task, seed: int, index: int = 0):
    return keys.parity_data_keys(seed, np.array([keys.data_id(task.n, task.k)]),
                                 np.array([index]))[0]


def _numpy_target(task: Task, z: np.ndarray, signs: np.ndarray | None) -> np.ndarray:
    """The target of ``task`` at z (rows, k), in plain numpy (float64)."""
    z = z.astype(np.float64)
    if task.target == "parity":
        return np.prod(z, axis=1)
    if task.target == "majority":
        return np.sign(z.sum(axis=1))
    if task.target == "staircase":
        return sum(np.prod(z[:, :j], axis=1) for j in range(1, task.k + 1))
    if task.target == "polynomial":
        return sum(c * np.prod(z[:, [i - 1 for i in t]], axis=1)
                   for t, c in zip(task.terms, task.coefs, strict=True))
    if task.target == "hermite":
        t = z @ signs / math.sqrt(task.k)
        p = task.degree
        return hermite_e.hermeval(t, [0] * p + [1]) / math.sqrt(math.factorial(p))
    if task.target == "test_cube":
        return np.sum(z**3, axis=1)
    if task.target == "test_first_sign":
        return np.where(z[:, 0] >= 0, 1.0, -1.0)
    raise AssertionError(task.target)


TASKS = [
    Task(n=12, k=3),
    Task(n=12, k=3, noise=0.2),
    Task(n=12, k=5, target="majority"),
    Task(n=12, k=3, target="majority", inputs="gaussian"),
    Task(n=12, k=4, target="staircase"),
    Task(n=12, k=3, target="polynomial", terms=[[1], [1, 2, 3]], coefs=[1, 1]),
    Task(n=12, k=4, target="polynomial", terms=[[2, 4], [3], [1, 2, 3]], coefs=[0.5, -2, 1.5],
         inputs="gaussian"),
    Task(n=12, k=3, target="hermite", inputs="gaussian", degree=3),
    Task(n=12, k=2, target="hermite", inputs="gaussian", degree=4),
    Task(n=12, k=3, target="test_cube", inputs="gaussian"),
    Task(n=12, k=2, target="test_first_sign", inputs="gaussian", noise=0.1),
]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: f"{t.target}-{t.inputs}-k{t.k}")
def test_sample_labels_are_the_numpy_target_of_the_secret_coordinates(task):
    x, y, S = sample(task, seed=5, rows=400, index=2)
    assert x.shape == (400, 12) and x.dtype == np.float32 and y.shape == (400,)
    assert len(set(S.tolist())) == task.k and S.min() >= 0 and S.max() < task.n
    if task.inputs == "boolean":
        assert set(np.unique(x)) == {-1.0, 1.0}
    else:  # N(0, 1): not signs, mean 0 and variance 1 within 5 standard errors
        assert len(np.unique(x)) > 1000
        assert abs(x.mean()) < 5 / math.sqrt(x.size)
        assert abs(x.var() - 1) < 5 * math.sqrt(2 / x.size)
    key = _data_key(task, 5, 2)
    draw = targets.get(task.target).draw  # hermite's signs, from the data key's _DRAW stream
    signs = (np.asarray(draw(jax.random.fold_in(key, sparse._DRAW), task.k, task.n,
                             dict(task.params))) if draw else None)
    ref = _numpy_target(task, x[:, S], signs)
    if task.noise:  # a ±1 target's labels flipped at about the noise rate, never elsewhere
        assert set(np.unique(y)) <= {-1.0, 1.0}
        flipped = np.mean(y != ref)
        assert abs(flipped - task.noise) < 5 * math.sqrt(task.noise * (1 - task.noise) / 400)
        np.testing.assert_array_equal(np.abs(y), np.abs(ref))
    else:
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    # S is the secret set of the parity stream with the same key, in its draw's order
    np.testing.assert_array_equal(np.sort(S), np.flatnonzero(sparse.secret_of(key, 12, task.k)))


def test_the_seed_and_the_index_pick_the_stream():
    task = Task(n=12, k=3, target="hermite", inputs="gaussian", degree=3)
    a, b, c = (sample(task, 0, 8, 0), sample(task, 1, 8, 0), sample(task, 0, 8, 1))
    assert not np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x)
    np.testing.assert_array_equal(a.x, sample(task, 0, 8, 0).x)


# ---- parity: every number as before -------------------------------------------------------

# Digests of the parity data generator's output on main before targets (commit 82d68eb),
# measured there: make_data(key(7), n=12, k=3, m=50, noise=0.1, M=64, n_test=32) (secret,
# x_train, y_train, x_test, y_test) and its online minibatch at step 5 (batch 16).
OLD_DATA = "083929c15fa95f19"
OLD_ONLINE = "95211776d68c9d51"
# The default study's fingerprint and its 50 cell keys (sha256 of the keys joined by
# newlines), and the default Study()'s fingerprint, as main computed them before targets.
OLD_FINGERPRINT = "027c097ad67f79d6"
OLD_CELL_KEYS = "8ba3fd37cdf1e1b9"
OLD_STUDY_FINGERPRINT = "3d74dc2c02c53b8a"


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.asarray(a).tobytes())
    return h.hexdigest()[:16]


def test_parity_data_through_the_task_is_bit_identical_to_before():
    task = sparse.SparseTask(n=12, M=64, batch=16, n_test=32, online=True)
    d = task.make_data(jax.random.key(7), jnp.int32(3), jnp.int32(50), jnp.float32(0.1), 64, 32)
    assert _digest(d.secret, d.x_train, d.y_train, d.x_test, d.y_test) == OLD_DATA
    xb, yb = task.minibatch(d.replace(noise=jnp.float32(0.1)), jnp.int32(5))
    assert _digest(xb, yb) == OLD_ONLINE
    # the training program's streams (Task.prepare) are the same arrays
    inputs = sparse.Inputs(data_key=jax.random.key(7)[None], k=jnp.array([3], jnp.int32),
                           m=jnp.array([50], jnp.int32), noise=jnp.array([0.1], jnp.float32))
    streams, _ = dataclasses.replace(task, online=False).prepare(inputs, None)
    assert _digest(streams.secret[0], streams.x_train[0], streams.y_train[0],
                   streams.x_test[0], streams.y_test[0]) == OLD_DATA
    # and sample() gives the first rows of that training set
    cfg = Task(n=12, k=3, noise=0.1)
    x, y, S = sample(cfg, seed=3, rows=20, index=1)
    ref = sparse.make_data(_data_key(cfg, 3, 1), 12, jnp.int32(3), 20, jnp.float32(0.1), 20, 1)
    np.testing.assert_array_equal(x, ref.x_train)
    np.testing.assert_array_equal(y, ref.y_train)
    np.testing.assert_array_equal(np.sort(S), np.flatnonzero(ref.secret))


def test_existing_studies_keep_their_fingerprints_and_cell_keys():
    assert DEFAULT_STUDY.fingerprint() == OLD_FINGERPRINT
    cell_keys = [c.key() for c in DEFAULT_STUDY.cells()]
    assert len(cell_keys) == 50
    assert hashlib.sha256("\n".join(cell_keys).encode()).hexdigest()[:16] == OLD_CELL_KEYS
    assert Study().fingerprint() == OLD_STUDY_FINGERPRINT
    assert all(c.target == "parity" and c.inputs == "boolean" for c in DEFAULT_STUDY.cells())
    # a target that is not the default is part of the identity
    other = dataclasses.replace(DEFAULT_STUDY, task=dataclasses.replace(
        DEFAULT_STUDY.task, target="majority"))
    assert other.fingerprint() != OLD_FINGERPRINT
    assert '"target": "majority"' in other.cells()[0].key()


def test_grid_axes_of_targets_and_degrees():
    study = Study(seeds=1, task=Task(n=10, k=3, m=100, target=["majority", "hermite"],
                                     inputs="gaussian", degree=[2, 3]),
                  train=Train(loss="square"))
    cells = study.cells()
    # majority ignores degree (one cell), hermite has one cell per degree
    assert [(c.target, c.degree) for c in cells] == [("majority", None), ("hermite", 2),
                                                ("hermite", 3)]
    poly = Study(seeds=1, task=Task(n=10, k=3, target=["polynomial", "staircase"],
                                    terms=[[1], [1, 2, 3]], coefs=[1, 1.5]),
                 train=Train(loss="square")).cells()
    assert [(c.target, c.terms, c.coefs) for c in poly] == [
        ("polynomial", ((1,), (1, 2, 3)), (1.0, 1.5)), ("staircase", None, None)]
    assert len({hash(c) for c in poly}) == 2  # cells stay hashable


# ---- data streams of other targets: nested, independent of the batch ------------------------


@pytest.mark.parametrize("task", [Task(n=12, k=3, target="hermite", inputs="gaussian", degree=3),
                                  Task(n=12, k=5, target="majority", noise=0.1)],
                         ids=["hermite", "majority"])
def test_training_sets_are_nested(task):
    small, big = sample(task, 0, 200, 4), sample(task, 0, 500, 4)
    np.testing.assert_array_equal(small.x, big.x[:200])
    np.testing.assert_array_equal(small.y, big.y[:200])
    np.testing.assert_array_equal(small.S, big.S)


def _shape(target: str, **kw) -> Shape:
    fields = {"hermite": dict(inputs="gaussian", target="hermite", k=3,
                              params=(("degree", 3),)),
              "majority": dict(inputs="boolean", target="majority", k=3),
              "staircase": dict(inputs="boolean", target="staircase", k=3),
              "polynomial": dict(inputs="gaussian", target="polynomial", k=3,
                                 params=(("terms", ((1,), (1, 2, 3))),
                                         ("coefs", (1.0, 1.0))))}[target]
    task = sparse.SparseTask(n=12, M=kw.pop("M", 128), batch=8, n_test=256,
                       online=kw.pop("online", False), **fields)
    base = dict(depth=1, W=16, eval_every=100, loss="square", G=1, P=3, step="fused",
                layout="vmapped")
    base.update(kw)
    return Shape(task=task, **base)


# Three groups of mixed trials (k = 3 for every group: the static k of these targets).
GROUPS = [
    {"data": 0, "m": 100, "trials": [
        {"init": 0, "width": 16}, {"init": 1, "width": 5, "sparse": True, "s": 2, "lr": 0.05},
        {"init": 2, "width": 12, "sparse": True, "s": 3, "wd": 0.0}]},
    {"data": 1, "m": 64, "trials": [
        {"init": 3, "width": 16, "sparse": True, "s": 1, "lr": 0.2},
        {"init": 4, "width": 7, "wd": 0.05}]},
    {"data": 2, "m": 80, "trials": [{"init": 5, "width": 12, "threshold": 0.9, "stop": True}]},
]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["hermite", "majority"])
def test_a_group_computes_the_same_bits_alone_and_in_a_bigger_batch(target):
    big = _shape(target, G=3)
    small = _shape(target, G=1)
    out_big, p_big = devices.train_on_devices(big, make_batch(GROUPS, P=3), n_devices=1)
    out_small, p_small = devices.train_on_devices(small, make_batch(GROUPS[2:], P=3), n_devices=1)
    for a, b in zip(jax.tree.leaves((out_big, p_big)), jax.tree.leaves((out_small, p_small)),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a)[2], np.asarray(b)[0])
    # the trials learnt something measured by the target's metric (not all NaN or equal)
    err = np.asarray(out_big.test_error)[0]
    assert np.all(np.isfinite(err)) and len(set(err.tolist())) > 1


# ---- success of a real-valued target: normalized test MSE ---------------------------------


def _params(P: int, n: int, w1: np.ndarray, a: np.ndarray, c: np.ndarray) -> models.Params:
    """Depth-1 params of P trials of width W = w1.shape[1] (no bias)."""
    W = w1.shape[1]
    return models.Params(w1=jnp.asarray(w1, jnp.float32), b1=jnp.zeros((P, W)),
                         wh=jnp.zeros((P, 0, W, W)), bh=jnp.zeros((P, 0, W)),
                         a=jnp.asarray(a, jnp.float32), c=jnp.asarray(c, jnp.float32))


def test_the_error_of_a_real_valued_target_is_its_normalized_test_mse():
    # x_test: 4 rows, n = 2; y_test = [1, 2, 3, 4]: mean 2.5, variance 1.25
    x = jnp.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [5.0, 1.0]])
    y = jnp.array([1.0, 2.0, 3.0, 4.0])
    # trial 0: f = 0.5 -> squared errors 0.25, 2.25, 6.25, 12.25: MSE 5.25, NMSE 4.2
    # trial 1: f = 2.5 (the mean) -> NMSE 1
    # trial 2: f = relu(x_0) -> 1, 2, 0, 5: squared errors 0, 0, 9, 1: MSE 2.5, NMSE 2
    w1 = np.zeros((3, 1, 2))
    w1[2, 0, 0] = 1.0
    params = _params(3, 2, w1, a=np.array([[0.0], [0.0], [1.0]]), c=np.array([0.5, 2.5, 0.0]))
    want = [4.2, 1.0, 2.0]
    for chunk in (0, 3):
        np.testing.assert_allclose(sparse._test_nmse(params, x, y, chunk=chunk), want,
                                   rtol=1e-6)
    # Task.evaluate reports it as the tracker's "error" for a real-valued target, the test
    # error (sign mismatch) for a ±1 one
    data = sparse.Data(secret=None, x_train=x[None], y_train=y[None], x_test=x[None],
                       y_test=y[None], m=jnp.array([4]), order_key=None)
    G1 = jax.tree.map(lambda v: v[None], params)
    real = _shape("staircase").task
    np.testing.assert_allclose(real.evaluate("square", G1, data, None, False)["error"][0], want,
                               rtol=1e-6)
    ys = jnp.array([1.0, -1.0, 1.0, 1.0])  # f: 0.5 / 2.5 / (1, 2, 0, 5): sign(0) is an error
    binary = _shape("majority").task
    np.testing.assert_allclose(
        binary.evaluate("square", G1, data.replace(y_test=ys[None]), None, False)["error"][0],
        [0.25, 0.25, 0.5])
    assert targets.metric("staircase") == "nmse" and targets.metric("majority") == "error"
    assert targets.metric("parity") == "error" and targets.metric("test_cube") == "nmse"
    assert targets.metric("test_first_sign") == "error"


@pytest.mark.slow
def test_first_hit_is_the_first_evaluation_with_nmse_at_most_the_threshold():
    # a trial that learns staircase k = 3 (a linear-ish target) reaches NMSE <= 0.9 and stops
    shape = _shape("staircase", G=1, eval_every=50)
    groups = [{"data": 0, "m": 128, "trials": [
        {"init": 0, "width": 16, "steps": 2000, "threshold": 0.9, "stop": True},
        {"init": 1, "width": 16, "steps": 2000, "threshold": 0.0}]}]
    out, _ = devices.train_on_devices(shape, make_batch(groups, P=3), n_devices=1)
    hit, err = np.asarray(out.first_hit)[0], np.asarray(out.test_error)[0]
    assert out.success[0, 0] and hit[0] > 0 and err[0] <= 0.9
    assert out.steps_run[0, 0] == hit[0]  # stopped there
    assert not out.success[0, 1] and out.steps_run[0, 1] == 2000  # threshold 0: never


# ---- the kernel (interpret mode on a CPU) --------------------------------------------------

KERNEL = "pallas" if jax.default_backend() == "gpu" else "interpret"


@pytest.mark.slow
@pytest.mark.parametrize("target,online", [("hermite", False), ("polynomial", True)])
def test_the_kernel_equals_the_xla_step_on_other_targets(target, online):
    shape = _shape(target, G=2, online=online, M=1 if online else 128)
    groups = [GROUPS[0], {**GROUPS[1], "trials": [
        {**GROUPS[1]["trials"][0], "steps": 250}, *GROUPS[1]["trials"][1:]]}]
    xla = devices.train_on_devices(shape, make_batch(groups, P=3))
    pallas = devices.train_on_devices(dataclasses.replace(shape, kernel=KERNEL),
                                      make_batch(groups, P=3))
    (o1, p1), (o2, p2) = xla, pallas
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)
    for name in ("success", "first_hit", "steps_run", "diverged"):
        np.testing.assert_array_equal(getattr(o2, name), getattr(o1, name), err_msg=name)
    for name in ("test_error", "train_loss"):
        np.testing.assert_allclose(getattr(o2, name), getattr(o1, name), rtol=1e-4, atol=1e-6,
                                   err_msg=name)
    # the comparison covers trials that trained (a diverged one is NaN in both)
    trained = (np.asarray(o1.steps_run) > 0) & ~np.asarray(o1.diverged)
    assert trained.sum() >= 3 and np.all(np.isfinite(np.asarray(o1.test_error)[trained]))


# ---- bad settings: one ConfigError line naming the field ----------------------------------


def _study(**task) -> Study:
    loss = task.pop("loss", "square")
    return Study(seeds=1, task=Task(n=10, m=50, **task), model=Model(width=4),
                 train=Train(loss=loss))


@pytest.mark.parametrize("make,message", [
    (lambda: _study(k=4, target="majority"),
     "task.k = 4: must be odd for target = 'majority'"),
    (lambda: _study(k=3, target="hermite", degree=3),
     "task.inputs = 'boolean': target = 'hermite' needs gaussian inputs"),
    (lambda: _study(k=3, target="parity", inputs="gaussian"),
     "task.inputs = 'gaussian': target = 'parity' needs boolean inputs"),
    (lambda: _study(k=4, target="polynomial", terms=[[1], [2, 5]], coefs=[1, 1]),
     "task.terms: position 5 > k = 4"),
    (lambda: _study(k=4, target="polynomial", terms=[[1], [2, 3], [4]], coefs=[1, 1]),
     "task.coefs: 2 values for 3 terms"),
    (lambda: _study(k=3, target="polynomial", coefs=[1]),
     "task.terms: required for target = 'polynomial'"),
    (lambda: _study(k=3, target="polynomial", terms=[[1]]),
     "task.coefs: required for target = 'polynomial'"),
    (lambda: _study(k=3, target="polynomial", terms=[[1, 1]], coefs=[1]),
     "task.terms: term [1, 1] repeats a position"),
    (lambda: _study(k=3, target="polynomial", terms=[[0]], coefs=[1]),
     "task.terms: position 0 < 1"),
    (lambda: _study(k=3, target="polynomial", terms=[], coefs=[1]),
     "task.terms = []: must be a non-empty list"),
    (lambda: _study(k=3, target="polynomial", terms=[[1]], coefs=["a"]),
     "task.coefs = ['a']: must be a non-empty list of numbers within float32's range"),
    (lambda: _study(k=3, target="hermite", inputs="gaussian"),
     "task.degree: required for target = 'hermite'"),
    (lambda: _study(k=3, target="hermite", inputs="gaussian", degree=11),
     "task.degree = 11: must be an integer in 1..10"),
    (lambda: _study(k=3, target="mine"),
     "task.target = 'mine': not a registered target; registered: hermite, majority, parity, "
     "polynomial, staircase, test_cube, test_first_sign"),
    (lambda: _study(k=3, inputs="uniform"),
     "task.inputs = 'uniform': must be one of boolean, gaussian"),
    (lambda: _study(k=3, target="staircase", noise=0.1),
     "task.noise = 0.1: label noise flips ±1 labels; target = 'staircase' is real-valued"),
    (lambda: _study(k=3, target="staircase", loss="hinge"),
     "train.loss = 'hinge': target = 'staircase' is real-valued; use loss = \"square\""),
    (lambda: _study(k=3, target="test_cube", loss="logistic"),
     "train.loss = 'logistic': target = 'test_cube' is real-valued"),
    (lambda: targets.register_target("majority", _cube),
     "target = 'majority': the name of a built-in target"),
    (lambda: targets.register_target("test_cube", _first_sign),
     "target = 'test_cube': already registered"),
    (lambda: targets.register_target("test_cube", _cube, binary=True),
     "target = 'test_cube': already registered"),
    (lambda: targets.register_target("x", _cube, inputs=("uniform",)),
     "inputs = ['uniform']: each must be one of boolean, gaussian"),
    (lambda: sample(Task(n=10, k=[2, 3]), 0, 10),
     "task.k = [2, 3]: must be one value here"),
    (lambda: sample(Task(n=10, k=3, target="majority", inputs="gaussian"), 0, 0),
     "rows = 0: must be an integer in 1.."),
])
def test_bad_target_settings_are_one_config_error_line(make, message):
    with pytest.raises(ConfigError) as e:
        s = make()
        if isinstance(s, Study):
            s.validate()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_real_valued_target_with_a_binary_loss_is_fine_for_binary_targets():
    # the same settings that are refused above pass for ±1 targets and with the square loss
    _study(k=3, target="majority", loss="hinge", noise=0.1).validate()
    _study(k=3, target="test_first_sign", loss="logistic", inputs="gaussian").validate()
    _study(k=3, target="staircase").validate()
    targets.register_target("test_cube", _cube)  # the same function again: allowed
