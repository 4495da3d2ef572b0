"""Success of a real-valued target (parity_jax.terms, tasks/success.py): its population
variance against exact enumeration and plain-numpy Monte Carlo, the one zero-variance rule,
per-term recovery of hand-set nets against numpy, the first-hit tracker's recovery rule, and a
tiny study through run, store, check and report -- and a store made before ``train.nmse``."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sqlite3

import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import hermite_e

import parity_jax
from parity_jax import check, cli, keys, kinds, models, targets, terms, trackers
from parity_jax.errors import ConfigError, StoreError
from parity_jax.kinds.parity.config import Model, Study, Task, Train
from parity_jax.tasks import sparse, success

quick = pytest.mark.quick


def _cube(z, scale=1.0):
    return scale * jnp.sum(z**3, axis=-1)


# ---- population variance: exact for the built-ins, against independent computations -------


def _cube_points(k: int) -> np.ndarray:
    """Every point of {-1, +1}^k, (2^k, k)."""
    return np.array(list(itertools.product([-1.0, 1.0], repeat=k)))


def _moments(y: np.ndarray) -> tuple[float, float]:
    return float(np.var(y)), float(np.mean(y**2))


@quick
@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_staircase_population_variance_is_k_by_enumerating_the_cube(k):
    z = _cube_points(k)
    y = np.cumprod(z, axis=1).sum(axis=1)  # sum_{j<=k} prod_{i<=j} z_i
    var, square = terms.population_moments("staircase", k, (), "boolean")
    assert (var, square) == pytest.approx(_moments(y), abs=1e-12) and var == k
    # on N(0, I) inputs too (distinct coordinates: still orthonormal), by Monte Carlo
    g = np.random.default_rng(k).standard_normal((400_000, k))
    y = np.cumprod(g, axis=1).sum(axis=1)
    se = np.std(y**2) / math.sqrt(len(y))
    assert abs(terms.population_moments("staircase", k, (), "gaussian")[0] - np.var(y)) < 6 * se


POLYNOMIALS = [
    (((1,), (1, 2, 3)), (1.0, 1.0)),  # a leap function
    (((1,), (2,), (1, 2)), (0.5, -2.0, 3.0)),
    (((1, 2), (2, 1), (3,)), (1.0, 0.5, -1.0)),  # one monomial twice: coefficients add
    (((1,), (1,), (2, 3)), (1.0, -1.0, 0.25)),  # cancelling terms leave one
    (((1, 2, 3, 4),), (1e-3,)),
]


@quick
@pytest.mark.parametrize("poly", POLYNOMIALS)
def test_polynomial_population_variance_by_enumerating_the_cube(poly):
    monomials, coefs = poly
    k = 4
    z = _cube_points(k)
    y = sum(np.float32(c) * np.prod(z[:, [i - 1 for i in m]], axis=1)
            for m, c in zip(monomials, coefs, strict=True))
    params = (("terms", monomials), ("coefs", coefs))
    var, square = terms.population_moments("polynomial", k, params, "boolean")
    assert var == pytest.approx(_moments(y)[0], rel=1e-12, abs=1e-15)
    assert square == pytest.approx(_moments(y)[1], rel=1e-12, abs=1e-15)  # mean 0
    # its terms, summed, are the target (each monomial once, coefficient as the labels hold it)
    listed = terms.terms_of("polynomial", k, dict(params))
    assert len({pos for pos, _ in listed}) == len(listed) and all(c != 0 for _, c in listed)
    again = sum(c * np.prod(z[:, list(pos)], axis=1) for pos, c in listed)
    np.testing.assert_allclose(again, y, atol=1e-12)


@quick
@pytest.mark.parametrize("degree", [1, 2, 3, 5])
def test_hermite_population_variance_is_one_by_monte_carlo(degree):
    k = 3
    assert terms.population_moments("hermite", k, (("degree", degree),), "gaussian") == (1, 1)
    rng = np.random.default_rng(degree)
    u = rng.choice([-1.0, 1.0], k) / math.sqrt(k)
    t = rng.standard_normal((400_000, k)) @ u
    y = hermite_e.hermeval(t, [0] * degree + [1]) / math.sqrt(math.factorial(degree))
    se = np.std((y - y.mean())**2) / math.sqrt(len(y))
    assert abs(np.var(y) - 1.0) < 6 * se
    assert terms.terms_of("hermite", k, {"degree": degree}) == ((None, 1.0),)


def test_a_registered_target_declares_its_variance_or_it_is_estimated(registered):
    registered("t_declared", _cube, variance=15.0)
    assert terms.population_moments("t_declared", 3, (), "gaussian") == (15.0, 15.0)
    # estimated on 2^16 fixed inputs: sum of cubes of 3 N(0, 1) has variance 3 x 15 = 45;
    # on ±1 inputs z^3 = z: variance 3, exactly up to sampling
    registered("t_cube", _cube)
    var, square = terms.population_moments("t_cube", 3, (), "gaussian")
    assert abs(var - 45) < 0.1 * 45 and square >= var
    var, _ = terms.population_moments("t_cube", 3, (), "boolean")
    assert abs(var - 3) < 6 * math.sqrt(2 * 9 / terms.ESTIMATE_ROWS)
    assert terms.population_moments("t_cube", 3, (), "boolean")[0] == var  # a fixed sample
    for bad in (0, -1.0, math.inf, True, "1"):
        with pytest.raises(ConfigError, match="variance = .*: must be a positive number"):
            targets.register_target("t_bad", _cube, variance=bad)
    with pytest.raises(ConfigError, match="for a real-valued target"):
        targets.register_target("t_bad", _cube, binary=True, variance=1.0)
    assert "t_bad" not in targets.registered()


# ---- the one rule ------------------------------------------------------------------------------


@quick
def test_the_one_rule_refuses_a_variance_below_the_relative_floor_with_one_line():
    terms.check_variance("staircase", 1.0, 1.0, "its population variance")
    terms.check_variance("t", 2e-6, 1.0, "x")  # above the floor
    for var, square in [(0.0, 0.0), (0.0, 1.0), (1e-7, 1.0), (math.nan, 1.0)]:
        with pytest.raises(ConfigError, match=r"task.target = 't': what is (0|1e-07|nan); "
                                              "a real-valued target's success divides") as e:
            terms.check_variance("t", var, square, "what")
        assert "\n" not in str(e.value)


def _study(target: str, nmse=None, recover=None, **task) -> Study:
    task = {"n": 8, "k": 2, "m": 32, "n_test": 16, **task}
    return Study(name="one-rule", seeds=2, task=Task(target=target, **task),
                 model=Model(width=4), train=Train(steps=20, eval_every=10, nmse=nmse,
                                                   recover=recover))


def test_population_and_test_modes_check_what_their_programs_divide_by(registered):
    """One function (``success.success_moments``) gives the program's normaliser and the
    value the check refuses: a constant target is refused in both modes, a constant registered
    target by its estimated population variance."""
    registered("t_const", lambda z: jnp.full(z.shape[0], 3.0))
    for nmse in ("population", "test"):
        for target, task in [("polynomial", dict(terms=[[1], [1]], coefs=[2, -2])),
                             ("t_const", {})]:
            with pytest.raises(ConfigError, match=f"task.target = '{target}': .* is 0;"):
                kinds.named("parity").work(_study(target, nmse, **task))
    # the program's normaliser is the checked one: population -> the static moments
    task = sparse.SparseTask(n=8, M=1, batch=1, n_test=16, target="polynomial", k=2,
                             params=(("terms", ((1,), (2,))), ("coefs", (1.0, 2.0))),
                             population=(5.0, 5.0))
    y = jnp.array([3.0, -1.0, 1.0, -3.0])
    assert [float(v) for v in success.success_moments(task, y)] == [5.0, 5.0]
    test_mode = dataclasses.replace(task, population=())
    assert [float(v) for v in success.success_moments(test_mode, y)] == pytest.approx(
        [np.var(np.asarray(y)), np.mean(np.asarray(y) ** 2)])
    cell = _study("polynomial", terms=[[1], [2]], coefs=[1, 2]).cells()[0]
    assert cell.nmse == "population" and sparse.target_fields(cell)["population"] == (5.0, 5.0)


@quick
def test_new_real_valued_studies_take_population_old_stores_keep_the_test_set():
    new = _study("staircase")
    assert new.train.nmse == "population" and new.cells()[0].nmse == "population"
    stored = new.to_dict()
    assert stored["train"]["nmse"] == "population"
    old = json.loads(json.dumps(stored))
    del old["train"]["nmse"]  # as a store written before train.nmse holds it
    read = Study.from_stored(old)
    assert read.train.nmse == "test" and read.cells()[0].nmse == "test"
    assert read.fingerprint() == Study.from_dict(
        {**old, "train": {**old["train"], "nmse": "test"}}).fingerprint()
    assert read.fingerprint() != new.fingerprint()  # resuming it with a new config: refused
    assert "nmse" not in json.loads(read.cells()[0].key())  # the old cell, as stored
    # ±1 targets are untouched: no setting in the study, None in their cells
    binary = _study("majority", k=3)
    assert binary.train.nmse is None and "nmse" not in binary.to_dict()["train"]
    assert binary.cells()[0].nmse is None
    assert Study.from_stored(binary.to_dict()).fingerprint() == binary.fingerprint()
    assert parity_jax.DEFAULT_STUDY.fingerprint() == "027c097ad67f79d6"


@quick
def test_recover_needs_a_target_that_lists_its_terms():
    for target, task in [("majority", {"k": 3}), ("parity", {})]:
        with pytest.raises(ConfigError, match=f"train.recover = 0.5: target = '{target}' "
                                              "lists no terms to recover"):
            _study(target, recover=0.5, **task).validate()
    with pytest.raises(ConfigError, match=r"train.recover = 1.5: must be a number in \[0.0, "):
        _study("staircase", recover=1.5).validate()
    cells = _study("staircase", recover=[None, 0.5]).cells()
    assert [c.recover for c in cells] == [None, 0.5]
    assert "terms" not in sparse.target_fields(cells[0])
    assert sparse.target_fields(cells[1])["terms"] == (((0,), 1.0), ((0, 1), 1.0))


def test_a_registered_target_lists_no_terms(registered):
    registered("t_cube2", _cube)
    with pytest.raises(ConfigError, match="target = 't_cube2' lists no terms"):
        _study("t_cube2", recover=0.1).validate()


# ---- per-term recovery of hand-set nets --------------------------------------------------------


def _params(w1, b1, a, c) -> models.Params:
    """Depth-1 params: w1 (P, W, n), b1 (P, W), a (P, W), c (P,)."""
    P, W, _ = np.shape(w1)
    return models.Params(w1=jnp.asarray(w1, jnp.float32), b1=jnp.asarray(b1, jnp.float32),
                         wh=jnp.zeros((P, 0, W, W)), bh=jnp.zeros((P, 0, W)),
                         a=jnp.asarray(a, jnp.float32), c=jnp.asarray(c, jnp.float32))


def _net(w1, b1, a, c, x) -> np.ndarray:
    """(rows, P): sum_w a relu(w1 x + b1) + c, in numpy."""
    h = np.maximum(np.einsum("pwn,rn->rpw", w1, x) + b1[None], 0)
    return np.einsum("rpw,pw->rp", h, a) + c[None]


def _projection(f, phi, coefs):
    """(P, T): numpy's least-squares coefficients of each column of f on [1, phi], / coefs."""
    design = np.concatenate([np.ones((phi.shape[0], 1)), phi], axis=1)
    beta = np.linalg.lstsq(design, f, rcond=None)[0]  # (1 + T, P)
    return beta[1:].T / np.asarray(coefs)[None]


