"""The benchmark harness on a tiny workload: every column filled, the arithmetic consistent;
sizes and output files checked before anything is timed."""

import json
import os
import sys

import pytest
from conftest import make_victim, one_error

from parity_jax import alternatives, bench, cli, timing


@pytest.mark.slow
def test_bench_reports_rates_flops_and_baselines():
    result = bench.run_bench(widths=[10], trials=[1, 4], varies=["init", "both"], repeats=1,
                             steps=8, progress=None)
    assert result["gemm_peak_gflops"] > 0
    rows = result["rows"]
    assert [(r["vary"], r["trials"]) for r in rows] == [
        ("init", 1), ("init", 4), ("both", 1), ("both", 4)]
    for r in rows:
        assert r["rate"] > 0 and r["rate_end_to_end"] > 0
        assert r["gflops"] == pytest.approx(r["rate"] * 4 * 32 * 10 * 52 / 1e9)
        assert r["peak_fraction"] == pytest.approx(r["gflops"] / result["gemm_peak_gflops"])
        assert r["neuron_rate"] == pytest.approx(10 * r["rate"])
        assert r["compile_s"] > 0 and r["programs"] >= 1 and r["memory_bytes"] > 0
        assert r["G"] * r["P"] >= r["trials"]
        assert r["jax_loop"] > 0 and r["naive_jit_vmap"] > 0
        assert r["hbm_bound"] == pytest.approx(result["memory_bandwidth"] / (2 * 4 * 10 * 50))
        assert r["hbm_fraction"] == pytest.approx(r["rate"] / r["hbm_bound"])
    json.dumps(result)  # JSON-able as is
    table = bench.markdown(result)
    assert table.count("\n| init | 10 |") == 2 and "GFLOP/s" in table


@pytest.mark.slow
def test_the_kernel_column_times_the_kernel(monkeypatch):
    # on a GPU the column is the Pallas kernel; here its interpret mode fills it
    monkeypatch.setenv("PARITY_JAX_KERNEL", "interpret")
    result = bench.run_bench(widths=[10], trials=[4], varies=["init"], repeats=1, steps=8,
                             progress=None)
    [r] = result["rows"]
    assert r["kernel"] > 0 and r["kernel_mode"] == "interpret" and r["kernel_compile_s"] > 0
    assert r["x_kernel_naive"] == pytest.approx(r["kernel"] / r["naive_jit_vmap"])
    assert r["x_kernel_engine"] == pytest.approx(r["kernel"] / r["rate"])
    assert "| init | 10 | 4 |" in bench.markdown(result)
    monkeypatch.setenv("PARITY_JAX_KERNEL", "off")
    result = bench.run_bench(widths=[10], trials=[4], varies=["init"], repeats=1, steps=8,
                             baselines=False, progress=None)
    assert "kernel" not in result["rows"][0]


@pytest.mark.slow
def test_bench_skips_what_does_not_fit():
    result = bench.run_bench(widths=[10], trials=[1, 4], varies=["both"], repeats=1,
                             steps=8, baselines=False, progress=None, max_neurons=30)
    assert "skipped" not in result["rows"][0] and "skipped" in result["rows"][1]
    assert "skipped" in bench.markdown(result)


RESULT = {
    "machine": {"cpu": "AMD EPYC", "cores": 2, "backend": "cpu", "device": "cpu",
                "python": "3.11.7", "jax": "0.10.2", "torch": None, "date": "2026-11-26"},
    "gemm_peak_gflops": 208.4,
    "rows": [
        {"vary": "init", "width": 100, "trials": 100, "G": 10, "P": 10, "steps": 2048,
         "rate": 199049.8, "rate_end_to_end": 198452.2, "neuron_rate": 19904982.9,
         "gflops": 132.48, "peak_fraction": 0.6358, "gemm_bound": 230607.5,
         "x_gemm_bound": 0.8631, "compile_s": 3.636, "programs": 1, "memory_bytes": 12128398,
         "torch_loop": 3292.2, "torch_func": None, "jax_loop": 43806.6, "x_torch_loop": 60.46},
        {"vary": "both", "width": 10000, "trials": 10000,
         "skipped": "trials x width > 10,000,000"},
    ],
}


