"""``parity-jax doctor`` on the CPU (as CI runs it): every check's row and its numbers; a check
that fails or runs out of the budget is reported in its row, never a traceback."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from parity_jax import alternatives, bench, cli, devices, doctor, kernel, kernel_check, speed
from parity_jax.kinds.parity.report import CELL_FIELDS


@pytest.mark.slow
def test_doctor_on_the_cpu_passes_every_check_and_writes_its_json(tmp_path, capsys):
    out = tmp_path / "doctor.json"
    assert cli.main(["doctor", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    checks = result["checks"]
    assert list(checks) == [name for name, _ in doctor.CHECKS]
    for name in checks:
        assert checks[name]["status"] == "ok" in doctor.STATUSES, (name, checks[name])
        assert f"{name} " in table
    assert result["ok"] and result["seconds"] <= result["budget_s"] == 300
    assert "all checks passed" in table

    d = checks["device"]
    assert d["platform"] == "cpu" and d["jax"] and d["jaxlib"] and d["device_count"] >= 1
    assert d["default_matmul_precision"] == "DEFAULT"
    f = checks["float32"]
    assert 0 < f["max_rel_err"] <= doctor.FLOAT32_TOL
    b = checks["batch_invariance"]
    assert b["identical"] is True and b["max_abs_diff"] == 0 and b["groups"] >= 4
    k = checks["kernel"]
    assert k["mode"] == "interpret"
    assert [g["geometry"] for g in k["geometries"]] == ["registers", "tiles"]
    for g in k["geometries"]:  # the same arithmetic in another order: not equal, but close
        assert g["ok"] and 0 <= g["max_rel_err"] < 1e-3 and g["program"].startswith("n=50,")
    c = checks["compile"]
    assert c["cold_s"] > 0 and c["cold_cache_hits"] == 0 and c["warm_cache_hits"] >= 1
    t = checks["throughput"]
    [row] = t["rows"]
    assert (row["width"], row["trials"]) == (100, 64) and not row["errors"]
    assert row["xla"] > 0 and row["naive"] > 0
    assert row["xla_x_naive"] == pytest.approx(row["xla"] / row["naive"])
    r = checks["race"]  # the XLA step against the interpret-mode kernel's variants
    assert [g["width"] for g in r["rows"]] == [100, 256]
    for g in r["rows"]:
        assert list(g["rates"])[0] == "xla" and "interpret" in g["rates"]
        assert g["engine"] in g["rates"] and g["rates"][g["engine"]] > 0 and not g["out"]
    assert r["rows"][0]["engine_x_naive"] == pytest.approx(
        r["rows"][0]["rates"][r["rows"][0]["engine"]] / row["naive"])
    assert "naive" not in r["rows"][1]  # the throughput check timed width 100 only


@pytest.fixture
def two_checks(monkeypatch):
    """The doctor with the device row and one check of the test's choice (seconds, not a
    minute)."""
    def use(name, fn):
        monkeypatch.setattr(doctor, "CHECKS", [("device", doctor.check_device), (name, fn),
                                                ("float32", doctor.check_float32)])
    return use


def test_a_failing_check_is_one_line_in_its_row_and_exit_1(tmp_path, capsys, monkeypatch,
                                                            two_checks):
    # fault injection: the kernel's self-check raises; the rows after it still run
    def broken(shape):
        raise RuntimeError("Triton lowering failed\n  File ...\ntraceback lines")

    monkeypatch.setattr(kernel_check, "self_check", broken)
    two_checks("kernel", doctor.check_kernel)
    out = tmp_path / "d.json"
    assert cli.main(["doctor", "--json", str(out)]) == 1
    captured = capsys.readouterr()
    checks = json.loads(out.read_text())["checks"]
    assert checks["kernel"]["status"] == "fail"
    assert checks["kernel"]["error"] == "RuntimeError: Triton lowering failed"
    assert checks["float32"]["status"] == "ok" and checks["device"]["status"] == "ok"
    assert "Traceback" not in captured.out + captured.err
    assert "RuntimeError: Triton lowering failed" in captured.out


@pytest.mark.slow
def test_a_kernel_that_disagrees_fails_its_row(tmp_path, monkeypatch, two_checks):
    # fault injection: the self-check's verdict on the tile geometry is a mismatch
    check = kernel_check.self_check

    def mismatch_on_tiles(shape):
        if kernel.geometry(shape.W, shape.task.n, shape.task.batch)[3] == kernel.TILE:
            return False, 0.5, "disagrees with the XLA step (w1 off by 0.5 of its update)"
        return check(shape)

    monkeypatch.setattr(kernel_check, "self_check", mismatch_on_tiles)
    two_checks("kernel", doctor.check_kernel)
    out = tmp_path / "d.json"
    assert cli.main(["doctor", "--json", str(out)]) == 1
    k = json.loads(out.read_text())["checks"]["kernel"]
    assert k["status"] == "fail" and [g["ok"] for g in k["geometries"]] == [True, False]
    assert k["error"] == "disagrees with the XLA step (w1 off by 0.5 of its update)"


@pytest.fixture(autouse=True)
def exits(monkeypatch):
    """The exit codes ``devices.leave`` would end the process with (here it returns)."""
    codes = []
    monkeypatch.setattr(devices, "_exit", codes.append)
    return codes


def test_a_check_past_the_budget_is_cut_and_the_rest_not_started(tmp_path, two_checks, exits):
    def slow(row, sizes):
        row["partial"] = 1  # what a check measured before the budget ran out is kept
        time.sleep(30)

    two_checks("slow", slow)
    out = tmp_path / "d.json"
    start = time.monotonic()
    assert cli.main(["doctor", "--budget", "2", "--json", str(out)]) == 1
    assert time.monotonic() - start < 20
    assert exits == [1]  # cut: the process ends at once, XLA may still be at work
    checks = json.loads(out.read_text())["checks"]
    assert checks["slow"]["status"] == "timeout" and checks["slow"]["partial"] == 1
    assert checks["slow"]["error"] == "ran past the budget of 2 s"
    assert checks["float32"]["status"] == "timeout"
    assert checks["float32"]["error"].startswith("not started")


def test_the_json_is_written_whole_and_never_through_a_symlink(tmp_path, capsys, two_checks):
    two_checks("float32 again", doctor.check_float32)
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert cli.main(["doctor", "--json", str(link)]) == 2  # before any check
    err = capsys.readouterr().err
    assert err.startswith("error: --json") and "symbolic link" in err
    assert target.read_text() == "keep me\n" and link.is_symlink()
    out = tmp_path / "d.json"
    out.write_text("an old result\n")
    assert cli.main(["doctor", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["ok"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "elsewhere.txt",
                                                         "link.json"]  # no temporary left


def test_a_rate_lost_in_timing_noise_is_an_error_not_a_number(tmp_path, monkeypatch,
                                                               two_checks):
    # fault injection: the XLA step's 2S-step call times no longer than its S-step call
    def timers(first, second):
        return lambda *a, **kw: {doctor.SIZES["cpu"].steps: lambda: time.sleep(first),
                                 2 * doctor.SIZES["cpu"].steps: lambda: time.sleep(second)}

    xla = timers(0.03, 0.01)
    monkeypatch.setattr(bench, "engine_timers", lambda *a, **kw: ({}, xla()))
    monkeypatch.setattr(alternatives, "naive_timers", timers(0.01, 0.03))
    two_checks("throughput", speed.check_throughput)
    out = tmp_path / "d.json"
    assert cli.main(["doctor", "--json", str(out)]) == 1
    t = json.loads(out.read_text())["checks"]["throughput"]
    [row] = t["rows"]
    assert t["status"] == "fail" and row["xla"] is None and "xla_x_naive" not in row
    assert "timing noise" in row["errors"]["xla"]
    assert 0 < row["naive"] < 64 * 256 / 0.01  # about 64 x 256 / 0.02 s


@pytest.mark.parametrize("argv,field", [
    (["--budget", "0"], "--budget"), (["--budget", "nan"], "--budget"),
    (["--budget", "1e10"], "--budget"), (["--budget", "1e400"], "--budget"),
    (["--json", "/no/such/dir/d.json"], "--json")])
def test_doctor_bad_arguments_exit_2(capsys, monkeypatch, argv, field):
    # --budget 1e10 was accepted, then every check failed with OverflowError from the timer
    monkeypatch.setattr(doctor, "run_doctor", lambda *a, **kw: pytest.fail("checks ran"))
    assert cli.main(["doctor", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {field}") and err.count("\n") == 1


def test_a_bad_kernel_setting_is_refused_before_any_check(capsys, monkeypatch):
    # it was caught late: three checks failed, exit 1
    monkeypatch.setenv("PARITY_JAX_KERNEL", "fast")
    monkeypatch.setattr(doctor, "run_doctor", lambda *a, **kw: pytest.fail("checks ran"))
    assert cli.main(["doctor"]) == 2
    assert capsys.readouterr().err == ("error: PARITY_JAX_KERNEL = 'fast': must be one of "
                                       "auto, off, on, interpret, 3xtf32\n")


@pytest.mark.parametrize("json_path", [False, True])
def test_ctrl_c_says_what_the_doctor_kept_and_ends_the_process(tmp_path, capsys, monkeypatch,
                                                               exits, json_path):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(doctor, "run_doctor", interrupted)
    out = tmp_path / "d.json"
    assert cli.main(["doctor", *(["--json", str(out)] if json_path else [])]) == 130
    assert exits == [130]  # a check cut short: the process ends at once
    err = capsys.readouterr().err.strip()
    assert "resume" not in err and "stored is kept" not in err  # nothing is stored or resumes
    assert err.startswith("interrupted; ") and err.count("\n") == 0
    assert (f"are in {out}" in err) if json_path else ("stores nothing" in err)


def _doctor_process(*argv, interrupt_at=None):
    """``python -m parity_jax doctor ARGV`` in a child process: (exit status, stdout, stderr).
    ``interrupt_at``: a check's name; SIGINT a moment after the doctor says it started it
    (not after a fixed time, which a loaded machine can spend still importing JAX)."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    child = subprocess.Popen([sys.executable, "-m", "parity_jax", "doctor", *argv], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    if interrupt_at is not None:
        for line in child.stderr:  # the doctor's progress lines
            seen.append(line)
            if line.startswith(f"doctor: {interrupt_at} ..."):
                time.sleep(0.5)  # inside the check: compiling its programs
                child.send_signal(signal.SIGINT)
                break
    out, err = child.communicate(timeout=300)
    return child.returncode, out, "".join(seen) + err