def test_recovery_of_hand_set_nets_against_numpy():
    # f = c x_S1 = c relu(x_S1) - c relu(-x_S1) (two neurons): on ±1 inputs it holds c of the
    # staircase's first term z1 exactly and none of its second z1 z2
    n, rows = 6, 37
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 1.0], (rows, n)).astype(np.float32)
    coords = np.array([4, 1])
    w1 = np.zeros((3, 2, n))
    w1[:, 0, 4], w1[:, 1, 4] = 1.0, -1.0
    a = np.array([[0.5, -0.5], [1.0, -1.0], [-2.0, 2.0]])
    b1, c = np.zeros((3, 2)), np.array([0.0, 0.0, 0.3])
    w1[2, 1] = rng.standard_normal(n)  # the third: another function, whatever it is
    b1[2, 1] = 0.2
    params = _params(w1, b1, a, c)
    listed = terms.terms_of("staircase", 2, {})
    f = _net(w1, b1, a, c, x.astype(np.float64))
    z = x[:, coords].astype(np.float64)
    phi = np.stack([z[:, 0], z[:, 0] * z[:, 1]], axis=1)
    want = _projection(f, phi, [1.0, 1.0])
    y = phi.sum(axis=1).astype(np.float32)
    for chunk in (0, 8, 37, 100):
        got = success.recovery(params, jnp.asarray(x), jnp.asarray(y), jnp.asarray(coords),
                               listed, chunk=chunk)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[:2], [[0.5, 0.0], [1.0, 0.0]], atol=1e-5)
    # a polynomial with coefficients: r_i = beta_i / c_i; hermite: phi is y itself
    poly = terms.terms_of("polynomial", 2, {"terms": ((2,), (1,)), "coefs": (4.0, -0.5)})
    got = success.recovery(params, jnp.asarray(x), jnp.asarray(y), jnp.asarray(coords), poly)
    np.testing.assert_allclose(got, _projection(f, z[:, ::-1], [4.0, -0.5]), rtol=1e-4,
                               atol=1e-5)
    g = rng.standard_normal((rows, n)).astype(np.float32)
    yh = (g[:, coords] @ np.array([1.0, -1.0]) / math.sqrt(2)).astype(np.float32)  # He_1
    got = success.recovery(params, jnp.asarray(g), jnp.asarray(yh), jnp.asarray(coords),
                           terms.terms_of("hermite", 2, {"degree": 1}))
    np.testing.assert_allclose(got, _projection(_net(w1, b1, a, c, g.astype(np.float64)),
                                                yh[:, None].astype(np.float64), [1.0]),
                               rtol=1e-4, atol=1e-5)