def test_bench_markdown_table_as_before():
    assert bench.markdown(RESULT).splitlines() == [
        "Machine: AMD EPYC, 2 cores, cpu (cpu); Python 3.11.7, jax 0.10.2, torch None; "
        "2026-11-26. float32 GEMM peak (2048^3 jnp.matmul): **208 GFLOP/s**.",
        "",
        "| vary | width | trials | G x P | S | engine trial-steps/s | end to end | neuron-steps/s "
        "| GFLOP/s | % peak | GEMM bound | % bound | % HBM bound | compile s | programs | memory "
        "| kernel trial-steps/s | naive jit(vmap) | torch loop | torch.func | jax per-trial jit "
        "| x naive | kernel x naive | x torch loop | x torch.func |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| init | 100 | 100 | 10 x 10 | 2048 | 199k | 198k | 19.9M | 132.5 | 63.6% | 231k | 86% "
        "| - | 3.64 | 1 | 12 MiB | - | - | 3.29k | - | 43.8k | - | - | 60.5x | - |",
        "| both | 10000 | 10000 | skipped: trials x width > 10,000,000 |" + " |" * 21]


def test_torch_baselines_when_torch_is_installed():
    pytest.importorskip("torch")
    baselines = bench.torch_baselines()
    assert baselines.torch_loop_rate(10, 2, steps=10)["rate"] > 0
    for vary in ("init", "both"):
        assert baselines.torch_func_rate(10, 3, vary, steps=4, repeats=1)["rate"] > 0


def test_the_torch_baselines_load_from_the_checkouts_benchmarks_folder(monkeypatch):
    baselines = bench.torch_baselines()
    assert baselines.__file__ == str(bench.BASELINES)
    assert bench.BASELINES.parent.name == "benchmarks" and "torch" not in bench.__dict__
    monkeypatch.setitem(sys.modules, "torch", None)  # no PyTorch: every baseline says so
    assert baselines.torch_or_none() is None and baselines.torch_device() is None
    assert baselines.torch_loop_rate(10, 2, steps=10) == {}
    assert baselines.torch_func_timer(10, 2, "init") is None


@pytest.mark.slow
def test_without_the_baselines_file_their_cells_say_so(monkeypatch, tmp_path):
    # an installed wheel has no benchmarks/ folder: the PyTorch columns are errors, the rest
    # of the row is timed
    monkeypatch.setattr(bench, "BASELINES", tmp_path / "benchmarks" / "torch_baselines.py")
    with pytest.raises(ImportError, match="the PyTorch baselines need a checkout"):
        bench.torch_baselines()
    result = bench.run_bench(widths=[10], trials=[2], varies=["init"], repeats=1, steps=8,
                             progress=None)
    [r] = result["rows"]
    assert result["machine"]["torch"] is None and r["rate"] > 0 and r["jax_loop"] > 0
    for name in ("torch_loop", "torch_func"):
        assert r["errors"][name].startswith("ImportError: the PyTorch baselines need a checkout")
    [line] = [x for x in bench.markdown(result).splitlines() if x.startswith("| init | 10 |")]
    cells = dict(zip(bench.MARKDOWN_COLUMNS, (c.strip() for c in line.strip("|").split("|")),
                     strict=True))
    assert cells["torch.func"].startswith("error: ImportError: the PyTorch baselines need")


@pytest.mark.parametrize("argv,field", [
    (["--widths", "0"], "--widths"), (["--trials", "a,b"], "--trials"),
    (["--vary", "data"], "--vary"), (["--repeats", "0"], "--repeats")])
def test_bench_bad_arguments_exit_2(capsys, argv, field):
    assert cli.main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {field}") and err.count("\n") == 1


@pytest.mark.slow
def test_each_row_sizes_its_own_steps(monkeypatch):
    """S comes from each row's own width and trials (a row once reused the first row's S)."""
    monkeypatch.setattr(bench, "_steps_for", lambda width, trials, peak: 8 * trials)
    result = bench.run_bench(widths=[10], trials=[1, 2], varies=["init"], repeats=1,
                             baselines=False, progress=None)
    assert [r["steps"] for r in result["rows"]] == [8, 16]


