"""Command line: ``parity-jax run | report | plot | bench``.

Bad input exits with status 2 and one line ``error: ...`` naming the field and what is allowed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from pathlib import Path

from parity_jax import reduce
from parity_jax.config import DEFAULT_STUDY, ConfigError, Study


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise ConfigError(f"arguments: {message}")


def _parse_bytes(text: str) -> int:
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("b")
    unit = t[-1] if t and t[-1] in "kmg" else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        value = -1
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"--memory-budget = {text!r}: must be a positive size like 8G or 512M")
    return int(value * units[unit])


def _format_value(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if not v.is_integer() or abs(v) < 1 else f"{v:g}"
    return str(v)


def table(records: list[dict], target: float = 0.5) -> str:
    """Plain-text table of cell records (settings that vary, then the statistics) + frontier."""
    varying = [f for f in reduce.CELL_FIELDS if len({r[f] for r in records}) > 1]
    keys = varying or ["width", "m", "init"]
    cols = keys + ["trials", "successes", "p", "95% CI", "median_first_hit"]
    rows = []
    for r in records:
        ci = f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        p = "-" if r["p"] is None else f"{r['p']:.2f}"
        rows.append([_format_value(r[k]) for k in keys]
                    + [str(r["trials"]), str(r["successes"]), p, ci,
                       _format_value(r["median_first_hit"])])
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    front = reduce.frontier(records, target)
    fkeys = [k for k in keys if k != "m"]
    if fkeys and "m" in keys:
        lines.append("")
        lines.append(f"frontier: smallest m with p >= {target:g}")
        for f in front:
            label = "  ".join(f"{k}={_format_value(f[k])}" for k in fkeys)
            lines.append(f"  {label}:  m = {_format_value(f['m'])}")
    return "\n".join(lines)


def to_csv(records: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(records[0]) if records else ["cell"])
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def _target(value: float) -> float:
    if not 0 < value <= 1:
        raise ConfigError(f"--target = {value}: must be a number in (0, 1]")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="parity-jax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run (or resume) a study")
    p_run.add_argument("config", nargs="?", help="study TOML (default: the built-in fig1-cpu)")
    p_run.add_argument("--out", help="output directory (default: runs/<study name>)")
    p_run.add_argument("--memory-budget", help="size batches to this many bytes, e.g. 8G")
    p_rep = sub.add_parser("report", help="summarise a results directory")
    p_rep.add_argument("dir")
    p_rep.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p_rep.add_argument("--target", type=float, default=0.5, help="frontier target p")
    p_plot = sub.add_parser("plot", help="write success heatmaps (PNG) into the directory")
    p_plot.add_argument("dir")
    p_plot.add_argument("--target", type=float, default=0.5, help="frontier target p")

    p_bench = sub.add_parser("bench", help="throughput benchmark (engine vs GEMM peak, PyTorch)")
    p_bench.add_argument("--widths", default="10,100,1000,10000", help="comma-separated")
    p_bench.add_argument("--trials", default="1,100,1000,10000", help="comma-separated")
    p_bench.add_argument("--vary", default="init,both", help="comma-separated: init, both")
    p_bench.add_argument("--repeats", type=int, default=3, help="timed repeats (median)")
    p_bench.add_argument("--max-neurons", type=int, default=10_000_000,
                         help="skip workloads with trials x width above this")
    p_bench.add_argument("--no-baselines", action="store_true",
                         help="skip the PyTorch and per-trial-jit baselines")
    p_bench.add_argument("--json", help="write the full result as JSON here")
    p_bench.add_argument("--markdown", help="write the markdown table here")

    try:
        args = parser.parse_args(argv)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "plot":
            return _cmd_plot(args)
        if args.command == "bench":
            return _cmd_bench(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished batches are stored; run the same command again to "
              "resume", file=sys.stderr)
        return 130
    return 0


def _cmd_run(args) -> int:
    from parity_jax.runner import run  # imports jax; keep `--help` and errors fast

    study = Study.from_toml(args.config) if args.config else DEFAULT_STUDY
    budget = _parse_bytes(args.memory_budget) if args.memory_budget else None
    out = Path(args.out or Path("runs") / study.name)
    start = time.perf_counter()
    results = run(study, out, memory_budget=budget)
    wall = time.perf_counter() - start
    print(table(results.cells()))
    print(f"\n{len(results.trials())} trials in {out}/results.sqlite; "
          f"wall time {wall:.1f} s")
    return 0


def _cmd_report(args) -> int:
    from parity_jax.runner import Results

    records = Results(args.dir).cells()
    target = _target(args.target)
    if args.format == "json":
        print(json.dumps(records, indent=1))
    elif args.format == "csv":
        sys.stdout.write(to_csv(records))
    else:
        print(table(records, target))
    return 0


def _cmd_plot(args) -> int:
    from parity_jax import plots
    from parity_jax.runner import Results

    target = _target(args.target)
    for path in plots.heatmaps(Results(args.dir).cells(), args.dir, target):
        print(path)
    return 0


def _int_list(flag: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ConfigError(f"{flag} = {text!r}: must be comma-separated integers >= 1")
    return values


def _cmd_bench(args) -> int:
    widths = _int_list("--widths", args.widths)
    trials = _int_list("--trials", args.trials)
    varies = args.vary.split(",")
    if not varies or any(v not in ("init", "both") for v in varies):
        raise ConfigError(f"--vary = {args.vary!r}: allowed: init, both (comma-separated)")
    if args.repeats < 1:
        raise ConfigError(f"--repeats = {args.repeats}: must be an integer >= 1")
    if args.max_neurons < 1:
        raise ConfigError(f"--max-neurons = {args.max_neurons}: must be an integer >= 1")
    from parity_jax import bench

    bench.MAX_NEURONS = args.max_neurons
    result = bench.run_bench(widths, trials, varies, args.repeats,
                             baselines=not args.no_baselines)
    text = bench.markdown(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
