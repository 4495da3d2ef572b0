"""benchmarks/: the scripts whose output a rare GPU run or an old-vs-new check depends on refuse
bad input with one line (exit 2) and say in their exit status when something failed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
GPU_CHECK = BENCHMARKS / "gpu_check.sh"


def _same_outcomes():
    spec = importlib.util.spec_from_file_location("same_outcomes",
                                                  BENCHMARKS / "same_outcomes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.quick
@pytest.mark.parametrize("a,b", [("garbage", "garbage"), ("[1, 2]", "[1, 2]"),
                                 ('{"tables": 3}', '{"tables": 3}'),
                                 ('{"tables": {"t": {"columns": ["a"], "key": ["b"], '
                                  '"rows": []}}}', '{"tables": {}}')])
def test_same_outcomes_refuses_a_dump_it_did_not_write_with_one_line(tmp_path, capsys, a, b):
    # a garbage or non-object dump was a traceback
    for name, text in (("A", a), ("B", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "default.json").write_text(text)
    assert _same_outcomes().main(["--compare", str(tmp_path / "A"), str(tmp_path / "B")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


@pytest.mark.quick
def test_same_outcomes_says_a_missing_directory_the_same_way_for_compare_and_redump(
        tmp_path, capsys):
    # --compare of missing directories exited 2, --redump of one 1
    so = _same_outcomes()
    assert so.main(["--compare", str(tmp_path / "x"), str(tmp_path / "y")]) == 2
    assert so.main(["--redump", str(tmp_path / "x")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert all("not a directory" in line for line in lines) and len(lines) == 2


@pytest.mark.quick
def test_same_outcomes_compares_equal_dumps_as_identical(tmp_path, capsys):
    dump = '{"meta": {"fingerprint": "f"}, "tables": {"t": {"columns": ["a", "b"], ' \
           '"key": ["a"], "rows": [[1, 2.5], [2, null]]}}}'
    for name in ("A", "B"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "default.json").write_text(dump)
    assert _same_outcomes().main(["--compare", str(tmp_path / "A"), str(tmp_path / "B")]) == 0
    assert "ALL IDENTICAL" in capsys.readouterr().out


@pytest.mark.quick
@pytest.mark.parametrize("added,same", [("null", True), ("7", False)])
def test_same_outcomes_compares_a_newer_formats_null_columns_by_the_rest(tmp_path, capsys,
                                                                        added, same):
    # a store format with added nullable columns (recovery_hit/_end) made every row differ
    old = '{"meta": {}, "tables": {"t": {"columns": ["a", "b"], "key": ["a"], ' \
          '"rows": [[1, 2.5]]}}}'
    new = '{"meta": {}, "tables": {"t": {"columns": ["a", "b", "c"], "key": ["a"], ' \
          f'"rows": [[1, 2.5, {added}]]}}}}}}'
    for name, text in (("A", old), ("B", new)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "default.json").write_text(text)
    code = _same_outcomes().main(["--compare", str(tmp_path / "A"), str(tmp_path / "B")])
    out = capsys.readouterr().out
    assert code == (0 if same else 1)
    assert ("columns added in B, null in every row: c" in out) == same


def _gpu_check(out: str, cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(GPU_CHECK)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "OUT": out, **env}, timeout=120)


@pytest.mark.quick
def test_gpu_check_refuses_an_out_it_cannot_create_before_any_stage(tmp_path):
    # it ran every stage, failed every archive move, and exited 0 with nothing kept
    (tmp_path / "a_file").write_text("x")
    for out in (str(tmp_path / "a_file"), str(tmp_path / "a_file" / "below")):
        r = _gpu_check(out, tmp_path)
        assert r.returncode == 2, r
        assert r.stderr.strip().startswith(f"error: OUT = {out}: cannot")
        assert "rc=" not in r.stdout  # no stage ran


@pytest.mark.slow
def test_gpu_check_exits_1_when_its_stages_fail_and_a_relative_out_is_the_callers(tmp_path):
    # every stage failing (an interpreter that does nothing: `false`) exited 0; a relative
    # OUT landed inside the checkout (the script changes directory first)
    r = _gpu_check("rel/out", tmp_path, PYTHON="false", QUICK="1")
    assert r.returncode == 1, (r.stdout, r.stderr)
    archive = tmp_path / "rel" / "out" / "all.tgz"
    assert archive.is_file() and sorted(p.name for p in archive.parent.iterdir()) == ["all.tgz"]
    with tarfile.open(archive) as tar:
        stages = tar.extractfile("gpu_check/stages.txt").read().decode()
    assert "doctor rc=1" in stages and "device rc=0" in stages
    assert "a stage failed" in r.stdout
