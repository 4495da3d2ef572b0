"""Command line: ``parity-jax run | plan | report | plot | merge | check | bench | doctor``.

Bad input exits with status 2 and one line ``error: ...`` naming the field and what is allowed.
A config's kind of study is the one that claims it (``kinds.for_config``): a config with a
``datasets`` key is a tabular study; any other, a parity study.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from parity_jax import _start, kinds, render
from parity_jax.errors import ConfigError, StoreError, one_line


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
    size = int(value * units[unit]) if math.isfinite(value) and value > 0 else 0
    if size < 1:  # zero, negative, or under a byte once rounded ("0.1")
        raise ConfigError(f"--memory-budget = {text!r}: must be a positive size of at least "
                          "one byte, like 8G or 512M")
    return size


def _target(value: float) -> float:
    if not 0 < value <= 1:
        raise ConfigError(f"--target = {value}: must be a number in (0, 1]")
    return value


# what each command imports (JAX among it): imported at its start, with Ctrl-C deferred
_IMPORTS = {"run": ["parity_jax.runner"], "plan": ["parity_jax.runner"],
            "report": ["parity_jax.results"], "plot": ["parity_jax.results", "parity_jax.plots"],
            "check": ["parity_jax.check"], "bench": ["parity_jax.bench"],
            "doctor": ["parity_jax.doctor"]}


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="parity-jax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run (or resume) a study")
    p_run.add_argument("config", nargs="?", help="study TOML (default: the built-in fig1-cpu)")
    p_run.add_argument("--out", help="output directory (default: runs/<study name>; a name "
                       "with '/' needs --out)")
    p_run.add_argument("--memory-budget", help="size batches to this many bytes, e.g. 8G")
    p_run.add_argument("--devices", type=int, help="devices sharing each batch (default: all)")
    p_run.add_argument("--shard", help="run only shard i of N (i/N, e.g. 0/4) of the trials")
    p_run.add_argument("--coordinator", help="multi-host: address:port of process 0 "
                       "(or JAX's usual environment variables)")
    p_run.add_argument("--num-processes", type=int, help="multi-host: processes in the job")
    p_run.add_argument("--process-id", type=int, help="multi-host: this process's index")
    p_plan = sub.add_parser("plan", help="print a study's batches, programs, memory and FLOPs")
    p_plan.add_argument("config", nargs="?", help="study TOML (default: the built-in fig1-cpu)")
    p_plan.add_argument("--memory-budget", help="size batches to this many bytes, e.g. 8G")
    p_plan.add_argument("--devices", type=int, help="devices sharing each batch (default: all)")
    p_plan.add_argument("--shard", help="plan only shard i of N (i/N)")
    p_rep = sub.add_parser("report", help="summarise a results directory")
    p_rep.add_argument("dir")
    p_rep.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p_rep.add_argument("--target", type=float, default=0.5, help="frontier target p")
    p_plot = sub.add_parser("plot", help="write success heatmaps (PNG) into the directory")
    p_plot.add_argument("dir")
    p_plot.add_argument("--target", type=float, default=0.5, help="frontier target p")

    p_merge = sub.add_parser("merge", help="combine results directories of one study")
    p_merge.add_argument("inputs", nargs="+", metavar="DIR")
    p_merge.add_argument("--out", required=True, help="the merged results directory")
    p_check = sub.add_parser("check", help="integrity check of a results directory "
                             "(exit 0: sound, 1: problems found)")
    p_check.add_argument("dir")

    p_bench = sub.add_parser("bench", help="throughput benchmark (engine vs GEMM peak, PyTorch)")
    p_bench.add_argument("--widths", default="10,100,1000,10000", help="comma-separated")
    p_bench.add_argument("--trials", default="1,100,1000,10000", help="comma-separated")
    p_bench.add_argument("--vary", default="init,both", help="comma-separated: init, both")
    p_bench.add_argument("--repeats", type=int, default=3, help="timed repeats (median)")
    p_bench.add_argument("--max-neurons", type=int, default=None,
                         help="skip workloads with trials x width above this (default: "
                              "10,000,000)")
    p_bench.add_argument("--no-baselines", action="store_true",
                         help="skip the PyTorch and per-trial-jit baselines")
    p_bench.add_argument("--json", help="write the full result as JSON here")
    p_bench.add_argument("--markdown", help="write the markdown table here")
    p_doc = sub.add_parser("doctor", help="check what this machine gives: device, float32 "
                           "exactness, batch invariance, kernel vs XLA step, compile cache, "
                           "throughput (exit 0: all passed, 1: a check failed)")
    p_doc.add_argument("--budget", type=float, default=300.0,
                       help="seconds for all checks (default 300); checks left over time "
                            "report 'timeout'")
    p_doc.add_argument("--json", help="write the full result as JSON here")

    try:
        args = parser.parse_args(argv)
        with _start.sigint_deferred() as interrupted:  # Ctrl-C while JAX imports: see _start
            for module in _IMPORTS.get(args.command, ()):
                importlib.import_module(module)
        if interrupted:
            return _start.interrupted()
        commands = {"run": _cmd_run, "plan": _cmd_plan, "merge": _cmd_merge,
                    "check": _cmd_check, "report": _cmd_report, "plot": _cmd_plot,
                    "bench": _cmd_bench, "doctor": _cmd_doctor}
        return commands[args.command](args)
    except (ConfigError, StoreError) as e:  # bad input; an output that cannot hold the study
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; what was stored is kept (a run resumes with the same command)",
              file=sys.stderr)
        return 130


def _cmd_run(args) -> int:
    # imports jax: keep `--help` and errors fast
    from parity_jax.multihost import init_distributed
    from parity_jax.runner import run

    study = kinds.load_study(args.config) if args.config else kinds.default_study()
    budget = _parse_bytes(args.memory_budget) if args.memory_budget else None
    out = Path(args.out) if args.out else _default_out(study.name)
    init_distributed(args.coordinator, args.num_processes, args.process_id)
    start = time.perf_counter()
    try:
        results = run(study, out, memory_budget=budget, n_devices=args.devices,
                      shard=args.shard)
    except KeyboardInterrupt as e:
        print(f"\n{str(e) or 'interrupted'}; finished batches are kept: run the same "
              "command again to resume", file=sys.stderr)
        return 130
    if results is None:  # not process 0 of a multi-host job: process 0 reports
        return 0
    wall = time.perf_counter() - start
    print(results.summary_table())
    c = results.compiled
    print(f"\n{len(results.trials())} trials in {out}/results.sqlite; "
          f"wall time {wall:.1f} s; {c['programs']} program(s), compile {c['seconds']:.1f} s "
          f"({c['cache_hits']} from the compile cache)")
    return 0


def _default_out(name: str) -> Path:
    """``runs/<name>``: one directory right under ``runs/``, or a ConfigError (a name is a
    label, a path only here: a name like "../x" or "/abs" would write elsewhere)."""
    if name in (".", "..") or any(sep and sep in name for sep in (os.sep, os.altsep)):
        raise ConfigError(f"name = {name!r}: cannot name a directory under runs/ (it must not "
                          "contain '/' nor be '.' or '..'); rename the study or give --out")
    return Path("runs") / name


def _cmd_plan(args) -> int:
    from parity_jax import costs, devices, race
    from parity_jax.runner import prepare

    study = kinds.load_study(args.config) if args.config else kinds.default_study()
    budget = _parse_bytes(args.memory_budget) if args.memory_budget else None
    prep = prepare(study, memory_budget=budget, n_devices=args.devices, shard=args.shard)
    p, n_devices = prep.units, prep.n_devices
    budget = prep.settings.get("memory_budget") or costs.default_memory_budget()
    progs = p.programs()
    where = devices.verdicts_file()
    print(f"study {study.name!r}: {len(p.cells)} cells x {study.seeds} seeds; shard "
          f"{prep.shard_text}: {p.n_trials} trials; memory budget {render.size(budget)}, "
          f"{n_devices} device(s)")
    cols = ["program", "task", "n", "depth", "W", "M", "G x P", "chunk", "step", "engine",
            "precision", "batches", "trials", "peak memory", "TFLOP (max)"]
    rows = []
    for i, r in enumerate(progs):
        shape = r["shape"]
        step = shape.step + (f" ({shape.layout})" if shape.kernel == "off" else "")
        rows.append([str(i), shape.task.label, str(shape.task.features), str(shape.depth),
                     str(shape.W), str(shape.task.train_rows), f"{shape.G} x {shape.P}",
                     str(shape.chunk), step, race.planned(shape, where), shape.precision,
                     str(r["batches"]),
                     str(r["trials"]), render.size(r["peak_bytes"]),
                     f"{r['flops'] / 1e12:.3g}"])
    print("\n".join(render.text_table(rows, cols)))
    peak = max((r["peak_bytes"] for r in progs), default=0)
    print(f"\n{len(progs)} compiled program(s), {len(p.batches)} batches, estimated peak "
          f"{render.size(peak)} (one batch at a time), at most "
          f"{sum(r['flops'] for r in progs) / 1e12:.3g} TFLOP of training")
    first = prep.kind.wanted(study, {})
    if first is not None:  # an adaptive study: rounds decided by its outcomes
        print(f"adaptive: the first round runs {len(first.want)} trials "
              f"({len(prep.work.select(p, first.want))} batches); at most {p.n_trials} "
              "(every seed of every cell), fewer as cells settle")
    return 0


def _cmd_merge(args) -> int:
    from parity_jax import merge

    written, duplicates = merge.merge(args.inputs, args.out)
    print(f"merged {len(args.inputs)} store(s) into {args.out}: {written} trials written, "
          f"{duplicates} identical duplicates skipped")
    return 0


def _cmd_check(args) -> int:
    """Exit 0: a sound store; 1: problems (a store SQLite cannot read is one); 2: no store."""
    from parity_jax import check
    from parity_jax.errors import CorruptStore

    problems = []
    try:
        expected = check.expected_trials(args.dir)
    except CorruptStore:  # its meta: listed with the rest by check.check
        expected = None
    except ConfigError as e:  # the stored plan settings cannot be planned again
        expected, problems = None, [f"meta: the stored plan settings cannot be replanned "
                                    f"({e})"]
    more, summary = check.check(args.dir, expected)
    problems += more
    for line in problems[:50]:
        print(f"problem: {line}")
    if len(problems) > 50:
        print(f"... and {len(problems) - 50} more")
    if summary:
        state = "complete" if summary["complete"] else "incomplete (resume to finish)"
        print(f"{args.dir}: study {summary['study']!r}, {summary['trials']} of "
              f"{summary['expected']} trials stored, {state}; "
              f"{'no problems' if not problems else f'{len(problems)} problem(s)'}")
    elif problems:
        print(f"{args.dir}: {len(problems)} problem(s); its trials cannot be checked")
    return 1 if problems else 0


def _cmd_report(args) -> int:
    from parity_jax.results import Results

    results = Results(args.dir)
    records = results.cells()
    target = _target(args.target)
    if args.format == "json":
        print(json.dumps(records, indent=1))
    elif args.format == "csv":
        sys.stdout.write(render.csv_text(records))
    else:
        print(results.summary_table(target))
        engines = sorted(results.engines().values(), key=lambda e: e.get("program", ""))
        if engines:
            print("\nengine per program (the first batch's; trials of one engine equal "
                  "another's within float32 rounding):")
            print("\n".join(render.text_table([[e["engine"], str(e.get("program", "?"))]
                                                for e in engines], ["engine", "program"])))
    return 0


def _cmd_plot(args) -> int:
    from parity_jax.results import Results

    target = _target(args.target)
    results = Results(args.dir)
    for path in results.study_kind.plot(results.cells(), args.dir, target):
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
    if args.max_neurons is not None and args.max_neurons < 1:
        raise ConfigError(f"--max-neurons = {args.max_neurons}: must be an integer >= 1")
    outputs = [_writable_file(flag, path) for flag, path in
               (("--json", args.json), ("--markdown", args.markdown)) if path]
    if len(set(outputs)) < len(outputs):
        raise ConfigError(f"--markdown = {args.markdown!r}: the same file as --json")
    from parity_jax import bench

    # each workload is a study: its sizes within the engine's limits, checked before any timing
    for flag, text, values, study_for in (
            ("--widths", args.widths, widths, lambda v: bench.study_for(v, 1, varies[0], 1)),
            ("--trials", args.trials, trials, lambda v: bench.study_for(1, v, varies[0], 1))):
        for v in values:
            try:
                study_for(v).validate()
            except ConfigError as e:
                raise ConfigError(f"{flag} = {text!r}: {v} is past the engine's limits for the "
                                  f"benchmark's workload ({e})") from None
    return bench.main(widths, trials, varies, args.repeats, baselines=not args.no_baselines,
                      max_neurons=args.max_neurons or bench.MAX_NEURONS, json_path=args.json,
                      markdown_path=args.markdown)


def _cmd_doctor(args) -> int:
    """Exit 0: every check passed (or had nothing to check); 1: a check failed or ran out of
    the budget; 130: Ctrl-C (``doctor.main``)."""
    from parity_jax import doctor, settings

    settings.budget(args.budget)
    if args.json:
        _writable_file("--json", args.json)
    return doctor.main(args.budget, args.json)


def _writable_file(flag: str, path: str) -> Path:
    """``path`` resolved, once it is known that a file can be written there (its directory
    exists and is writable; it is absent or a regular file, not a link): checked before any
    work."""
    p = Path(path)
    if p.is_symlink():
        raise ConfigError(f"{flag} = {path!r}: is a symbolic link; it is never written "
                          "through (remove the link, or give another file name)")
    if p.is_dir():
        raise ConfigError(f"{flag} = {path!r}: is a directory; give a file name")
    if p.exists() and not p.is_file():  # a device such as /dev/full, a FIFO
        raise ConfigError(f"{flag} = {path!r}: is not a regular file; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{flag} = {path!r}: no such directory {str(parent)!r}")
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(f"{flag} = {path!r}: the file is not writable")
    try:  # the directory must take a new file (a read-only file system refuses even root)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise ConfigError(f"{flag} = {path!r}: cannot write in {str(parent)!r} "
                          f"({e.strerror})") from None
    return p.resolve()


if __name__ == "__main__":
    sys.exit(main())
