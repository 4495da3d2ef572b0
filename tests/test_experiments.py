"""Each experiment runs once on a tiny config; its config matches the built-in default."""

import importlib.util
import sys
from pathlib import Path

from parity_jax import DEFAULT_STUDY, Study

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_fig1_config_is_the_built_in_default_study():
    assert Study.from_toml(EXPERIMENTS / "fig1_cpu.toml").fingerprint() == \
        DEFAULT_STUDY.fingerprint()


def test_fig1_script_on_a_tiny_config(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text((EXPERIMENTS / "fig1_cpu.toml").read_text()
                      .replace("seeds = 16", "seeds = 2")
                      .replace("m = [200, 500, 1000, 2000, 5000]", "m = [50, 300]")
                      .replace("n = 50", "n = 10").replace("k = 3", "k = 2")
                      .replace("width = [10, 30, 100, 300, 1000]", "width = [4, 16]")
                      .replace("n_test = 2000", "n_test = 200")
                      .replace("steps = 10000", "steps = 500"))
    result = fig1.main(config, tmp_path / "out", progress=None)
    assert len(result["cells"]) == 8 and all(c["trials"] == 2 for c in result["cells"])
    assert sorted(p.name for p in result["pngs"]) == ["heatmap_dense.png",
                                                      "heatmap_sparse-s2.png"]
    for name in ("report.txt", "report.csv", "report.json"):
        assert (tmp_path / "out" / name).stat().st_size > 100


fig1 = _load("fig1_cpu")