def test_a_net_equal_to_the_target_recovers_every_term_exactly_on_any_test_set():
    # the correlation mean_test(f phi) / c gave mean_test(phi^2) for such a net: over 200
    # Gaussian rows, He_1's 0.8-1.2 from one test set to the next
    rng = np.random.default_rng(1)
    n, rows, coords = 5, 200, np.array([3, 0])
    u = np.array([0.6, -0.8])  # unit, on S
    for _ in range(3):
        g = rng.standard_normal((rows, n)).astype(np.float32)
        yh = (g[:, coords] @ u).astype(np.float32)  # He_1(<u, x>)
        w1 = np.zeros((1, 2, n))
        w1[0, 0, coords], w1[0, 1, coords] = u, -u  # relu(<u,x>) - relu(-<u,x>) = <u,x>
        params = _params(w1, np.zeros((1, 2)), np.array([[1.0, -1.0]]), np.array([0.25]))
        got = success.recovery(params, jnp.asarray(g), jnp.asarray(yh), jnp.asarray(coords),
                               terms.terms_of("hermite", 2, {"degree": 1}))
        np.testing.assert_allclose(got, [[1.0]], atol=1e-4)
        assert abs(float(np.mean(yh * yh)) - 1.0) > 1e-3  # where the correlation was off


