"""Issue 22's identity check: the stored outcomes of six studies, run by two checkouts of the
code on one machine, compared row by row.

    python benchmarks/same_outcomes.py --checkout /work/wt-old --out /work/identity/old
    python benchmarks/same_outcomes.py --checkout /work/main --out /work/identity/new
    python benchmarks/same_outcomes.py --compare /work/identity/old /work/identity/new

Run mode: each study goes through the checkout's CLI (``run``, and ``merge`` for the sharded
one) in its own process with ``PYTHONPATH=CHECKOUT``, ``PARITY_JAX_CACHE=off``, every other
``PARITY_JAX_*`` variable unset and a fixed ``--memory-budget``; then every row of every table
of its results.sqlite but ``meta`` is dumped, ordered by the primary key, blobs as hex, to
``OUT/<study>.json``, with meta's entries but ``plan`` (which names paths and the budget) and
the engine records (``engine <program>``, in newer stores only): the study, its fingerprint,
the data's hashes. Only the CLI and the store's file format are used,
never the package's Python API, so a checkout whose modules were renamed runs the same.
Compare mode prints, per study and table, the rows compared and the rows that differ (with the
first difference), and the meta entries that differ; exit 1 if any differs or is missing.
``--redump DIR`` rewrites an out dir's dumps from its stores (e.g. after this script changed).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "identity"
CLI = "import sys; from parity_jax.cli import main; sys.exit(main(sys.argv[1:]))"
BUDGET = "4G"
# study name -> (config or None for the built-in fig1-cpu, memory budget, shards)
STUDIES: dict[str, tuple[str | None, str, int]] = {
    "online": ("online.toml", BUDGET, 1),
    "init_curves": ("init_curves.toml", BUDGET, 1),
    "depth2": ("depth2.toml", BUDGET, 1),
    # a small budget: the width-300 program runs as many one-group batches
    "sharded": ("sharded.toml", "8M", 2),
    "tabular": ("tabular.toml", BUDGET, 1),
    "default": (None, BUDGET, 1),
}


def _env(checkout: Path) -> dict:
    """The environment of a run: the checkout on the path, no compile cache, no other
    PARITY_JAX_* setting (so both checkouts see the same)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARITY_JAX_")}
    env.update(PYTHONPATH=str(checkout), PARITY_JAX_CACHE="off")
    return env


