"""devices: four JAX devices give the same outcomes as one, trial by trial; setting up makes
no cache directory (JAX makes it when it first compiles) and hands a URL to JAX as it is."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SCALE_STUDY, TINY_TOML, stored_trials

import parity_jax
from parity_jax import kinds


@pytest.mark.slow
def test_four_devices_give_the_same_outcomes_as_one_trial_by_trial(tmp_path):
    one = parity_jax.run(SCALE_STUDY, tmp_path / "one", n_devices=1, progress=None)
    parity_jax.run(SCALE_STUDY, tmp_path / "four", n_devices=4, progress=None)
    assert len(one.trials()) == 36
    assert stored_trials(tmp_path / "one") == stored_trials(tmp_path / "four")
    # the plan really spread the batches over the 4 devices
    p = kinds.parity.make_plan(SCALE_STUDY, n_devices=4)
    assert all(b.shape.G % 4 == 0 for b in p.batches if b.shape.G >= 4)
    assert any(b.shape.G >= 4 for b in p.batches)


def _setup_in_a_child(tmp_path, cache: str) -> tuple[str, str, list[str]]:
    """``devices.setup()`` in a fresh interpreter with ``PARITY_JAX_CACHE=cache``, run from
    ``tmp_path``: (JAX's cache directory after it, stderr, what tmp_path then holds)."""
    root = str(Path(__file__).resolve().parents[1])
    code = ("from parity_jax import devices; import jax; devices.setup(); "
            "print(jax.config.jax_compilation_cache_dir)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": root, "PARITY_JAX_CACHE": cache})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), done.stderr, sorted(p.name for p in tmp_path.iterdir())


def test_setting_up_makes_no_cache_directory(tmp_path):
    # it was made at start-up, before run checked --out: a cache inside a new --out made
    # run refuse it as not empty; JAX makes it when it first compiles
    where = tmp_path / "out" / "cache"
    used, err, held = _setup_in_a_child(tmp_path, str(where))
    assert used == str(where) and held == [] and err == ""
    # a place no directory can be made: the cache is off
    (tmp_path / "file").write_text("x")
    used, err, _ = _setup_in_a_child(tmp_path, str(tmp_path / "file" / "cache"))
    assert used == "None" and err == ""


def test_a_cache_url_is_never_a_local_directory(tmp_path):
    # gs://bucket/x made a local gs:/bucket/x, and JAX warned in two lines on every run
    used, err, held = _setup_in_a_child(tmp_path, "gs://bucket/x")
    assert held == []
    if importlib.util.find_spec("gcsfs") is None:  # JAX cannot reach it here: off, one line
        assert used == "None"
        [line] = err.strip().splitlines()
        assert line.startswith("warning: PARITY_JAX_CACHE = 'gs://bucket/x': ")
        assert line.endswith("; the compile cache is off")
    else:
        assert used == "gs://bucket/x" and err == ""


@pytest.mark.slow
def test_a_cache_inside_a_new_out_directory_is_no_obstacle(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text(TINY_TOML)
    out = tmp_path / "out"
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-m", "parity_jax", "run", str(config), "--out",
                           str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": root,
                               "PARITY_JAX_CACHE": str(out / "cache")})
    assert done.returncode == 0, done.stderr
    assert (out / "results.sqlite").exists() and any((out / "cache").iterdir())