def test_the_first_hit_with_recovery_needs_every_term_at_least_recover():
    tracker = trackers.make(trackers.FirstHit(terms=2))
    st = tracker.init((3,))
    inputs = trackers.FirstHitInputs(threshold=jnp.full(3, 0.2),
                                     stop_on_success=jnp.ones(3, bool), recover=jnp.full(3, 0.8))
    everyone = jnp.ones(3, bool)
    rec = np.array([[0.9, 0.5], [0.9, 0.85], [1.0, 1.0]], np.float32)
    st = tracker.update(st, {"error": jnp.array([0.1, 0.1, 0.5]), "recovery": rec}, everyone,
                        jnp.zeros(3, bool), jnp.full(3, 100), inputs)
    # NMSE passes but term 2 is at 0.5; both pass; recovery passes but NMSE does not
    assert np.asarray(st.hit).tolist() == [-1, 100, -1]
    np.testing.assert_array_equal(st.rec_hit[1], rec[1])
    assert np.isnan(np.asarray(st.rec_hit)[[0, 2]]).all()
    rec2 = np.array([[0.95, 0.81], [0.1, 0.1], [1.0, 1.0]], np.float32)
    st = tracker.update(st, {"error": jnp.array([0.1, 0.9, 0.5]), "recovery": rec2},
                        jnp.array([True, False, False]), jnp.array([False, False, True]),
                        jnp.full(3, 200), inputs)
    assert np.asarray(st.hit).tolist() == [200, 100, -1]
    np.testing.assert_array_equal(st.rec_hit[:2], [rec2[0], rec[1]])
    np.testing.assert_array_equal(st.rec_last[:2], [rec2[0], rec[1]])
    assert np.isnan(np.asarray(st.rec_last)[2]).all()  # diverged
    out = tracker.outcome(st, jnp.full(3, 200), jnp.zeros(3, bool),
                          {"error": None, "loss": None}, {"loss": jnp.zeros(3)})
    assert out.recovery_hit is st.rec_hit and out.recovery_end is st.rec_last
    assert trackers.make("first_hit").init((2,)).rec_hit is None  # as before: no recovery