# a check that compiles new XLA programs until the budget's alarm cuts it (the real checks may
# all end, or the budget may run out between them or in the compile check's child process, on
# a machine faster or slower than this one: then nothing is cut in the doctor's own process)
_COMPILES_UNTIL_CUT = """
import sys
import jax, jax.numpy as jnp
from parity_jax import cli, doctor

def compiles(row, sizes):
    row["compiled"] = 0
    while True:
        n = 64 + row["compiled"]
        jax.jit(lambda x: jnp.tanh(x @ x.T).sum()).lower(jnp.ones((n, 48))).compile()
        row["compiled"] += 1

doctor.CHECKS = [doctor.CHECKS[0], ("compiles", compiles), *doctor.CHECKS[1:]]
sys.exit(cli.main(["doctor", *sys.argv[1:]]))
"""


@pytest.mark.slow
def test_a_budget_that_cuts_a_compile_exits_1_not_a_segfault(tmp_path):
    # the budget ran out while batch invariance compiled: the table, then a segmentation
    # fault (139) as the interpreter tore down XLA's compile thread
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = tmp_path / "d.json"
    child = subprocess.run([sys.executable, "-c", _COMPILES_UNTIL_CUT, "--budget", "5",
                            "--json", str(out)], env=env, capture_output=True, text=True,
                           timeout=300)
    assert child.returncode == 1, child.stderr
    assert "some checks did not pass" in child.stdout
    checks = json.loads(out.read_text())["checks"]
    assert checks["compiles"]["cut"] and checks["compiles"]["compiled"] >= 1, checks
    assert checks["compiles"]["status"] == "timeout"
    assert all(c["status"] == "timeout" for c in list(checks.values())[2:]), checks


