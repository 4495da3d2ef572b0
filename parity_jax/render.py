"""Text output, in one place: plain-text and markdown tables, CSV, number formats, sizes, init
labels. It knows no kind of study: what a kind's table holds is its report's
(``kinds/<kind>/report.py``).

Tables come back as a list of lines (``"\\n".join`` them to print); ``csv_text`` returns the
whole text. A table's rows are dicts (a column's value is ``row.get(col)``) or sequences (one
value per column, in order), each value formatted by ``fmt`` (strings pass through as they are).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence

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