# ---- a tiny study through run, store, check, report -------------------------------------------

TINY = """
name = "recovery"
seeds = 2
[task]
n = 8
k = 2
m = 128
n_test = 64
target = "staircase"
[model]
width = 16
[train]
steps = 400
eval_every = 100
lr = 0.05
threshold = 0.3
stop_on_success = false
"""


def _test_variance(study: Study, index: int) -> float:
    cell = study.cells()[0]
    task = sparse.SparseTask(n=cell.n, M=1, batch=1, n_test=1, inputs=cell.inputs,
                             target=cell.target, k=cell.k, params=cell.params)
    key = keys.parity_data_keys(study.seed, np.array([keys.data_id(cell.n, cell.k)]),
                                np.array([index]))[0]
    return float(np.var(np.asarray(sparse.test_labels(task, key, cell.n_test), np.float64)))


@pytest.mark.slow
def test_a_tiny_study_stores_and_reports_population_success_and_recovery(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY + "recover = [0.5, 0.99]\n")
    study = kinds.load_study(config)
    results = parity_jax.run(study, tmp_path / "pop", progress=None)
    assert check.check(tmp_path / "pop")[0] == []
    trials = results.trials()
    assert {t["nmse"] for t in trials} == {"population"}
    for t in trials:  # two terms, measured at the end (and at the hit where it succeeded)
        assert len(t["recovery_end"]) == 2
        assert (t["recovery_hit"] is not None) == t["success"]
        if t["success"]:
            assert min(t["recovery_hit"]) >= t["recover"] and t["test_error"] <= 0.3
    assert any(t["success"] for t in trials)
    assert not all(t["success"] for t in trials if t["recover"] == 0.99)  # stricter: fewer
    cells = results.cells()
    for c in cells:
        ends = [t["recovery_end"] for t in trials if t["cell"] == c["cell"]]
        np.testing.assert_allclose(c["recovery_end"], np.median(ends, axis=0))
    assert cli.main(["report", str(tmp_path / "pop")]) == 0
    table = capsys.readouterr().out
    assert "recovery (median per term, end)" in table
    assert " ".join(f"{v:.2f}" for v in cells[0]["recovery_end"]) in table
    # the same trials by the test set's variance: training is the same (no early stop), the
    # stored NMSE differs by exactly population variance (k = 2) / test-set variance
    config.write_text(TINY + 'nmse = "test"\n')
    test = parity_jax.run(kinds.load_study(config), tmp_path / "test", progress=None)
    pop = {(t["seed"]): t for t in trials if t["recover"] == 0.5}
    for t in test.trials():
        assert t["nmse"] == "test" and t["recovery_end"] is None
        ratio = 2.0 / _test_variance(study, t["seed"])
        assert t["test_error"] == pytest.approx(pop[t["seed"]]["test_error"] * ratio,
                                                rel=1e-5)


