"""A target's labels, checked once where the target is evaluated (``targets.check_labels``,
``kinds.parity.sample``): labels that do not fit float32, a registered target that says it is
±1 and is not, or returns the wrong shape, and a real-valued target whose success would divide
by (near) zero -- its population variance (train.nmse = "population"), or a test set's labels
(train.nmse = "test"): one rule, ``terms.check_variance`` -- are refused with one line before
anything is stored -- never a silent p = 0 or a 'diverged' trial. And a target with a
parameter, added in this file alone, runs from a TOML file through run, report and check."""

from __future__ import annotations

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import parity_jax
from parity_jax import check, cli, kinds, targets
from parity_jax.errors import ConfigError
from parity_jax.kinds.parity.config import Model, Study, Task, Train
from parity_jax.kinds.parity.sample import sample


def _study(target: str, nmse: str | None = None, **task) -> Study:
    task = {"n": 8, "k": 2, "m": 32, "n_test": 16, **task}
    return Study(name="labels", seeds=2, task=Task(target=target, **task),
                 model=Model(width=4), train=Train(steps=20, eval_every=10, nmse=nmse,
                                                   loss=task.pop("loss", None)))


def _refused(study: Study, out, match: str) -> None:
    """``run`` refuses the study with one line naming task.target, before ``out`` exists."""
    with pytest.raises(ConfigError, match=match) as e:
        parity_jax.run(study, out, progress=None)
    assert "\n" not in str(e.value)
    assert not out.exists()


@pytest.mark.parametrize("task,match", [
    (dict(terms=[[1]], coefs=[0]), "task.coefs = \\[0.0\\]: a polynomial needs a non-zero"),
    (dict(terms=[[1]], coefs=[1e300]), "within float32's range"),
    (dict(terms=[[1]], coefs=[10**51]), "within float32's range"),
])
def test_a_polynomial_the_config_can_refuse_is_refused_there(task, match):
    with pytest.raises(ConfigError, match=match):
        _study("polynomial", **task).validate()


POPULATION = r"its population variance \(train.nmse = \"population\"\) is 0;"
TEST_SET = r"the variance of the test labels of data index 0 \(n_test = 16, train.nmse = " \
    r"\"test\"\) is 0;"


@pytest.mark.parametrize("task,match", [
    (dict(terms=[[1], [1]], coefs=[1, -1]), POPULATION),  # cancelling terms
    (dict(terms=[[1, 2], [2, 1]], coefs=[2, -2]), POPULATION),  # one monomial, twice
    (dict(terms=[[1]], coefs=[1e-300]), POPULATION),  # 0 in float32
    (dict(terms=[[1], [1]], coefs=[1, -1], nmse="test"), TEST_SET),
    (dict(terms=[[1]], coefs=[1e-300], nmse="test"), TEST_SET),
    (dict(terms=[[1]], coefs=[1], n_test=1, nmse="test"),
     "task.n_test = 1: must be at least 2 for target = 'polynomial' with train.nmse = "
     "\"test\""),
])
def test_a_real_valued_target_whose_success_divides_by_zero_is_refused(task, match, tmp_path):
    _refused(_study("polynomial", **task), tmp_path / "out", match)


def test_the_population_variance_needs_no_test_set_that_varies(tmp_path):
    # n_test = 1: no test-set variance, but the population's (1) is what success divides by
    study = _study("polynomial", terms=[[1]], coefs=[1], n_test=1)
    assert study.cells()[0].nmse == "population"
    kinds.named("parity").work(study)  # not refused


def test_a_test_set_of_equal_labels_is_refused_naming_its_data_index(tmp_path):
    # y = z1 (staircase, k = 1): the 2 test labels of a stream are equal half the time, so
    # among 16 streams some trial would divide its MSE by 0 -- p = 0 without a word
    study = dataclasses.replace(_study("staircase", k=1, n_test=2, nmse="test"), seeds=16)
    _refused(study, tmp_path / "o", r"the variance of the test labels of data index \d+ "
                                    r"\(n_test = 2, train.nmse = \"test\"\) is 0")
    fine = dataclasses.replace(_study("staircase", k=1, n_test=64, nmse="test"), seeds=16)
    fine.validate()
    kinds.named("parity").work(fine)  # every stream's 64 labels vary: no refusal
    # by the population variance (1) the 2-point test sets are no obstacle
    kinds.named("parity").work(dataclasses.replace(_study("staircase", k=1, n_test=2),
                                                   seeds=16))


