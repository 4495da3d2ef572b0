"""The fused kernel's fail-safe on the CPU, the kernel in Pallas' interpret mode: a kernel that
fails to lower, compile or run, or that computes wrong numbers, leaves a study with the XLA
step's outcomes, every trial stored and one warning line; the numeric self-check passes for the
real kernel at the default study's geometries; its verdicts are cached; a jax without Pallas'
Triton lowering has no kernel."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import pytest
from conftest import TINY_TOML

from parity_jax import core, devices, kernel, kernel_check, kinds
from parity_jax.errors import ConfigError
from parity_jax.kinds.parity.config import Study
from parity_jax.runner import run
from parity_jax.tasks import sparse

# TINY_TOML with one width: one program (n=10, W=8, batch 8, hinge), 8 trials
ONE_PROGRAM = TINY_TOML.replace("width = [4, 8]", "width = [8]")
PROGRAM = "n=10, W=8, batch 8, hinge, float32"


pytestmark = pytest.mark.usefixtures("fresh_kernel_state")  # every test: no verdicts, traces


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "one.toml"
    path.write_text(ONE_PROGRAM)
    return Study.from_toml(path)


@pytest.fixture(scope="module")
def xla_trials(study, tmp_path_factory):
    """The study's stored trials with PARITY_JAX_KERNEL=off: what a fallback must store."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv(kernel.ENV, "off")
        trials = _trials(run(study, tmp_path_factory.mktemp("xla"), progress=None))
    assert len(trials) == 8
    return trials


def _trials(results):
    return sorted(results.trials(), key=lambda t: (t["cell"], t["seed"]))


def _run_interpret(study, out, monkeypatch, capsys):
    """(stored trials, warning lines) of the study run with the kernel in interpret mode."""
    monkeypatch.setenv(kernel.ENV, "interpret")
    assert {s.kernel for s in kinds.parity.make_plan(study).shapes} == {"interpret"}
    capsys.readouterr()
    trials = _trials(run(study, out, progress=None))
    err = capsys.readouterr().err
    return trials, [line for line in err.splitlines() if "warning" in line]


def _assert_one_warning(warnings, *words):
    assert len(warnings) == 1, warnings
    line = warnings[0]
    assert line.startswith("warning: the fused kernel is off for the program"), line
    for w in (PROGRAM, "PARITY_JAX_KERNEL=off", *words):
        assert w in line, (w, line)


def _broken_when(broken, real=kernel._call):
    """``kernel._call`` that runs ``broken`` instead where ``broken(n_steps)`` says so."""
    def call(shape, streams, params, hyper, t0, active, n_steps):
        hook = broken(n_steps)
        if hook is None:
            return real(shape, streams, params, hyper, t0, active, n_steps)
        return hook(real(shape, streams, params, hyper, t0, active, n_steps))
    return call


def _raise_lowering_error(out):
    raise NotImplementedError("Unimplemented primitive in Pallas GPU lowering: fake_op\n"
                              "(a second line the warning leaves out)")


@pytest.mark.slow
def test_a_kernel_that_fails_to_lower_runs_the_xla_step(study, xla_trials, tmp_path,
                                                        monkeypatch, capsys):
    monkeypatch.setattr(kernel, "_call", _broken_when(lambda n: _raise_lowering_error))
    trials, warnings = _run_interpret(study, tmp_path / "out", monkeypatch, capsys)
    assert trials == xla_trials  # every trial stored, each the XLA step's outcome
    _assert_one_warning(warnings, "NotImplementedError: Unimplemented primitive in Pallas GPU "
                                  "lowering: fake_op;")
    assert "second line" not in warnings[0]


@pytest.mark.slow
def test_a_kernel_with_wrong_numbers_fails_its_self_check(study, xla_trials, tmp_path,
                                                         monkeypatch, capsys):
    # every parameter off by 1e-4 of itself: small, but thousands of times float32 rounding
    def perturbed(out):
        return out.replace(w1=out.w1 * (1 + 1e-4))

    monkeypatch.setattr(kernel, "_call", _broken_when(lambda n: perturbed))
    trials, warnings = _run_interpret(study, tmp_path / "out", monkeypatch, capsys)
    assert trials == xla_trials
    _assert_one_warning(warnings, "disagrees with the XLA step")


