"""render: the tables, CSV, number formats and init labels every report shares, byte for byte."""


import pytest

from parity_jax import errors, reduce, render


def _record(width, m, init, successes, first_hit):
    r = {"cell": 0, **{f: None for f in reduce.CELL_FIELDS}}
    r.update(n=50, k=3, width=width, depth=1, m=m, init=init,
             s=None if init == "dense" else 2, lr=0.1, wd=0.01, loss="hinge", steps=10000,
             batch=32, n_test=2000, eval_every=100,
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
# frontier added with the compute axis; the rest as before render existed).
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

data-compute frontier (p >= 0.5): no other cell has less m and fewer TFLOP to hit
  m = 1000:  0.0318 TFLOP  (width=1000  init=sparse  s=2)
  m = 2000:  0.000409 TFLOP  (width=10  init=dense  s=-)"""


def test_cells_table_settings_statistics_and_frontier():
    assert render.cells_table(RECORDS) == CELLS_TABLE


def test_cells_table_without_m_varying_has_no_frontier():
    assert render.cells_table(RECORDS[:2], 0.25) == (
        "  init  s  trials  successes     p        95% CI  median_first_hit  TFLOP to hit\n"
        " dense  -      16          1  0.06  [0.39, 0.82]              4700      0.000409\n"
        "sparse  2      16          2  0.12  [0.39, 0.82]              2000      0.000174")


def test_cells_table_frontier_target():
    lines = render.cells_table(RECORDS, target=0.6).splitlines()
    assert lines[-4:] == ["", "data-compute frontier (p >= 0.6): no other cell has less m and "
                          "fewer TFLOP to hit",
                          "  m = 1000:  0.0318 TFLOP  (width=1000  init=sparse  s=2)",
                          "  m = 2000:  0.0101 TFLOP  (width=1000  init=sparse  s=2)"]
    assert lines[-9:-4] == ["frontier: smallest m with p >= 0.6",
                          "  width=10  init=dense  s=-:  m = -",
                          "  width=10  init=sparse  s=2:  m = -",
                          "  width=1000  init=dense  s=-:  m = 1000",
                          "  width=1000  init=sparse  s=2:  m = 1000"]


def test_text_table_right_aligned_from_lists_or_dicts():
    expected = ["program  G x P  peak memory",
                "      0  4 x 2     55.7 MiB",
                "     10  1 x 1        1 GiB"]
    rows = [["0", "4 x 2", "55.7 MiB"], ["10", "1 x 1", "1 GiB"]]
    assert render.text_table(rows, ["program", "G x P", "peak memory"]) == expected
    dicts = [{"program": 0, "G x P": "4 x 2", "peak memory": "55.7 MiB"},
             {"program": 10, "G x P": "1 x 1", "peak memory": "1 GiB"}]
    assert render.text_table(dicts, ["program", "G x P", "peak memory"]) == expected
    assert render.text_table([], ["a", "bb"]) == ["a  bb"]


def test_markdown_table():
    assert render.markdown_table(RECORDS[:2], ["init", "s", "p", "median_first_hit", "nope"]) == [
        "| init | s | p | median_first_hit | nope |",
        "|---|---|---|---|---|",
        "| dense | - | 0.0625 | 4.7e+03 | - |",
        "| sparse | 2 | 0.125 | 2e+03 | - |"]


def test_markdown_table_alignment_short_rows_and_fmt():
    assert render.markdown_table([["a", 1.0, 2], ["skipped: b"]], ["x", "y", "z"], fmt=str,
                                 align="lrr") == [
        "| x | y | z |", "|---|---:|---:|", "| a | 1.0 | 2 |", "| skipped: b | | |"]
    with pytest.raises(ValueError, match="align"):
        render.markdown_table([], ["x", "y"], align="l")


def test_csv_text():
    assert render.csv_text([{"cell": 0, "p": 0.5, "s": None}, {"cell": 1, "p": 1.0, "s": 2}]) \
        == "cell,p,s\r\n0,0.5,\r\n1,1.0,2\r\n"
    assert render.csv_text([]) == "cell\r\n"


@pytest.mark.parametrize("value,text,short", [
    (None, "-", "-"), (4700.0, "4700", "4.7e+03"), (0.25, "0.25", "0.25"), (1.0, "1", "1"),
    (0.0, "0", "0"), (12345.678, "1.23e+04", "1.23e+04"), (1e7, "1e+07", "1e+07"),
    (3, "3", "3"), ("sparse", "sparse", "sparse"), (True, "True", "True")])
def test_format_value(value, text, short):
    assert render.format_value(value) == text
    assert render.format_value(value, keep_whole=False) == short


@pytest.mark.parametrize("value,text", [
    (None, "-"), (0.5, "0.5"), (999.4, "999"), (1234.0, "1.23k"), (199_000.0, "199k"),
    (19_900_000.0, "19.9M")])
def test_format_si(value, text):
    assert render.format_si(value) == text


def test_init_label():
    assert render.init_label({"init": "dense", "s": None}) == "dense"
    assert render.init_label({"init": "sparse", "s": 2}) == "sparse s=2"
    assert render.init_label({"init": "sparse", "s": 2}, slug=True) == "sparse-s2"
    assert render.init_label({"init": "dense", "s": 3}, slug=True) == "dense"


def test_one_line_escapes_line_breaks_and_control_characters():
    assert errors.one_line("bad\nname\t\x1b[31m.toml") == "bad\\nname\\t\\x1b[31m.toml"
    assert errors.one_line("données é ü 2.5 GiB") == "données é ü 2.5 GiB"


def test_sizes_print_in_units_that_show_them():
    from parity_jax import render

    assert [render.size(n) for n in (0, 1000, 1536, 3 << 20, 2**28, 10 * 2**30)] == [
        "0 B", "1000 B", "1.5 KiB", "3.0 MiB", "0.25 GiB", "10.00 GiB"]