def test_interleaved_times_every_timer_in_each_round():
    calls = []
    medians = timing.interleaved({"a": lambda: calls.append("a"),
                                 "b": lambda: calls.append("b")}, repeats=3)
    assert calls == ["a", "b"] * 3 and set(medians) == {"a", "b"}
    assert all(v >= 0 for v in medians.values())


@pytest.mark.slow
def test_a_failing_column_is_reported_in_its_cell_and_the_row_still_timed(monkeypatch):
    # fault injection: the kernel fails to build, the naive program fails when timed, and
    # PyTorch is missing; the engine and the per-trial jit loop are still timed
    monkeypatch.setenv("PARITY_JAX_KERNEL", "interpret")
    engine = bench.engine_timers

    def kernel_fails(width, trials, vary, steps, kernel_mode="off"):
        if kernel_mode != "off":
            raise RuntimeError("lowering failed\nTraceback details")
        return engine(width, trials, vary, steps, kernel_mode=kernel_mode)

    def naive_fails_when_run(width, trials, vary, steps):
        def run():
            raise ValueError("out of memory")
        return {steps: run, 2 * steps: run}

    monkeypatch.setattr(bench, "engine_timers", kernel_fails)
    monkeypatch.setattr(alternatives, "naive_timers", naive_fails_when_run)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails: no PyTorch
    result = bench.run_bench(widths=[10], trials=[4], varies=["init"], repeats=2, steps=8,
                             progress=None)
    [r] = result["rows"]
    assert r["rate"] > 0 and r["gemm_bound"] > 0 and r["jax_loop"] > 0
    assert r["kernel"] is None and r["naive_jit_vmap"] is None
    assert r["errors"]["kernel"] == "RuntimeError: lowering failed"
    assert r["errors"]["naive_jit_vmap"] == "ValueError: out of memory"
    assert r["errors"]["torch_loop"].startswith("ImportError: PyTorch is not installed")
    assert r["errors"]["torch_func"].startswith("ImportError: PyTorch is not installed")
    assert "jax_loop" not in r["errors"] and "engine" not in r["errors"]
    [line] = [x for x in bench.markdown(result).splitlines() if x.startswith("| init | 10 |")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    col = {name: cells[i] for i, name in enumerate(bench.MARKDOWN_COLUMNS)}
    assert col["kernel trial-steps/s"] == "error: RuntimeError: lowering failed"
    assert col["naive jit(vmap)"] == "error: ValueError: out of memory"
    assert col["torch loop"].startswith("error: ImportError: PyTorch is not installed")
    assert col["engine trial-steps/s"] not in ("-", "") and col["x naive"] == "-"


def test_a_marginal_rate_inside_timing_noise_is_an_error_where_asked():
    errors: dict = {}
    assert timing.marginal(10, 4, {4: 1.0, 8: 1.5}, errors, "xla") == pytest.approx(80.0)
    assert timing.marginal(10, 4, {4: 1.0, 8: 0.99}, errors, "xla") is None
    assert "timing noise" in errors["xla"]
    assert timing.marginal(10, 4, {4: 1.0}, errors, "kernel") is None and "kernel" not in errors
    assert timing.marginal(10, 4, {4: 1.0, 8: 0.99}) == pytest.approx(40 / 1e-9)  # bench's rows


@pytest.mark.parametrize("argv,says", [
    (["--trials", "2000000000"], "--trials = '2000000000': 2000000000 is past the engine's "
                                 "limits for the benchmark's workload (seeds = 2000000000"),
    (["--widths", "3000000000"], "--widths = '3000000000': 3000000000 is past the engine's "
                                 "limits for the benchmark's workload (model.width = "),
    (["--widths", "10,50000000", "--trials", "1"], "--widths = '10,50000000': 50000000 is past"),
])
def test_bench_sizes_past_the_engine_name_the_flag_before_anything_is_timed(monkeypatch, capsys,
                                                                          argv, says):
    from parity_jax import bench

    def timed(*a, **kw):
        raise AssertionError("timed before refusing")

    monkeypatch.setattr(timing, "gemm_peak", timed)
    monkeypatch.setattr(bench, "run_bench", timed)
    assert cli.main(["bench", *argv]) == 2
    assert one_error(capsys).startswith(f"error: {says}")


def test_bench_refuses_links_and_devices_as_outputs_before_benchmarking(tmp_path, monkeypatch,
                                                                        capsys):
    from parity_jax import bench

    def no_bench(*a, **kw):
        raise AssertionError("benchmarked before refusing")

    monkeypatch.setattr(bench, "run_bench", no_bench)
    victim, data = make_victim(tmp_path)
    (tmp_path / "link.json").symlink_to(victim)
    os.mkfifo(tmp_path / "fifo.json")
    for path, says in [(tmp_path / "link.json", "is a symbolic link"),
                       ("/dev/full", "is not a regular file"),
                       (tmp_path / "fifo.json", "is not a regular file")]:
        assert cli.main(["bench", "--json", str(path)]) == 2
        assert f"--json = '{path}': {says}" in one_error(capsys)
    assert victim.read_bytes() == data


def test_bench_checks_its_output_files_before_benchmarking(tmp_path, monkeypatch, capsys):
    from parity_jax import bench

    def no_bench(*a, **kw):
        raise AssertionError("benchmarked before refusing")

    monkeypatch.setattr(bench, "run_bench", no_bench)
    for flag, path, says in [
        ("--json", "/nonexistent/dir/x.json", "--json = '/nonexistent/dir/x.json': no such "
                                              "directory '/nonexistent/dir'"),
        ("--markdown", str(tmp_path), "is a directory"),
        ("--json", str(tmp_path / "f.txt" / "x.json"), "no such directory"),
    ]:
        (tmp_path / "f.txt").write_text("x")
        assert cli.main(["bench", flag, path]) == 2
        assert says in one_error(capsys)


@pytest.fixture
def exits(monkeypatch):
    """The exit codes ``devices.leave`` would end the process with (here it returns)."""
    from parity_jax import devices

    codes = []
    monkeypatch.setattr(devices, "_exit", codes.append)
    return codes


def test_a_bad_kernel_setting_is_refused_before_anything_is_timed(monkeypatch, capsys):
    # it was caught after a row was timed (13 s), as two lines
    def timed(*a, **kw):
        raise AssertionError("timed before refusing")

    monkeypatch.setattr(timing, "gemm_peak", timed)
    monkeypatch.setattr(bench, "run_bench", timed)
    monkeypatch.setenv("PARITY_JAX_KERNEL", "fast")
    assert cli.main(["bench", "--widths", "10", "--trials", "1"]) == 2
    assert one_error(capsys) == ("error: PARITY_JAX_KERNEL = 'fast': must be one of auto, off, "
                                 "on, interpret, 3xtf32")


def test_ctrl_c_says_the_bench_wrote_nothing_and_ends_the_process(tmp_path, monkeypatch,
                                                                   capsys, exits):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "run_bench", interrupted)
    out = tmp_path / "b.json"
    assert cli.main(["bench", "--json", str(out)]) == 130
    assert exits == [130]  # XLA work cut short: the process ends at once
    err = capsys.readouterr().err.strip()
    assert err == ("interrupted; the bench wrote nothing (its table and files are written at "
                   "the end)")  # it said "what was stored is kept (a run resumes ...)"
    assert not out.exists()


@pytest.mark.slow
def test_ctrl_c_while_the_bench_compiles_exits_130_not_a_segfault(tmp_path):
    import signal
    import subprocess
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    child = subprocess.Popen([sys.executable, "-m", "parity_jax", "bench", "--widths", "1000",
                              "--trials", "100", "--no-baselines"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in child.stderr:  # SIGINT once a row has started (a fixed wait could land in
        if line.startswith("bench: vary="):  # JAX's import on a loaded machine)
            time.sleep(1.0)  # compiling the row's programs
            break
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("interrupted; the bench wrote nothing")