@pytest.mark.slow
def test_a_program_that_fails_to_compile_after_its_check_runs_the_xla_step(
        study, xla_trials, tmp_path, monkeypatch, capsys):
    # the self-check's kernel (CHECK_STEPS per call) passes; the program's own does not lower
    checked = []
    real_check = kernel_check.self_check
    monkeypatch.setattr(kernel_check, "self_check", lambda s: checked.append(s) or real_check(s))
    monkeypatch.setattr(kernel, "_call", _broken_when(
        lambda n: None if n == kernel_check.CHECK_STEPS else _raise_lowering_error))
    trials, warnings = _run_interpret(study, tmp_path / "out", monkeypatch, capsys)
    assert len(checked) == 1 and trials == xla_trials
    _assert_one_warning(warnings, "NotImplementedError: Unimplemented primitive")
    # the failure is its geometry's verdict: another run in this process neither checks nor
    # compiles the kernel again
    devices._program.cache_clear()
    trials, warnings = _run_interpret(study, tmp_path / "again", monkeypatch, capsys)
    assert len(checked) == 1 and trials == xla_trials and len(warnings) == 1


@pytest.mark.slow
def test_a_kernel_that_fails_while_running_runs_the_xla_step(study, xla_trials, tmp_path,
                                                            monkeypatch, capsys):
    def fail(_):
        raise RuntimeError("CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access")

    def crash(out):  # an error raised on the device while the program runs
        return out.replace(c=jax.pure_callback(fail, jax.ShapeDtypeStruct(out.c.shape,
                                                                            out.c.dtype), out.c))

    monkeypatch.setattr(kernel, "_call", _broken_when(
        lambda n: None if n == kernel_check.CHECK_STEPS else crash))
    trials, warnings = _run_interpret(study, tmp_path / "out", monkeypatch, capsys)
    # JAX keeps the failed call's runtime token, whose error its exit handler would print
    from jax._src import dispatch
    dispatch.runtime_tokens.clear()
    assert trials == xla_trials
    # the error's first line (here XLA's, whose next lines hold the callback's traceback)
    _assert_one_warning(warnings, "the kernel failed: JaxRuntimeError: INTERNAL: ")


def test_on_skips_the_failsafe_and_errors_surface(shape_factory, monkeypatch):
    from conftest import GROUPS, make_batch

    monkeypatch.setenv(kernel.ENV, "on")
    monkeypatch.setattr(kernel, "_call", _broken_when(lambda n: _raise_lowering_error))
    monkeypatch.setattr(kernel_check, "self_check", lambda s: pytest.fail("self-check under 'on'"))
    shape = shape_factory(G=2, P=3, W=16, layout="vmapped", kernel="interpret")
    warned = []
    with pytest.raises(NotImplementedError, match="fake_op"):
        devices.FailSafe(warn=warned.append).train(shape, make_batch(GROUPS, P=3))
    assert not warned


@pytest.mark.slow
def test_a_second_run_repeats_no_self_check(study, xla_trials, tmp_path, monkeypatch, capsys):
    where = tmp_path / "cache" / kernel_check.VERDICTS_FILE
    monkeypatch.setattr(devices, "verdicts_file", lambda: str(where))
    checked = []
    real_check = kernel_check.self_check
    monkeypatch.setattr(kernel_check, "self_check", lambda s: checked.append(s) or real_check(s))
    first, warnings = _run_interpret(study, tmp_path / "1", monkeypatch, capsys)
    assert len(checked) == 1 and not warnings
    (key, entry), = json.loads(where.read_text()).items()
    assert entry["ok"] is True and entry["max_rel_err"] < 1e-4
    for part in (jax.local_devices()[0].device_kind, f"jax {jax.__version__}", "jaxlib",
                 f"interpret: {PROGRAM}"):
        assert part in key
    kernel_check._verdicts.clear()  # a new process: the verdict comes from the file
    second, warnings = _run_interpret(study, tmp_path / "2", monkeypatch, capsys)
    assert len(checked) == 1 and not warnings and second == first
    # a cached failure is honoured too (and said to be cached), without a check
    where.write_text(json.dumps({key: {"ok": False, "max_rel_err": None,
                                       "detail": "the kernel failed: XlaRuntimeError: boom"}}))
    kernel_check._verdicts.clear()
    third, warnings = _run_interpret(study, tmp_path / "3", monkeypatch, capsys)
    assert len(checked) == 1 and third == xla_trials
    _assert_one_warning(warnings, "XlaRuntimeError: boom (verdict cached in")


