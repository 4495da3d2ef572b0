"""Text output, in one place: plain-text and markdown tables, CSV, number formats, init labels,
one-line error text.

Tables come back as a list of lines (``"\\n".join`` them to print); ``cells_table`` and
``csv_text`` return the whole text. A table's rows are dicts (a column's value is
``row.get(col)``) or sequences (one value per column, in order), each value formatted by ``fmt``
(strings pass through as they are).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence

from parity_jax import reduce

Row = Mapping | Sequence


def format_value(v, *, keep_whole: bool = True) -> str:
    """One table cell: None -> ``-``, a float to 3 significant digits, anything else ``str``.

    ``keep_whole``: a whole float of at least 1 is written in full (4700.0 -> ``4700``, not
    ``4.7e+03``), as the plain-text tables do; the markdown reports pass False."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if keep_whole and v.is_integer() and abs(v) >= 1:
            return f"{v:g}"
        return f"{v:.3g}"
    return str(v)


def format_si(v: float | None, digits: int = 3) -> str:
    """A rate with a k / M suffix to ``digits`` significant digits (1234567 -> ``1.23M``);
    None -> ``-``."""
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.{digits}g}M"
    if v >= 1e3:
        return f"{v / 1e3:.{digits}g}k"
    return f"{v:.{digits}g}"


def size(n: float) -> str:
    """Bytes as a memory budget reads: ``1.25 GiB`` from a quarter GiB up, else ``12.5 MiB``,
    ``3.0 KiB`` or ``512 B`` (never "0.00 GiB" for a small one)."""
    for scale, unit, digits in ((2**28, "GiB", 2), (2**20, "MiB", 1), (2**10, "KiB", 1)):
        if n >= scale:
            return f"{n / (2**30 if unit == 'GiB' else scale):.{digits}f} {unit}"
    return f"{n:.0f} B"


def init_label(record: Mapping, *, slug: bool = False) -> str:
    """A cell's init: ``dense`` or ``sparse s=2``; ``slug``: ``sparse-s2`` (file names, plot
    panels)."""
    if record["init"] == "dense":
        return record["init"]
    return f"sparse-s{record['s']}" if slug else f"sparse s={record['s']}"


def _cells(row: Row, cols: Sequence[str], fmt: Callable[[object], str]) -> list[str]:
    if isinstance(row, Mapping):
        return [fmt(row.get(c)) for c in cols]
    return [fmt(v) for v in row]


def text_table(rows: Sequence[Row], cols: Sequence[str],
               fmt: Callable[[object], str] = format_value) -> list[str]:
    """A plain-text table: the header, then one line per row; every column right-aligned to
    its widest entry, columns two spaces apart."""
    cells = [_cells(r, cols, fmt) for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(cols)]
    return ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True))
            for row in [list(cols), *cells]]


def _markdown_value(v) -> str:
    return format_value(v, keep_whole=False)


def markdown_table(rows: Sequence[Row], cols: Sequence[str],
                   fmt: Callable[[object], str] = _markdown_value,
                   align: str | None = None) -> list[str]:
    """A markdown table: ``| a | b |`` lines under the ``cols`` header. ``align``: one letter
    per column, ``l`` (``---``) or ``r`` (``---:``); default all ``l``. A sequence row shorter
    than ``cols`` ends in empty cells. The default ``fmt`` writes floats to 3 significant
    digits (``format_value(v, keep_whole=False)``)."""
    n = len(cols)
    align = align or "l" * n
    if len(align) != n or set(align) - {"l", "r"}:
        raise ValueError(f"align = {align!r}: must be {n} letters l or r")

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |" + " |" * (n - len(cells))

    return [line(list(cols)), "|" + "".join("---:|" if a == "r" else "---|" for a in align),
            *(line(_cells(r, cols, fmt)) for r in rows)]


def csv_text(records: Sequence[Mapping]) -> str:
    """The records as CSV: a header of the first record's keys, one line per record."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(records[0]) if records else ["cell"])
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def cells_table(records: Sequence[Mapping], target: float = 0.5) -> str:
    """Cell records (``Results.cells()``) as a plain-text table -- the settings that vary, then
    trials, successes, p, the 95% interval and the median first hit -- followed by the
    frontier: per setting of the other varying fields, the smallest m with p >= ``target``."""
    varying = [f for f in reduce.CELL_FIELDS if len({r[f] for r in records}) > 1]
    keys = varying or ["width", "m", "init"]
    # what success measured, where a real-valued target's normalized MSE is among it
    metric = ["metric"] if any(r.get("metric", "error") != "error" for r in records) else []
    cols = keys + metric + ["trials", "successes", "p", "95% CI", "median_first_hit",
                            "TFLOP to hit"]
    rows = [[*(r[k] for k in keys + metric), str(r["trials"]), str(r["successes"]),
             "-" if r["p"] is None else f"{r['p']:.2f}",
             f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]", r["median_first_hit"],
             _tflop(r.get("median_compute"))]
            for r in records]
    lines = text_table(rows, cols)
    fkeys = [k for k in keys if k != "m"]
    if fkeys and "m" in keys:
        lines += ["", f"frontier: smallest m with p >= {target:g}"]
        for f in reduce.frontier(list(records), target):
            label = "  ".join(f"{k}={format_value(f[k])}" for k in fkeys)
            lines.append(f"  {label}:  m = {format_value(f['m'])}")
    front = reduce.compute_frontier(list(records), target) if "m" in keys else []
    if front:
        lines += ["", f"data-compute frontier (p >= {target:g}): no other cell has less m and "
                      "fewer TFLOP to hit"]
        for r in front:
            label = "  ".join(f"{k}={format_value(r[k])}" for k in keys if k != "m")
            lines.append(f"  m = {format_value(r['m'])}:  {_tflop(r['median_compute'])} TFLOP"
                         f"  ({label})")
    return "\n".join(lines)


def _tflop(flops: float | None) -> str:
    """FLOPs as TFLOP, three significant digits ("-": none)."""
    return "-" if flops is None else f"{flops / 1e12:.3g}"
