"""plots: figures drawn without pyplot; importing the module chooses no matplotlib backend (what
a parity study draws: tests/test_report_parity.py)."""

import os
import subprocess
import sys

import numpy as np

from parity_jax import plots


def test_importing_plots_chooses_no_backend():
    code = ("import sys, matplotlib, parity_jax.plots; "
            "print('matplotlib.pyplot' in sys.modules, "
            "matplotlib.rcParams._get_backend_or_none())")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["False", "None"], done.stderr


def test_heatmap_draws_a_probability_grid(tmp_path):
    grid = np.array([[0.0, 0.5], [np.nan, 1.0]])
    path = plots.heatmap(grid, ["10", "40"], ["8", "16"], tmp_path / "h.png", target=0.5,
                         xlabel="m", ylabel="width", title="t")
    assert path == tmp_path / "h.png" and path.read_bytes().startswith(b"\x89PNG")
