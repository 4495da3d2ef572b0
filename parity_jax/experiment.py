"""What the scripts in ``experiments/`` share: their command line, claim checks, report.md.

Each script is one study (or two) plus a report: ``python experiments/NAME.py [--full]
[--config F] [--out DIR]`` runs its CPU-sized config (or the paper-sized ``NAME_full.toml``),
resumes when DIR already holds part of it, and writes PNGs and ``report.md`` into DIR.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from parity_jax import files, lock, reduce, render
from parity_jax.errors import ConfigError, StoreError, one_line


def main(doc: str, here: Path, name: str, body: Callable[..., dict]) -> int:
    """The shared command line: parses --config/--full/--out, calls ``body(config, out)``,
    turns bad input into one ``error:`` line and exit status 2."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--config", help=f"study TOML (default: {name}.toml)")
    parser.add_argument("--full", action="store_true",
                        help=f"the paper-sized config ({name}_full.toml): hours on a GPU")
    parser.add_argument("--out", help=f"output directory (default: runs/{name}[-full])")
    args = parser.parse_args()
    config = Path(args.config) if args.config else here / (
        f"{name}_full.toml" if args.full else f"{name}.toml")
    out = Path(args.out or f"runs/{name}{'-full' if args.full else ''}")
    start = time.perf_counter()
    try:
        lock.check_writable_dir(out)  # before any work: a run would refuse it only later
        result = body(config, out)
    except (ConfigError, StoreError) as e:
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # runner.Interrupted, or Ctrl-C mid-call: parts are stored
        print(f"\n{e or 'interrupted'}; run the same command again to resume",
              file=sys.stderr)
        return 130
    print(f"\n{out / 'report.md'}; wall time {time.perf_counter() - start:.1f} s "
          "(this invocation)")
    return 0 if result is not None else 1


def write_report(out: Path, title: str, sections: list[tuple[str, list[str]]],
                 images: list[Path] = ()) -> Path:
    """report.md: a title, the figures, then (heading, lines) sections."""
    lines = [f"# {title}", ""]
    lines += [f"![{p.stem}]({p.name})" for p in images]
    for heading, body in sections:
        lines += ["", f"## {heading}", "", *body]
    path = Path(out) / "report.md"
    return files.write_text(path, "\n".join(lines) + "\n")


def with_time(results, target: float = 0.5) -> list[dict]:
    """``results.cells()`` plus ``steps_to_target``: the smallest step by which a ``target``
    fraction of the cell's trials had succeeded (``reduce.steps_to_target``)."""
    hits = defaultdict(list)
    for t in results.trials():
        hits[t["cell"]].append(t["first_hit"])
    cells = results.cells()
    for c in cells:
        c["steps_to_target"] = reduce.steps_to_target(hits[c["cell"]], c["trials"], target)
    return cells


def decreases(records: list[dict], along: str, within: tuple[str, ...]) -> tuple[int, list]:
    """Steps where p goes down as ``along`` goes up, within each setting of ``within``.

    Returns (number of adjacent pairs compared, [(setting, a, b, p_a, p_b, significant)]);
    significant = the two Wilson intervals do not overlap.
    """
    groups = defaultdict(list)
    for r in records:
        if r["p"] is not None:
            groups[tuple(r[f] for f in within)].append(r)
    pairs, found = 0, []
    for key, rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        rs.sort(key=lambda r: r[along])
        for a, b in zip(rs, rs[1:], strict=False):
            pairs += 1
            if b["p"] < a["p"]:
                found.append((dict(zip(within, key, strict=True)), a[along], b[along], a["p"],
                              b["p"], b["ci_high"] < a["ci_low"]))
    return pairs, found


def table(records: list[dict], cols: list[str]) -> list[str]:
    """A markdown table of ``cols`` of the records (``render.markdown_table``; kept for
    experiments/tabular.py)."""
    return render.markdown_table(records, cols)