def test_registered_labels_that_cannot_train_are_refused_before_anything_is_stored(
        registered, tmp_path):
    registered("t_const", lambda z: jnp.zeros(z.shape[0]))
    registered("t_nan", lambda z: jnp.full(z.shape[0], jnp.nan))
    registered("t_inf", lambda z: jnp.sum(z, -1) * jnp.float32(1e38) * 10)
    registered("t_01", lambda z: (z[:, 0] > 0).astype(jnp.float32), binary=True)
    registered("t_half", lambda z: z[:, 0] / 2, binary=True)
    registered("t_bool", lambda z: z[:, 0] > 0, binary=True)
    registered("t_wide", lambda z: z)
    registered("t_column", lambda z: z[:, :1])
    registered("t_raises", lambda z: z.reshape(3, -1)[0])
    for name, match in [("t_const", "population variance .* is 0;"), ("t_nan", "not finite"),
                        ("t_inf", "not finite or beyond float32"),
                        ("t_01", "declared binary, but its labels are not all ±1"),
                        ("t_half", "not all ±1"), ("t_bool", "not all ±1"),
                        ("t_wide", r"shape \(16, 2\), not \(16,\)"),
                        ("t_column", r"shape \(16, 1\), not \(16,\)"),
                        ("t_raises", "its function failed on z of shape \\(16, 2\\)")]:
        _refused(_study(name), tmp_path / name, f"task.target = '{name}': .*{match}")
        if name != "t_const":  # pj.sample too (a constant sample is one to look at)
            with pytest.raises(ConfigError, match=f"task.target = '{name}'"):
                sample(Task(n=8, k=2, target=name), 0, 16)


def test_the_command_line_refuses_them_with_one_line_and_exit_2(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('[task]\nn = 8\nk = 2\nn_test = 1\ntarget = "staircase"\n'
                      '[model]\nwidth = 4\n[train]\nsteps = 10\neval_every = 10\n'
                      'nmse = "test"\n')
    assert cli.main(["run", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: task.n_test = 1: must be at least 2 for target = 'staircase'")
    assert "\n" not in err
    assert not (tmp_path / "o").exists()


def test_sample_bounds_rows_times_n_as_the_config_bounds_m_times_n():
    with pytest.raises(ConfigError, match="rows = 2147483647: must be at most 214748364 for "
                                          "n = 10"):
        sample(Task(n=10, k=3), 0, 2**31 - 1)


@settings(max_examples=25, deadline=None)
@given(shape=st.sampled_from([(16,), (16, 1), (16, 2), (1,), (15,), ()]),
       dtype=st.sampled_from(["float32", "float64", "int32", "bool", "float16"]),
       value=st.sampled_from([1.0, -1.0, 0.0, 0.5, 2.0, float("nan"), float("inf"), 1e39]),
       binary=st.booleans(), spread=st.booleans())
def test_check_labels_accepts_exactly_the_labels_a_program_can_use(shape, dtype, value, binary,
                                                                   spread):
    """Random shapes, dtypes and values: check_labels passes exactly (shape (rows,), finite
    float32 numbers, ±1 where binary; a real-valued target's variance is the one rule of
    ``terms.check_variance``, not this check's) and fails with one ConfigError line
    otherwise."""
    name = "majority" if binary else "staircase"
    y = np.full(shape, value)
    if spread and y.size:
        y.flat[0] = -value if binary else value + 1
    with np.errstate(all="ignore"):
        y = y.astype(dtype)
    v = y.astype(np.float64)
    usable = bool(np.all(np.isfinite(v)) and np.all(np.abs(v) <= targets.FLOAT32_MAX))
    ok = (y.shape == (16,) and usable
          and (not binary or (y.dtype.kind != "b" and np.all(np.abs(v) == 1))))
    try:
        targets.check_labels(name, y, 16)
    except ConfigError as e:
        assert not ok and "\n" not in str(e), (shape, dtype, value)
    else:
        assert ok, (shape, dtype, value, binary)


SCALED = """
name = "scaled"
seeds = 2
[task]
n = 8
k = 2
m = 64
n_test = 64
target = "test_scaled"
scale = [0.5, 2.0]
[model]
width = 8
[train]
steps = 40
eval_every = 20
lr = 0.05
"""


@pytest.mark.slow
def test_a_target_with_a_parameter_added_here_runs_from_a_toml_through_run_report_check(
        registered, tmp_path, capsys):
    # one registry entry: its function and its parameter (type, range, default)
    registered("test_scaled", lambda z, scale: scale * jnp.sum(z, axis=-1),
               params={"scale": (float, 0.1, 10.0, 1.0)})
    config = tmp_path / "scaled.toml"
    config.write_text(SCALED)
    study = kinds.load_study(config)
    assert [c.params for c in study.cells()[:2]] == [(("scale", 0.5),), (("scale", 2.0),)]
    results = parity_jax.run(study, tmp_path / "out", progress=None)
    cells = results.cells()
    assert sorted({c["scale"] for c in cells}) == [0.5, 2.0]
    assert {c["metric"] for c in cells} == {"nmse"} and len(results.trials()) == 2 * len(cells)
    assert check.check(tmp_path / "out")[0] == []
    assert cli.main(["report", str(tmp_path / "out"), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert sorted({r["scale"] for r in records}) == [0.5, 2.0]
    # its parameter's rule refuses what it does not allow, naming the [task] key
    bad = SCALED.replace("scale = [0.5, 2.0]", "scale = 20.0")
    config.write_text(bad)
    with pytest.raises(ConfigError, match=r"task.scale = 20.0: must be a number in \[0.1, 10.0\]"):
        kinds.load_study(config)