@pytest.mark.slow
def test_ctrl_c_while_a_check_compiles_exits_130_not_a_segfault():
    code, _, err = _doctor_process(interrupt_at="batch_invariance")
    assert code == 130, err
    assert err.strip().splitlines()[-1] == ("interrupted; the doctor stores nothing (run the "
                                            "doctor again to check again)")


def test_compare_runs_reports_each_field_that_differs_per_cell():
    # benchmarks/compare_runs.py, as gpu_check.sh runs it on the kernel's and the XLA step's
    # stores (its QUICK=1 dry run runs it on real ones)
    spec = importlib.util.spec_from_file_location(
        "compare_runs", Path(__file__).resolve().parent.parent / "benchmarks/compare_runs.py")
    compare_runs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare_runs)

    def cell(width, m, trials=16, successes=4, hit=500):
        return {**{f: 0 for f in CELL_FIELDS}, "width": width, "m": m,
                "trials": trials, "successes": successes, "median_first_hit": hit}

    a = [cell(10, 200), cell(10, 500), cell(100, 200)]
    b = [cell(10, 200), cell(10, 500, successes=5, hit=600), cell(100, 200, trials=15)]
    r = compare_runs.compare(a, b)
    assert r["cells"] == 3 and r["missing"] == []
    assert r["differ"] == {"trials": 1, "successes": 1, "median_first_hit": 1}
    assert r["differences"] == [
        {"cell": {"width": 10, "m": 500}, "successes": [4, 5], "median_first_hit": [500, 600]},
        {"cell": {"width": 100, "m": 200}, "trials": [16, 15]}]
    assert r["successes"] == [12, 13] and r["trials"] == [48, 47]
    text = compare_runs.text(r, ("kernel", "xla"))
    assert "successes 4 -> 5, median_first_hit 500 -> 600" in text
    assert compare_runs.compare(a, a[:2])["missing"] == [
        {"cell": {"width": 100, "m": 200}, "missing_in": "b"}]
    assert compare_runs.compare(a, a)["differences"] == []