def _cli(python: str, checkout: Path, args: list[str], log: Path) -> float:
    """Runs one CLI command (output to ``log``); returns its wall time; raises on failure."""
    start = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run([python, "-c", CLI, *args], env=_env(checkout), cwd=log.parent,
                            stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    if rc != 0:
        raise RuntimeError(f"{' '.join(args)} exited {rc} (see {log})")
    return wall


def run_study(name: str, python: str, checkout: Path, out: Path) -> dict:
    """Runs one study into ``out/name``; returns the wall time of each command."""
    config, budget, shards = STUDIES[name]
    d = out / name
    d.mkdir(parents=True)
    cfg = [str(CONFIGS / config)] if config else []
    walls = {}
    if shards == 1:
        walls["run"] = _cli(python, checkout, ["run", *cfg, "--out", str(d / "run"),
                                               "--memory-budget", budget], d / "run.log")
        store = _store_of(name, out)
    else:
        parts = []
        for i in range(shards):
            part = d / f"shard{i}"
            walls[f"shard {i}/{shards}"] = _cli(
                python, checkout, ["run", *cfg, "--out", str(part), "--memory-budget", budget,
                                   "--shard", f"{i}/{shards}"], d / f"shard{i}.log")
            parts.append(str(part))
        store = _store_of(name, out)
        walls["merge"] = _cli(python, checkout, ["merge", "--out", str(store), *parts],
                              d / "merge.log")
    write_dump(name, store, out)
    return walls


def _store_of(name: str, out: Path) -> Path:
    """The directory of study ``name``'s (merged) store under ``out``."""
    return out / name / ("merged" if STUDIES[name][2] > 1 else "run")


def write_dump(name: str, store: Path, out: Path) -> None:
    """Dumps ``store``'s results.sqlite to ``out/name.json``."""
    dump = dump_store(store / "results.sqlite")
    (out / f"{name}.json").write_text(json.dumps(dump, indent=0) + "\n")


def _value(v):
    """A stored value as JSON: blobs as hex (floats keep their repr, exact to the bit)."""
    return {"hex": v.hex()} if isinstance(v, bytes) else v


def dump_store(path: Path) -> dict:
    """Every row of every table but meta, ordered by its primary key."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'meta' "
            "ORDER BY name")]
        tables = {}
        for t in names:
            info = con.execute(f'PRAGMA table_info("{t}")').fetchall()
            columns = [c[1] for c in info]
            key = [c[1] for c in sorted((c for c in info if c[5]), key=lambda c: c[5])]
            order = ", ".join(f'"{c}"' for c in key) or "rowid"
            rows = [[_value(v) for v in r]
                    for r in con.execute(f'SELECT * FROM "{t}" ORDER BY {order}')]
            tables[t] = {"columns": columns, "key": key, "rows": rows}
        # meta but "plan" (which names paths and the budget): the study, its fingerprint, ...
        # and but the engine records (which engine ran each program: newer stores only)
        meta = dict(con.execute("SELECT key, value FROM meta WHERE key != 'plan' AND key NOT "
                                "LIKE 'engine %' ORDER BY key"))
    finally:
        con.close()
    return {"store": str(path), "meta": meta, "tables": tables}


def _canon(v) -> str:
    """A value's exact text (NaN equals NaN, -0.0 differs from 0.0)."""
    return json.dumps(v, sort_keys=True)


def _difference(u, w) -> str:
    """Two differing values, shortly: a blob's first differing byte, else both values."""
    if isinstance(u, dict) and isinstance(w, dict):
        x, y = bytes.fromhex(u["hex"]), bytes.fromhex(w["hex"])
        n = min(len(x), len(y))
        i = next((i for i in range(n) if x[i] != y[i]), n)
        return f"blobs of {len(x)} and {len(y)} bytes differ first at byte {i}"
    return f"{_canon(u)[:80]} vs {_canon(w)[:80]}"


def compare_study(a: dict, b: dict) -> tuple[int, int, list[str]]:
    """(rows compared, rows differing, lines) for one study's two dumps."""
    compared = differing = 0
    lines = []
    if "meta" in a and "meta" in b:
        keys = sorted(set(a["meta"]) | set(b["meta"]))
        diff = [k for k in keys if a["meta"].get(k) != b["meta"].get(k)]
        differing += len(diff)  # counted as differences, not as rows compared
        lines.append(f"  meta (but plan): {len(keys)} keys compared, {len(diff)} differ"
                     + (f": {', '.join(diff)}" if diff else ""))
    else:
        lines.append("  meta: not in both dumps (written before meta was dumped; --redump)")
    for t in sorted(set(a["tables"]) | set(b["tables"])):
        ta, tb = a["tables"].get(t), b["tables"].get(t)
        if ta is None or tb is None:
            n = len((ta or tb)["rows"])
            compared, differing = compared + n, differing + n
            lines.append(f"  {t}: only in {'A' if tb is None else 'B'} ({n} rows)")
            continue
        added = tb["columns"][len(ta["columns"]):]
        if (added and tb["columns"][:len(ta["columns"])] == ta["columns"]
                and ta["key"] == tb["key"]
                and all(v is None for r in tb["rows"] for v in r[len(ta["columns"]):])):
            # a newer store format's nullable columns, null in every row of B: compare the rest
            lines.append(f"  {t}: columns added in B, null in every row: {', '.join(added)}")
            tb = {**tb, "columns": ta["columns"],
                  "rows": [r[:len(ta["columns"])] for r in tb["rows"]]}
        if ta["columns"] != tb["columns"] or ta["key"] != tb["key"]:
            n = max(len(ta["rows"]), len(tb["rows"]))
            compared, differing = compared + n, differing + n
            lines.append(f"  {t}: columns differ: {ta['columns']} vs {tb['columns']}")
            continue
        k = [ta["columns"].index(c) for c in ta["key"]]

        def keyed(rows, k=k):
            return {_canon([r[i] for i in k] if k else i): r for i, r in enumerate(rows)}

        ra, rb = keyed(ta["rows"]), keyed(tb["rows"])
        diff, first = 0, None
        for key in sorted(set(ra) | set(rb)):
            x, y = ra.get(key), rb.get(key)
            if x is not None and y is not None and _canon(x) == _canon(y):
                continue
            diff += 1
            if first is None:
                if x is None or y is None:
                    first = f"key {key} only in {'A' if y is None else 'B'}"
                else:
                    cols = [f"{c}: {_difference(u, w)}"
                            for c, u, w in zip(ta["columns"], x, y, strict=True)
                            if _canon(u) != _canon(w)]
                    first = f"key {key}: " + "; ".join(cols)
        n = len(set(ra) | set(rb))
        compared, differing = compared + n, differing + diff
        lines.append(f"  {t}: {n} rows compared, {diff} differ"
                     + (f"; first: {first}" if first else ""))
    return compared, differing, lines


class DumpError(ValueError):
    """A dump that is not one this script wrote (garbage, not an object, missing tables)."""


def load_dump(path: Path) -> dict:
    """A study's dump, checked for the shape ``dump_store`` writes; a DumpError (one line)
    for anything else."""
    try:
        dump = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise DumpError(f"{path}: not a readable JSON dump ({type(e).__name__})") from None
    tables = dump.get("tables") if isinstance(dump, dict) else None
    if not isinstance(tables, dict) or not all(
            isinstance(t, dict) and isinstance(t.get("columns"), list)
            and isinstance(t.get("key"), list) and isinstance(t.get("rows"), list)
            and all(isinstance(r, list) and len(r) == len(t["columns"]) for r in t["rows"])
            and all(c in t["columns"] for c in t["key"])
            for t in tables.values()):
        raise DumpError(f"{path}: not a dump of this script (an object with tables of "
                        "columns, key and rows)")
    if "meta" in dump and not isinstance(dump["meta"], dict):
        raise DumpError(f"{path}: its meta is not an object")
    return dump


def compare(a: Path, b: Path, only: list[str] | None = None) -> int:
    """Prints the per-study comparison of two out dirs (of the studies ``only``, default every
    dump in either); 1 if anything differs or is missing, 2 for bad input (a directory that is
    not there, a dump this script did not write)."""
    for d in (a, b):
        if not d.is_dir():
            print(f"error: --compare {d}: not a directory", file=sys.stderr)
            return 2
    bad = 0
    names = only or sorted({p.stem for d in (a, b) for p in d.glob("*.json")} - {"walls", "info"})
    if not names:
        print(f"error: no study dumps (*.json) in {a} or {b}", file=sys.stderr)
        return 2
    for name in names:
        pa, pb = a / f"{name}.json", b / f"{name}.json"
        if not (pa.exists() and pb.exists()):
            print(f"{name}: MISSING in {pb if pa.exists() else pa}")
            bad = 1
            continue
        try:
            da, db = load_dump(pa), load_dump(pb)
        except DumpError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        n, diff, lines = compare_study(da, db)
        print(f"{name}: {n} rows compared, {diff} differ"
              + ("" if diff else " (identical)"))
        print("\n".join(lines))
        bad |= diff > 0
    print("ALL IDENTICAL" if not bad else "DIFFERENCES FOUND")
    return int(bad)


def _git(checkout: Path) -> dict:
    """The checkout's commit and whether its tree has changes (for the record)."""
    def git(*args):
        r = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkout", help="source tree to run (its parity_jax on PYTHONPATH)")
    p.add_argument("--out", help="output directory (must not hold the studies' runs yet)")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(STUDIES)} (to run "
                   "or to compare)")
    p.add_argument("--python", default=sys.executable, help="interpreter (default: this one)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two out dirs")
    p.add_argument("--redump", metavar="DIR",
                   help="rewrite the JSON dumps of an out dir from its stores (no runs)")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(STUDIES)
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        print(f"error: --only {','.join(unknown)}: must be among {', '.join(STUDIES)}",
              file=sys.stderr)
        return 2
    if args.redump:
        out = Path(args.redump)
        if not out.is_dir():
            print(f"error: --redump {out}: not a directory", file=sys.stderr)
            return 2
        done = [n for n in names if (_store_of(n, out) / "results.sqlite").is_file()]
        for n in done:
            write_dump(n, _store_of(n, out), out)
        print(f"redumped {', '.join(done) or 'nothing'} in {out}")
        return 0 if done else 1
    if args.compare:
        return compare(Path(args.compare[0]), Path(args.compare[1]),
                       names if args.only else None)
    if not args.checkout or not args.out:
        print("error: --checkout and --out are required (or --compare A B)", file=sys.stderr)
        return 2
    checkout, out = Path(args.checkout).resolve(), Path(args.out).resolve()
    if not (checkout / "parity_jax" / "cli.py").is_file():
        print(f"error: --checkout {checkout}: no parity_jax/cli.py there", file=sys.stderr)
        return 2
    taken = [n for n in names if (out / n).exists()]
    if taken:
        print(f"error: --out {out}: already holds {', '.join(taken)} (use a new directory)",
              file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    info_path = out / "info.json"  # one entry per invocation into this directory
    info = json.loads(info_path.read_text()) if info_path.exists() else []
    info = [info] if isinstance(info, dict) else info  # written by an earlier version
    info.append({"checkout": str(checkout), **_git(checkout), "python": args.python,
                 "studies": names, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    walls_path = out / "walls.json"
    walls = json.loads(walls_path.read_text()) if walls_path.exists() else {}
    failed = []
    for name in names:
        start = time.perf_counter()
        try:
            walls[name] = run_study(name, args.python, checkout, out)
        except (RuntimeError, sqlite3.Error) as e:
            print(f"{name}: FAILED: {e}", flush=True)
            failed.append(name)
            continue
        total = time.perf_counter() - start
        walls[name]["total"] = total
        walls_path.write_text(json.dumps(walls, indent=1) + "\n")
        print(f"{name}: {total:.1f} s ("
              + ", ".join(f"{k} {v:.1f} s" for k, v in walls[name].items() if k != "total")
              + f") -> {out / (name + '.json')}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
