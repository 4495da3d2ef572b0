"""render: the tables, CSV, number formats and init labels every report shares, byte for byte
(what a parity report prints: tests/test_report_parity.py)."""


import pytest

from parity_jax import errors, render

pytestmark = pytest.mark.quick  # pure Python: make test-quick


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
    records = [{"init": "dense", "s": None, "p": 0.0625, "median_first_hit": 4700.0},
               {"init": "sparse", "s": 2, "p": 0.125, "median_first_hit": 2000.0}]
    assert render.markdown_table(records, ["init", "s", "p", "median_first_hit", "nope"]) == [
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
