"""The parity kind's report: per-cell summaries, the m-frontier and the data-compute frontier,
the summary table byte for byte, and the heatmaps' names and titles."""

from pathlib import Path

import pytest

from parity_jax import files, reduce
from parity_jax.kinds.parity import report

pytestmark = pytest.mark.quick  # pure Python: make test-quick


def _record(width, m, init, successes, first_hit):
    r = {"cell": 0, **{f: None for f in report.CELL_FIELDS}}
    r.update(n=50, k=3, width=width, depth=1, m=m, init=init,
             s=None if init == "dense" else 2, lr=0.1, wd=0.01, loss="hinge", steps=10000,
             batch=32, n_test=2000, eval_every=100, online=False, target="parity",
             trials=16, successes=successes, p=successes / 16,
             ci_low=0.0 if successes == 0 else 0.39, ci_high=0.19 if successes == 0 else 0.82,
             median_first_hit=first_hit, diverged=0, metric="error",
             # the median trial's FLOPs to its hit, counted by hand: 4 B r (n + 2) a step,
             # 2 r (n + 1) per test row at each evaluation (hit / 100 of them, n_test 2000)
             median_compute=None if first_hit is None else
             first_hit * 4 * 32 * width * 52 + -(-first_hit // 100) * 2000 * 2 * width * 51)
    return r


RECORDS = [_record(10, 1000, "dense", 1, 4700.0), _record(10, 1000, "sparse", 2, 2000.0),
           _record(1000, 1000, "dense", 10, 8200.0), _record(1000, 1000, "sparse", 16, 3650.0),
           _record(10, 2000, "dense", 9, 4700.0), _record(10, 2000, "sparse", 0, None),
           _record(1000, 2000, "dense", 16, 2750.0), _record(1000, 2000, "sparse", 16, 1150.5)]

# What `parity-jax report` prints for these records (the TFLOP column and the data-compute
# frontier added with the compute axis, that frontier per setting since issue 28; the rest as
# before render existed).
CELLS_TABLE = """\
width     m    init  s  trials  successes     p        95% CI  median_first_hit  TFLOP to hit
   10  1000   dense  -      16          1  0.06  [0.39, 0.82]              4700      0.000409
   10  1000  sparse  2      16          2  0.12  [0.39, 0.82]              2000      0.000174
 1000  1000   dense  -      16         10  0.62  [0.39, 0.82]              8200        0.0713
 1000  1000  sparse  2      16         16  1.00  [0.39, 0.82]              3650        0.0318
   10  2000   dense  -      16          9  0.56  [0.39, 0.82]              4700      0.000409
   10  2000  sparse  2      16          0  0.00  [0.00, 0.19]                 -             -
 1000  2000   dense  -      16         16  1.00  [0.39, 0.82]              2750         0.024
 1000  2000  sparse  2      16         16  1.00  [0.39, 0.82]          1.15e+03        0.0101

frontier: smallest m with p >= 0.5
  width=10  init=dense  s=-:  m = 2000
  width=10  init=sparse  s=2:  m = -
  width=1000  init=dense  s=-:  m = 1000
  width=1000  init=sparse  s=2:  m = 1000

data-compute frontier (p >= 0.5): no other cell of its setting has less m and fewer TFLOP to hit
  init=dense  s=-:
    m = 1000:  0.0713 TFLOP  (width=1000)
    m = 2000:  0.000409 TFLOP  (width=10)
  init=sparse  s=2:
    m = 1000:  0.0318 TFLOP  (width=1000)
    m = 2000:  0.0101 TFLOP  (width=1000)"""


def test_cells_table_settings_statistics_and_frontier():
    assert report.cells_table(RECORDS) == CELLS_TABLE


def test_cells_table_without_m_varying_has_no_frontier():
    assert report.cells_table(RECORDS[:2], 0.25) == (
        "  init  s  trials  successes     p        95% CI  median_first_hit  TFLOP to hit\n"
        " dense  -      16          1  0.06  [0.39, 0.82]              4700      0.000409\n"
        "sparse  2      16          2  0.12  [0.39, 0.82]              2000      0.000174")


def test_cells_table_frontier_target():
    lines = report.cells_table(RECORDS, target=0.6).splitlines()
    assert lines[-8:] == ["", "data-compute frontier (p >= 0.6): no other cell of its setting "
                          "has less m and fewer TFLOP to hit",
                          "  init=dense  s=-:",
                          "    m = 1000:  0.0713 TFLOP  (width=1000)",
                          "    m = 2000:  0.024 TFLOP  (width=1000)",
                          "  init=sparse  s=2:",
                          "    m = 1000:  0.0318 TFLOP  (width=1000)",
                          "    m = 2000:  0.0101 TFLOP  (width=1000)"]
    assert lines[-13:-8] == ["frontier: smallest m with p >= 0.6",
                             "  width=10  init=dense  s=-:  m = -",
                             "  width=10  init=sparse  s=2:  m = -",
                             "  width=1000  init=dense  s=-:  m = 1000",
                             "  width=1000  init=sparse  s=2:  m = 1000"]


def _cell(i, width, m, init, s=None, lr=0.1):
    return {"cell": i, "n": 50, "k": 3, "width": width, "depth": 1, "m": m, "init": init,
            "s": s, "lr": lr, "wd": 0.01, "loss": "hinge", "steps": 1000, "n_test": 100,
            "noise": 0.0, "batch": 32, "eval_every": 100, "threshold": 0.1,
            "stop_on_success": True, "vary": "both", "data_seed": 0, "init_seed": 0}


def test_summarize_counts_successes_and_median_first_hit():
    cells = [_cell(0, 10, 100, "dense"), _cell(1, 10, 200, "dense")]
    trials = [
        {"cell": 0, "seed": 0, "success": True, "first_hit": 300, "diverged": False,
         "steps_run": 300},
        {"cell": 0, "seed": 1, "success": False, "first_hit": None, "diverged": True,
         "steps_run": 1000},
        {"cell": 0, "seed": 2, "success": True, "first_hit": 500, "diverged": False,
         "steps_run": 500},
        {"cell": 0, "seed": 3, "success": True, "first_hit": 900, "diverged": False,
         "steps_run": 900},
    ]
    recs = report.summarize(cells, trials)
    assert recs[0]["trial_steps"] == 2700 and recs[1]["trial_steps"] == 0
    assert "decision" not in recs[0]  # not an adaptive study
    assert recs[0]["trials"] == 4 and recs[0]["successes"] == 3 and recs[0]["p"] == 0.75
    assert recs[0]["median_first_hit"] == 500 and recs[0]["diverged"] == 1
    assert (recs[0]["ci_low"], recs[0]["ci_high"]) == pytest.approx(reduce.wilson(3, 4))
    assert recs[1]["trials"] == 0 and recs[1]["p"] is None and recs[1]["median_first_hit"] is None


def test_frontier_on_a_hand_made_table():
    table = [  # (width, init, m, p)
        (10, "dense", 100, 0.0), (10, "dense", 200, 0.2), (10, "dense", 400, 0.4),
        (100, "dense", 100, 0.1), (100, "dense", 200, 0.6), (100, "dense", 400, 0.4),
        (100, "sparse", 100, 0.5), (100, "sparse", 200, 0.9), (100, "sparse", 400, 1.0),
    ]
    recs = [{**_cell(i, w, m, init, s=2 if init == "sparse" else None), "p": p}
            for i, (w, init, m, p) in enumerate(table)]
    front = {(f["width"], f["init"]): f["m"] for f in report.frontier(recs, target=0.5)}
    # non-monotone p (double descent) still gives the smallest m that reaches the target
    assert front == {(10, "dense"): None, (100, "dense"): 200, (100, "sparse"): 100}
    front9 = {(f["width"], f["init"]): f["m"] for f in report.frontier(recs, target=0.9)}
    assert front9 == {(10, "dense"): None, (100, "dense"): None, (100, "sparse"): 200}
    # the frontier keeps other settings apart (lr here)
    recs.append({**_cell(99, 10, 400, "dense", lr=0.5), "p": 1.0})
    front = report.frontier(recs, target=0.5)
    assert {(f["width"], f["lr"]): f["m"] for f in front if f["init"] == "dense"} == {
        (10, 0.1): None, (100, 0.1): 200, (10, 0.5): 400}




def _flat(records):
    """``_record``s of a second target beside parity's (the same numbers, another target)."""
    return [{**r, "target": "majority", "k": 5} for r in records]


def test_the_data_compute_frontier_is_per_setting_not_over_the_whole_study():
    # issue 28 item 8: one Pareto set over every cell hid all but the cheapest target's cells
    records = RECORDS + [{**r, "median_compute": r["median_compute"] / 100}
                         for r in _flat(RECORDS) if r["median_compute"] is not None]
    front = report.compute_frontier(records)
    by = {}
    for r in front:
        by.setdefault((r["target"], r["init"]), []).append((r["m"], r["width"]))
    assert by == {("parity", "dense"): [(1000, 1000), (2000, 10)],
                  ("parity", "sparse"): [(1000, 1000), (2000, 1000)],
                  ("majority", "dense"): [(1000, 1000), (2000, 10)],
                  ("majority", "sparse"): [(1000, 1000), (2000, 1000)]}
    # metric, n, k and every other setting but m, width and steps split groups too
    assert report.compute_key(records[0]) != report.compute_key({**records[0], "lr": 0.5})
    assert report.compute_key(records[0]) == report.compute_key(
        {**records[0], "m": 7, "width": 7, "steps": 7})
    lines = report.cells_table(records).splitlines()
    start = lines.index("data-compute frontier (p >= 0.5): no other cell of its setting has "
                        "less m and fewer TFLOP to hit")
    assert lines[start + 1:start + 4] == ["  k=3  init=dense  s=-  target=parity:",
                                         "    m = 1000:  0.0713 TFLOP  (width=1000)",
                                         "    m = 2000:  0.000409 TFLOP  (width=10)"]
    assert "  k=5  init=sparse  s=2  target=majority:" in lines[start:]


def test_an_online_cell_that_reaches_the_target_is_not_never():
    # issue 28 item 14: "m = -" said both "reached with fresh samples" and "never reached"
    online = [{**r, "m": None, "online": True} for r in RECORDS[4:]]
    records = RECORDS[:4] + online
    front = {(f["width"], f["init"], f["online"]): f for f in report.frontier(records)}
    assert front[1000, "dense", True]["m"] is None and front[1000, "dense", True]["reached"]
    assert front[10, "sparse", True]["m"] is None and not front[10, "sparse", True]["reached"]
    assert front[1000, "dense", False]["m"] == 1000 and front[1000, "dense", False]["reached"]
    assert not front[10, "dense", False]["reached"]
    lines = report.cells_table(records).splitlines()
    assert "  width=10  init=sparse  s=2  online=True:  m = -" in lines
    assert "  width=1000  init=dense  s=-  online=True:  m = online" in lines
    assert "  width=10  init=dense  s=-  online=False:  m = -" in lines


def test_checked_frontier_refuses_bad_arguments():
    with pytest.raises(report.ConfigError, match="target = 2"):
        report.checked_frontier(RECORDS, 2, "m")
    with pytest.raises(report.ConfigError, match="over = 'nope'"):
        report.checked_frontier(RECORDS, 0.5, "nope")
    assert report.checked_frontier(RECORDS, 0.5, "m") == report.frontier(RECORDS)


def _grid(**fields):
    base = {f: 0 for f in report.CELL_FIELDS} | {"n": 20, "k": 3, "s": 0, "target": "parity",
                                                 "inputs": "boolean", "terms": None,
                                                 "coefs": None, "degree": None}
    return [base | fields | {"init": init, "s": s, "width": w, "m": m, "p": w * m / 1000}
            for init, s in (("dense", 0), ("sparse", 2)) for w in (8, 16) for m in (10, 40)]


def _titles(monkeypatch):
    """{file name: its figure's title} of every figure saved from now on."""
    titles = {}
    save = files.save_figure

    def save_figure(fig, path, **kw):
        titles[Path(path).name] = fig.axes[0].get_title()
        return save(fig, path, **kw)

    monkeypatch.setattr(files, "save_figure", save_figure)
    return titles


def test_heatmaps_write_one_png_per_init(tmp_path, monkeypatch):
    titles = _titles(monkeypatch)
    paths = report.heatmaps(_grid(), tmp_path)
    assert [p.name for p in paths] == ["heatmap_dense.png", "heatmap_sparse-s2.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    assert titles["heatmap_dense.png"] == "success probability, (20,3)-parity, dense"
    # plain settings of other varying fields name the files, as they always did
    paths = report.heatmaps(_grid() + _grid(n=30, lr=0.5), tmp_path / "more")
    assert [p.name for p in paths] == ["heatmap_dense_n20_lr0.png", "heatmap_dense_n30_lr0.5.png",
                                       "heatmap_sparse-s2_n20_lr0.png",
                                       "heatmap_sparse-s2_n30_lr0.5.png"]
    assert titles["heatmap_dense_n30_lr0.5.png"] == (
        "success probability, (30,3)-parity, dense\nn=30, lr=0.5")


def test_heatmaps_of_a_long_polynomial_beside_another_target(tmp_path, monkeypatch):
    # issue 28 item 10: names made of every varying value ("File name too long" after the
    # first figure was written) and titles that said parity whatever the target
    titles = _titles(monkeypatch)
    terms = tuple((a, b) for a in range(1, 7) for b in range(1, 6))  # 30 terms
    records = _grid(target="majority") + _grid(target="polynomial", terms=terms,
                                               coefs=(1.0,) * 30)
    paths = report.heatmaps(records, tmp_path)
    assert [p.name for p in paths] == ["heatmap_dense_1.png", "heatmap_dense_2.png",
                                       "heatmap_sparse-s2_1.png", "heatmap_sparse-s2_2.png",
                                       "heatmaps.txt"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths[:-1])
    listing = paths[-1].read_text().splitlines()
    assert listing[0] == "heatmap_dense_1.png: target='majority', terms=None, coefs=None"
    assert listing[1].startswith("heatmap_dense_2.png: target='polynomial', terms=((1, 1), ")
    assert str(terms) in listing[1] and len(listing) == 4
    assert titles["heatmap_dense_1.png"].startswith("success probability, (20,3)-majority, dense\n")
    title = titles["heatmap_sparse-s2_2.png"]
    assert title.startswith(
        "success probability, (20,3)-polynomial (30 terms) (30 coefs), sparse-s2\n")
    assert len(title) < 200


def test_task_title_names_the_target():
    r = {"n": 20, "k": 3}
    assert report.task_title(r) == "(20,3)-parity"
    assert report.task_title(r | {"target": "hermite", "degree": 3, "inputs": "gaussian"}) == (
        "(20,3)-hermite degree=3 (gaussian)")
    assert report.task_title(r | {"target": "polynomial", "terms": ((1,), (1, 2, 3))}) == (
        "(20,3)-polynomial (2 terms)")
