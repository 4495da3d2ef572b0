"""plots: figures drawn without pyplot; importing the module chooses no matplotlib backend."""

import os
import subprocess
import sys

from parity_jax import plots, reduce


def test_importing_plots_chooses_no_backend():
    code = ("import sys, matplotlib, parity_jax.plots; "
            "print('matplotlib.pyplot' in sys.modules, "
            "matplotlib.rcParams._get_backend_or_none())")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["False", "None"], done.stderr


def test_heatmaps_write_one_png_per_init(tmp_path):
    base = {f: 0 for f in reduce.CELL_FIELDS} | {"n": 20, "k": 3, "s": 0}
    records = [base | {"init": init, "s": s, "width": w, "m": m, "p": w * m / 1000}
               for init, s in (("dense", 0), ("sparse", 2)) for w in (8, 16) for m in (10, 40)]
    paths = plots.heatmaps(records, tmp_path)
    assert [p.name for p in paths] == ["heatmap_dense.png", "heatmap_sparse-s2.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