def test_a_store_made_before_train_nmse_keeps_its_meaning_and_resumes(tmp_path):
    # a store as an older version wrote it: its study without train.nmse, 8 trials columns
    config = tmp_path / "old.toml"
    config.write_text(TINY + 'nmse = "test"\n')
    out = tmp_path / "old"
    parity_jax.run(kinds.load_study(config), out, progress=None)
    with sqlite3.connect(out / "results.sqlite") as conn:
        assert "nmse" not in json.loads(conn.execute(
            "SELECT value FROM meta WHERE key = 'study'").fetchone()[0])["train"]
        conn.executescript("""
            CREATE TABLE old AS SELECT cell, seed, success, first_hit, test_error, train_loss,
                                       steps_run, diverged FROM trials;
            DROP TABLE trials;
            CREATE TABLE trials (cell INTEGER NOT NULL REFERENCES cells(cell),
                seed INTEGER NOT NULL, success INTEGER NOT NULL, first_hit INTEGER,
                test_error REAL, train_loss REAL, steps_run INTEGER NOT NULL,
                diverged INTEGER NOT NULL, PRIMARY KEY (cell, seed));
            INSERT INTO trials SELECT * FROM old WHERE seed = 0;
            DROP TABLE old;""")
    assert check.check(out)[0] == []
    # the same config without nmse is a new study (population): refused, the store untouched
    config.write_text(TINY)
    with pytest.raises(StoreError, match="holds another study") as e:
        parity_jax.run(kinds.load_study(config), out, progress=None)
    # the setting that differs is named (it said "use ... the same config to resume")
    assert "differs in train.nmse (stored: '-', here: 'population')" in str(e.value)
    # with nmse = "test" it resumes: the missing trials written into the 8 columns
    config.write_text(TINY + 'nmse = "test"\n')
    results = parity_jax.run(kinds.load_study(config), out, progress=None)
    assert len(results.trials()) == 2 and {c["nmse"] for c in results.cells()} == {"test"}
    assert check.check(out)[0] == []
    with sqlite3.connect(out / "results.sqlite") as conn:
        assert len(conn.execute("SELECT * FROM trials").fetchone()) == 8


def test_a_study_built_before_its_target_is_registered_reads_back_as_it_ran(registered,
                                                                             tmp_path):
    # it was built with nmse unresolved (the target unknown, so "±1"), stored without nmse,
    # ran its cells by the population variance, and read back as "test": a damaged store
    def make():
        return Study(name="late", seeds=2,
                     task=Task(n=8, k=2, m=64, n_test=64, target="late_target"),
                     model=Model(width=8),
                     train=Train(steps=20, eval_every=10, threshold=0.5, loss="square"))

    early = make()
    registered("late_target", lambda z: z[:, 0] + 0.5 * z[:, 1], binary=False)
    assert early.fingerprint() == make().fingerprint()
    assert early.to_dict()["train"]["nmse"] == "population"
    parity_jax.run(early, out=tmp_path, progress=None)
    assert {t["nmse"] for t in parity_jax.Results(tmp_path).trials()} == {"population"}


@pytest.mark.quick
def test_settings_no_cell_reads_leave_the_study_alone_and_mixed_grids_take_them_per_cell():
    # recover = 0.5 over [majority, staircase] and direction = "sphere" over [staircase,
    # hermite] were refused; nmse on a ±1 study and base_width without mup cells changed the
    # fingerprint of identical cells
    def make(task=None, model=None, train=None):
        return Study(name="x", seeds=2, task=Task(**{"n": 8, "k": 3, "m": 64, **(task or {})}),
                     model=Model(**(model or {})), train=Train(**(train or {})))

    mixed = make({"target": ["majority", "staircase"]}, train={"recover": 0.5})
    assert sorted((c.target, c.recover) for c in mixed.cells()) == [
        ("majority", None), ("staircase", 0.5)]
    sphere = make({"target": ["staircase", "hermite"], "inputs": "gaussian", "degree": 2,
                   "direction": "sphere"})
    assert sorted((c.target, dict(c.params).get("direction")) for c in sphere.cells()) == [
        ("hermite", "sphere"), ("staircase", None)]
    with pytest.raises(ConfigError, match="^train.recover = 0.5: target = 'parity' lists no"):
        make({"target": "parity"}, train={"recover": 0.5}).cells()
    plain = make({"target": "parity"}).fingerprint()
    assert make({"target": "parity"}, train={"nmse": "population"}).fingerprint() == plain
    assert make({"target": "parity"}, model={"base_width": 64}).fingerprint() == plain
    assert make({"target": "parity"}, model={"base_width": 64, "param": "mup"}).fingerprint() \
        != make({"target": "parity"}, model={"param": "mup"}).fingerprint()