@pytest.mark.slow
@pytest.mark.skipif(not all(shutil.which(c) for c in ("bash", "tar", "timeout")),
                    reason="needs bash, tar and timeout")
def test_gpu_check_quick_dry_run_leaves_one_archive(tmp_path):
    # benchmarks/gpu_check.sh QUICK=1 on the CPU (1m19s here): the doctor, the tiny study with
    # the kernel in interpret mode, with the XLA step and warm, and their comparison
    out = tmp_path / "out"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "QUICK": "1", "OUT": str(out), "PYTHON": sys.executable,
           "TMPDIR": str(tmp_path)}
    done = subprocess.run(["bash", str(root / "benchmarks/gpu_check.sh")], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert os.listdir(out) == ["all.tgz"]
    with tarfile.open(out / "all.tgz") as tar:
        names = set(tar.getnames())
        read = {n: tar.extractfile(n).read().decode() for n in (
            "gpu_check/stages.txt", "gpu_check/compare.log", "gpu_check/doctor.json",
            "gpu_check/compare_kernel_xla.json", "gpu_check/plan.log")}
    for store in ("study_kernel", "study_xla", "study_warm"):
        assert f"gpu_check/{store}/results.sqlite" in names
    assert "gpu_check/kernel_checks.json" in names  # the kernel's self-check verdicts
    stages = dict(line.split(" ", 1) for line in read["gpu_check/stages.txt"].splitlines())
    assert list(stages) == ["device", "doctor", "plan", "study_kernel", "study_xla",
                            "study_warm", "compare"]
    assert all(v.startswith("rc=0 ") for v in stages.values()), stages
    assert json.loads(read["gpu_check/doctor.json"])["ok"] is True
    assert " interpret " in read["gpu_check/plan.log"]  # the kernel was selected
    compared = json.loads(read["gpu_check/compare_kernel_xla.json"])
    assert compared["trials"] == [8, 8] and compared["missing"] == []
    assert "fell back to the XLA step (warning lines naming PARITY_JAX_KERNEL=off): 0" in \
        read["gpu_check/compare.log"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("gpu_check.")] == []