def test_verdicts_live_beside_the_compile_cache(tmp_path, monkeypatch):
    previous = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "parity_jax" / "jax"))
    try:
        monkeypatch.setenv("PARITY_JAX_CACHE", str(tmp_path / "parity_jax" / "jax"))
        assert devices.verdicts_file() == str(tmp_path / "parity_jax" / "kernel_checks.json")
        monkeypatch.setenv("PARITY_JAX_CACHE", "off")  # this process only
        assert devices.verdicts_file() is None
    finally:
        jax.config.update("jax_compilation_cache_dir", previous)


@pytest.mark.slow
@pytest.mark.parametrize("W,loss", [(100, "hinge"), (256, "logistic")])
def test_the_real_kernel_passes_its_self_check_at_the_default_geometries(W, loss):
    # the default study's class: n = 50 (padded to 64), batch 32; W = 100 (padded to 128)
    # keeps a trial's w1 in registers, W = 256 walks it in tiles
    wp, np_, bp, tw = kernel.geometry(W, 50, 32)
    assert (np_, bp) == (64, 32) and (tw == wp) == (W == 100)
    shape = core.Shape(task=sparse.SparseTask(n=50, M=2000, batch=32, n_test=2000), depth=1, W=W,
                       G=4, P=16, eval_every=100, loss=loss, kernel="interpret")
    ok, rel, detail = kernel_check.self_check(shape)
    assert ok and rel < 1e-4 and detail.startswith("agrees with the XLA step"), detail
    # the tolerance is tight enough to see a fault: the kernel's w1 off by 1e-5 of itself
    worst = _worst_with_w1_scaled(shape, 1 + 1e-5)
    print(f"W={W}: the check's error / tolerance with w1 off by 1e-5: {worst:.1f}; {detail}")
    assert worst > 1, worst


def _worst_with_w1_scaled(shape, factor):
    """The self-check's (difference / tolerance) with the kernel's w1 scaled by ``factor``."""
    real = kernel._call
    try:
        kernel._call = _broken_when(lambda n: lambda out: out.replace(w1=out.w1 * factor),
                                    real)
        # another P than self_check's: a new trace, with the patched kernel
        check = dataclasses.replace(shape, G=1, P=kernel_check.CHECK_TRIALS - 1,
                                    eval_every=kernel_check.CHECK_STEPS)
        return kernel_check._compare(check, draw=0)[2]
    finally:
        kernel._call = real


def test_a_jax_without_triton_has_no_kernel(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "jax.experimental.pallas.triton", None)
    ok, why = kernel.available()
    assert not ok and "no Pallas Triton lowering" in why
    assert kernel.available(interpret=True) == (True, "")
    monkeypatch.delenv(kernel.ENV, raising=False)
    assert kernel.select("gpu", 1, "fused") == "off"  # auto: quietly the XLA step
    for want in ("on", "3xtf32"):
        monkeypatch.setenv(kernel.ENV, want)
        with pytest.raises(ConfigError, match=f"PARITY_JAX_KERNEL = '{want}': the fused kernel "
                                              "is unavailable"):
            kernel.select("gpu", 1, "fused")
    # interpret mode needs Pallas alone; a jax without it has no kernel at all
    monkeypatch.setattr(kernel, "pl", None)
    assert not kernel.available(interpret=True)[0]
    monkeypatch.setenv(kernel.ENV, "interpret")
    with pytest.raises(ConfigError, match="'interpret': the fused kernel is unavailable .*has "
                                          "no Pallas"):
        kernel.select("cpu", 1, "fused")
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "jax.experimental.pallas.triton", None)
    # the CLI: one line, exit 2, on a (pretended) GPU
    from parity_jax import cli

    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setenv(kernel.ENV, "on")
    assert cli.main(["plan", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: PARITY_JAX_KERNEL = 'on': the fused kernel is unavailable")
    assert len(err.splitlines()) == 1


def test_the_kernel_module_imports_on_a_jax_without_triton():
    code = ("import sys; sys.modules['jax.experimental.pallas.triton'] = None\n"
            "from parity_jax import kernel, cli\n"
            "print(kernel.available()[0], kernel.select('gpu', 1, 'fused'))")
    env = {**os.environ, "PARITY_JAX_KERNEL": "auto"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "off"]
