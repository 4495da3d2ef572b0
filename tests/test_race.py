"""The engine race on the CPU (``parity_jax.race``): the choice rule; real marginal rates (the
interpret-mode kernel against the XLA step, which must win); fake candidates injected through
``race.ENGINES`` that are faster, slower, wrong or crashing give the expected choice, one
warning line where they must, and a study whose stored outcomes are the chosen engine's; the
store records each program's engine and a resume keeps it; verdicts are cached; ``plan`` and
``report`` show the engine."""

import dataclasses
import types

import jax
import pytest
from conftest import TINY_TOML

from parity_jax import cli, devices, kernel, kernel_check, kinds, race
from parity_jax.errors import OutOfBudget
from parity_jax.kinds.parity.config import Study
from parity_jax.results import Results
from parity_jax.runner import run
from parity_jax.store import Store

# TINY_TOML with one width: one program (n=10, W=8, batch 8, hinge), 8 trials
ONE_PROGRAM = TINY_TOML.replace("width = [4, 8]", "width = [8]")


def agrees(shape):
    return True, 0.0, "a fake that agrees"


def crashes(shape):
    raise RuntimeError("CUDA_ERROR_ILLEGAL_ADDRESS: a fake engine crashed\nsecond line")


# each runs a real engine underneath: the interpret-mode kernel (its outcomes differ from the
# XLA step's in the last bits), timed at its real rate times ``speed``
FAST = race.Engine("fake-fast", "interpret", check=agrees, speed=1e6)
SLOW = race.Engine("fake-slow", "interpret", check=agrees, speed=1e-6)
CRASHING = race.Engine("fake-crash", "interpret", check=crashes)
WRONG = race.Engine("fake-wrong", "interpret")  # the real self-check, of a wrong kernel


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, fresh_kernel_state):
    """No verdicts, fakes or traced programs carried between tests; a short race."""
    monkeypatch.setattr(race, "RACE_SECONDS", 1.0)
    monkeypatch.setattr(race, "ENGINES", {})
    monkeypatch.setenv("PARITY_JAX_CACHE", "off")  # verdicts in this process only
    monkeypatch.delenv(kernel.ENV, raising=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "one.toml"
    path.write_text(ONE_PROGRAM)
    return Study.from_toml(path)


def _trials(out):
    return sorted(Results(out).trials(), key=lambda t: (t["cell"], t["seed"]))


@pytest.fixture(scope="module")
def reference(study, tmp_path_factory):
    """The study's stored trials on the XLA step and on the interpret-mode kernel."""
    out = {}
    with pytest.MonkeyPatch.context() as m:
        m.setenv("PARITY_JAX_CACHE", "off")
        for env in ("off", "interpret"):
            m.setenv(kernel.ENV, env)
            where = tmp_path_factory.mktemp(env)
            run(study, where, progress=None)
            out[env] = _trials(where)
    assert out["off"] != out["interpret"]  # the engines differ in the last bits: a real test
    return out


def _run(study, out, capsys, *engines):
    """(stored trials, lines written to stderr) of the study in auto mode with ``engines``
    racing the XLA step."""
    race.ENGINES.update({e.name: e for e in engines})
    capsys.readouterr()
    run(study, out, progress=None)
    return _trials(out), capsys.readouterr().err.splitlines()


def _one_program(out):
    store = Store.open(out)
    try:
        [(key, record)] = store.engines().items()
    finally:
        store.close()
    return record["engine"]


@pytest.mark.quick
def test_the_xla_step_wins_unless_a_kernel_beats_it_by_the_margin():
    assert race.choose({"xla": 1.0, "pallas": 1.09}) == "xla"
    assert race.choose({"xla": 1.0, "pallas": 1.2, "pallas-3xtf32": 1.5}) == "pallas-3xtf32"
    assert race.choose({"xla": 1.0, "pallas": None}) == "xla"
    assert race.choose({"xla": 1.0, "pallas": 0.5}) == "xla"


@pytest.mark.quick
def test_no_xla_rate_means_nothing_to_compare_the_kernels_with():
    assert race.choose({"xla": None, "pallas": 2.0}) == "xla"
    assert race.choose({"fake-fast": 2.0, "fake-slow": 1.0}) == "fake-fast"


@pytest.mark.quick
def test_a_gpu_program_races_the_kernel_variants_its_inputs_allow(study, monkeypatch):
    # a program as a GPU's plan makes it (kernel "pallas"), built on the CPU
    shape = dataclasses.replace(kinds.parity.make_plan(study).shapes[0], kernel="pallas")
    assert [e.name for e in race.candidates(shape)] == ["xla", "pallas", "pallas-2xtf32"]
    gaussian = dataclasses.replace(shape, task=types.SimpleNamespace(inputs="gaussian"))
    assert [e.name for e in race.candidates(gaussian)] == ["xla", "pallas", "pallas-3xtf32"]
    tf32 = dataclasses.replace(shape, precision="tf32")
    assert [e.name for e in race.candidates(tf32)] == ["xla", "pallas"]
    monkeypatch.setenv(kernel.ENV, "on")
    assert [e.name for e in race.candidates(shape)] == ["pallas"]
    # a verdict's key moves with what moves the timing, and not with the batch size
    names = ["xla", "pallas"]
    key = race.verdict_key(shape, names)
    for other in (dataclasses.replace(shape, eval_every=7),
                  dataclasses.replace(shape, task=dataclasses.replace(shape.task, M=9))):
        assert race.verdict_key(other, names) != key
    assert race.verdict_key(dataclasses.replace(shape, G=shape.G * 2), names) == key
    assert race.program_key(dataclasses.replace(shape, G=3, kernel="off", layout="blocked",
                                                chunk=1)) == race.program_key(shape)


@pytest.mark.quick
def test_the_marginal_rate_cancels_the_set_up_and_noise_is_no_rate(monkeypatch):
    # fake timings: 0.5 s of set-up plus 0.01 s a step for xla, 0.005 s a step for a kernel
    # (twice as fast); a third candidate whose long run is no longer than its short one
    per_step = {"xla": 0.01, "fast": 0.005}
    timed = {name: race.Timed(trials=4, steps=10, speed=1.0,
                              timers={1: (name, 10), 2: (name, 20)}) for name in per_step}
    timed["noisy"] = race.Timed(trials=4, steps=10, speed=1.0,
                                timers={1: ("noisy", 10), 2: ("noisy", 20)})

    def interleaved(timers, repeats, failed):
        return {k: 0.5 + (per_step[n] * steps if n in per_step else 0.1)
                for k, (n, steps) in timers.items()}

    monkeypatch.setattr(race.timing, "interleaved", interleaved)
    out = {}
    rates = race.measure(timed, out)  # the noisy one is timed twice, then has no rate
    assert rates["xla"] == pytest.approx(4 * 10 / (0.01 * 10))  # 400 trial-steps/s
    assert rates["fast"] == pytest.approx(800)
    assert rates["noisy"] is None and "timing noise" in out["noisy"]
    assert race.choose(rates) == "fast"


def test_the_doctors_alarm_ends_a_race_it_is_no_candidates_failure(study):
    def alarm(shape):
        raise OutOfBudget("ran past the time budget")

    race.ENGINES["fake-alarm"] = race.Engine("fake-alarm", "interpret", check=alarm)
    shape = kinds.parity.make_plan(study).shapes[0]
    with pytest.raises(OutOfBudget):
        race.race(shape, None, print)


@pytest.mark.quick
def test_nothing_to_choose_on_a_cpu_or_in_a_forced_mode(study, monkeypatch):
    shape = kinds.parity.make_plan(study).shapes[0]
    assert [e.name for e in race.candidates(shape)] == ["xla"]
    race.ENGINES["fake-fast"] = FAST
    assert [e.name for e in race.candidates(shape)] == ["xla", "fake-fast"]
    for env in ("off", "interpret"):
        monkeypatch.setenv(kernel.ENV, env)
        shape = kinds.parity.make_plan(study).shapes[0]
        assert [e.runs for e in race.candidates(shape)] == [shape.kernel]


@pytest.mark.slow
def test_the_interpret_mode_kernel_loses_to_the_xla_step(tmp_path, capsys):
    # the real race where a CPU has a choice: both correct, both timed, the XLA step faster
    # at the default study's n and batch and width 512, where interpreting the kernel costs
    # twice the XLA step (measured here: 0.015M against 0.030M trial-steps/s); at widths 8 to
    # 128 the interpreted kernel is as fast or faster, and the race says so
    wide = Study.from_toml(_toml(tmp_path, ONE_PROGRAM.replace("width = [8]", "width = [512]")
                                 .replace("n = 10", "n = 50").replace("batch = 8", "batch = 32")))
    shape = kinds.parity.make_plan(wide).shapes[0]
    race.ENGINES["interpret"] = race.Engine("interpret", "interpret")
    v = race.race(shape, None, print)
    assert capsys.readouterr().out == ""  # no warning: the kernel agrees
    assert v.engine == "xla" and set(v.rates) == {"xla", "interpret"}, v
    assert v.rates["interpret"] > 0 and not v.out, v


@pytest.mark.slow
def test_a_faster_candidate_runs_the_study(study, reference, tmp_path, capsys):
    trials, err = _run(study, tmp_path, capsys, FAST, SLOW)
    assert trials == reference["interpret"]  # the chosen engine's outcomes, every trial
    assert _one_program(tmp_path) == "fake-fast"
    assert not [line for line in err if "warning" in line], err
    [line] = [line for line in err if line.startswith("engine race")]
    assert "fake-fast" in line and "(chosen)" in line and "fake-slow" in line


@pytest.mark.slow
def test_slower_wrong_and_crashing_candidates_leave_the_xla_step(study, reference, tmp_path,
                                                                 capsys, monkeypatch):
    real = kernel._call

    def wrong(shape, *args):  # every first-layer weight off by 1e-4 of itself
        out = real(shape, *args)
        return out.replace(w1=out.w1 * (1 + 1e-4))

    monkeypatch.setattr(kernel, "_call", wrong)
    trials, err = _run(study, tmp_path, capsys, SLOW, WRONG, CRASHING)
    assert trials == reference["off"]
    assert _one_program(tmp_path) == "xla"
    warnings = [line for line in err if "warning" in line]
    assert len(warnings) == 2, err  # one line per candidate out of the race
    by = {name: next(w for w in warnings if name in w) for name in ("fake-wrong", "fake-crash")}
    assert "disagrees with the XLA step" in by["fake-wrong"]
    assert "RuntimeError: CUDA_ERROR_ILLEGAL_ADDRESS" in by["fake-crash"]
    assert "second line" not in by["fake-crash"]
    [line] = [line for line in err if line.startswith("engine race")]
    assert "fake-wrong out" in line and "fake-crash out" in line and "xla" in line


@pytest.mark.slow
def test_a_resumed_study_keeps_its_recorded_engine(study, reference, tmp_path, capsys):
    trials, _ = _run(study, tmp_path, capsys, FAST)
    store = Store.open(tmp_path)  # lose half the trials, as a kill would
    with store.conn:
        store.conn.execute("DELETE FROM trials WHERE seed = 1")
    store.close()
    # the race would now choose the XLA step; the store says fake-fast
    race.ENGINES["fake-fast"] = SLOW.__class__("fake-fast", "interpret", agrees, speed=1e-6)
    kernel_check._verdicts.clear()
    trials, err = _run(study, tmp_path, capsys)
    assert trials == reference["interpret"]
    assert not [line for line in err if line.startswith("engine race") or "warning" in line]
    assert _one_program(tmp_path) == "fake-fast"


@pytest.mark.slow
def test_a_recorded_engine_this_device_lacks_gives_way_with_one_warning(study, reference,
                                                                      tmp_path, capsys):
    _run(study, tmp_path, capsys, FAST)
    store = Store.open(tmp_path)
    with store.conn:
        store.conn.execute("DELETE FROM trials WHERE seed = 1")
    store.close()
    race.ENGINES.clear()  # a device without the fake: the XLA step alone
    trials, err = _run(study, tmp_path, capsys)
    assert [t for t in trials if t["seed"] == 0] == \
        [t for t in reference["interpret"] if t["seed"] == 0]
    assert [t for t in trials if t["seed"] == 1] == \
        [t for t in reference["off"] if t["seed"] == 1]
    [warning] = [line for line in err if "warning" in line]
    assert "ran on fake-fast; it runs on xla here" in warning
    assert _one_program(tmp_path) == "fake-fast+xla"  # every engine its trials ran on


@pytest.mark.slow
def test_the_verdict_is_cached_beside_the_compile_cache(study, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PARITY_JAX_CACHE", str(tmp_path / "cache" / "jax"))
    before = jax.config.jax_compilation_cache_dir
    try:
        _cached_verdict(study, tmp_path, monkeypatch, capsys)
    finally:  # devices.setup() pointed JAX's compile cache at tmp_path
        jax.config.update("jax_compilation_cache_dir", before)


def _cached_verdict(study, tmp_path, monkeypatch, capsys):
    devices.setup()
    race.ENGINES.update({e.name: e for e in (FAST, SLOW)})
    shape = kinds.parity.make_plan(study).shapes[0]
    where = devices.verdicts_file()
    assert race.planned(shape, where) == "measured on first use"
    first = race.race(shape, where, print)
    kernel_check._verdicts.clear()  # a new process: the file alone

    def no_timing(*args):
        raise AssertionError("a cached verdict times nothing")

    monkeypatch.setattr(race.Timed, "prepare", no_timing)
    again = race.race(shape, where, print)
    assert again == first and again.cached and not first.cached
    assert race.planned(shape, where) == "fake-fast (measured)"
    cli.main(["plan", str(_toml(tmp_path))])
    assert "fake-fast (measured)" in capsys.readouterr().out


def _toml(tmp_path, text=ONE_PROGRAM):
    path = tmp_path / "one.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_report_shows_each_programs_engine(study, tmp_path, capsys):
    _run(study, tmp_path / "out", capsys, FAST)
    assert cli.main(["report", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "engine per program" in out and "fake-fast" in out and "W=8" in out


@pytest.mark.slow
def test_merged_shards_keep_every_engine_a_program_ran_with(study, tmp_path, capsys):
    from parity_jax import merge

    race.ENGINES["fake-fast"] = FAST
    run(study, tmp_path / "a", shard="0/2", progress=None)
    race.ENGINES.clear()  # the other shard on a device without the fake: the XLA step
    run(study, tmp_path / "b", shard="1/2", progress=None)
    merge.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")
    assert _one_program(tmp_path / "merged") == "fake-fast+xla"
    store = Store.open(tmp_path / "merged")  # a damaged record is no record: a resume races
    with store.conn:
        store.conn.execute("UPDATE meta SET value = '{not json' WHERE key LIKE 'engine %'")
    store.close()
    store = Store.open(tmp_path / "merged")
    assert store.engines() == {} and len(store.rows()) == 8
    store.close()
