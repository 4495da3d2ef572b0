"""The results store: SQLite at ``OUT/results.sqlite``, one for every kind of study.

Tables: ``meta`` (format, study kind, resolved study config, its fingerprint, plan settings,
for tabular studies the fingerprints of the datasets' splits), ``cells`` (one row per grid
cell, its settings as JSON), ``trials`` (one row per finished parity trial), ``curves`` (for
cells with ``record_curves``: a trial's test error and train loss at each of its evaluations, as
little-endian float32 arrays; stores made before curves existed lack it) and
``tabular_trials`` (one row per finished tabular trial: an MLP or a tuned forest; stores made
before it existed lack it). Each finished batch is written in one transaction, so a crash loses
at most the batch in flight and a trial is never stored twice (primary key (cell, seed)).

Rows are checked against the stored study in one place, where they are read
(``Store.contents``): a damaged or hand-edited row is a problem ``check`` lists and a
``CorruptStore`` (one line) for every other reader, never a traceback.

One writer per output directory: ``lock(OUT)`` holds ``OUT/.lock`` (an advisory ``flock``,
released by the kernel when its process dies) while a run or a merge writes there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import sqlite3
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from parity_jax.config import LATER_DEFAULTS, ConfigError, Study, TabularStudy, _digest

FORMAT = "parity_jax/1"
FILENAME = "results.sqlite"
LOCKNAME = ".lock"
SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_SECONDS = 30  # how long a command waits for a store another program holds locked
KINDS = {"parity": Study, "tabular": TabularStudy}


class Trial(NamedTuple):
    """A finished parity trial, as stored."""

    cell: int
    seed: int
    success: bool
    first_hit: int | None
    test_error: float | None
    train_loss: float | None
    steps_run: int
    diverged: bool


class Curve(NamedTuple):
    """A trial's recorded curve: little-endian float32 arrays, one value per evaluation."""

    cell: int
    seed: int
    test_error: bytes
    train_loss: bytes


class TabularTrial(NamedTuple):
    """A finished tabular trial (an MLP, or the tuned forest of a (fraction, seed)), as stored.
    ``extra``: JSON of what only forests have (the chosen configuration)."""

    cell: int
    seed: int
    m: int
    val_loss: float | None
    val_error: float | None
    test_error: float | None
    best_step: int | None
    final_test_error: float | None
    diverged: bool
    extra: str


TRIAL_FIELDS = Trial._fields[2:]

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cells (cell INTEGER PRIMARY KEY, settings TEXT NOT NULL UNIQUE);
CREATE TABLE trials (
    cell INTEGER NOT NULL REFERENCES cells(cell),
    seed INTEGER NOT NULL,
    success INTEGER NOT NULL,
    first_hit INTEGER,
    test_error REAL,
    train_loss REAL,
    steps_run INTEGER NOT NULL,
    diverged INTEGER NOT NULL,
    PRIMARY KEY (cell, seed)
);
CREATE TABLE curves (
    cell INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    test_error BLOB NOT NULL,
    train_loss BLOB NOT NULL,
    PRIMARY KEY (cell, seed),
    FOREIGN KEY (cell, seed) REFERENCES trials(cell, seed)
);
CREATE TABLE tabular_trials (
    cell INTEGER NOT NULL REFERENCES cells(cell),
    seed INTEGER NOT NULL,
    m INTEGER NOT NULL,
    val_loss REAL,
    val_error REAL,
    test_error REAL,
    best_step INTEGER,
    final_test_error REAL,
    diverged INTEGER NOT NULL,
    extra TEXT NOT NULL,
    PRIMARY KEY (cell, seed)
);
"""


class StoreError(Exception):
    """An output location that cannot hold, or does not hold, this study's results (the CLI
    prints it as one ``error:`` line, exit status 2)."""


class CorruptStore(StoreError):
    """A results store SQLite cannot read: damaged or truncated (``check`` reports it as a
    problem, exit status 1; every other command as an error, exit status 2)."""


# -- one writer per output directory -------------------------------------------------------------

_held: dict[Path, int] = {}  # the directories this process holds: resolved path -> thread id
_held_guard = threading.Lock()


def _in_use(out: Path, pid: int | None) -> StoreError:
    who = f" (process {pid})" if pid else ""
    return StoreError(f"out: {out} is in use by another run{who}; wait for it or use another "
                      "--out")


@contextlib.contextmanager
def lock(out: str | Path) -> Iterator[Path]:
    """Holds ``out`` for one writer: creates the directory if needed, takes an exclusive
    ``flock`` on ``out/.lock`` (holding this process's id) and checks that ``out`` can be
    written, so a run learns all this before it computes anything.

    Raises StoreError at once when another process (or another thread of this one) holds it,
    or when ``out`` is not a writable directory. Re-entrant within one thread. A lock left by a
    killed process never blocks: the kernel releases it with the process. On exit the lock
    file is removed, and so is ``out`` when this call created it and nothing was written.
    """
    out = Path(out)
    key = _resolved(out)
    with _held_guard:
        holder = _held.get(key)
    if holder == threading.get_ident():
        yield out
        return
    if holder is not None:
        raise _in_use(out, os.getpid())
    created = _make_dir(out)
    try:
        fd = _acquire(out)
    except BaseException:
        if created:
            _remove_if_empty(out)
        raise
    with _held_guard:
        _held[key] = threading.get_ident()
    try:
        yield out
    finally:
        with _held_guard:
            _held.pop(key, None)
        with contextlib.suppress(OSError):
            os.unlink(out / LOCKNAME)  # while still held: see _acquire
        os.close(fd)
        if created:
            _remove_if_empty(out)


def check_writable_dir(out: str | Path) -> None:
    """Raises StoreError unless ``out`` is a writable directory or could be created as one
    (its nearest existing ancestor is a writable directory); creates nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"out: {out} exists and is not a directory")
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise StoreError(f"out: cannot create {out}: {existing} is not a directory")
    try:  # a read-only file system refuses even root, whatever the permission bits say
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        what = "write to" if existing == out else "create"
        raise StoreError(f"out: cannot {what} {out}: {e.strerror} ({existing})") from None


def holds(out: str | Path) -> bool:
    """Whether this thread holds ``lock(out)``."""
    with _held_guard:
        return _held.get(_resolved(Path(out))) == threading.get_ident()


def _resolved(out: Path) -> Path:
    """``out`` with its links resolved (the lock's identity); a loop of links is a StoreError."""
    try:
        return out.resolve()
    except RuntimeError:  # Python 3.11's "Symlink loop from ..."
        raise StoreError(f"out: {out} is (or passes through) a loop of symbolic links") \
            from None
    except OSError as e:  # ELOOP on later Pythons, a name too long
        raise StoreError(f"out: cannot resolve {out}: {e.strerror}") from None


def _make_dir(out: Path) -> bool:
    """Creates ``out`` (and its parents) if missing; True when it did."""
    if out.exists() and not out.is_dir():
        raise StoreError(f"out: {out} exists and is not a directory")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"out: cannot write to {out}: {e.strerror}") from None
    return created


def _remove_if_empty(out: Path) -> None:
    with contextlib.suppress(OSError):
        out.rmdir()


def _acquire(out: Path) -> int:
    """An open descriptor of ``out/.lock``, exclusively locked, holding this process's id."""
    path = out / LOCKNAME
    for _ in range(100):
        try:  # never through a link; a FIFO put there does not block the open
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
                         | os.O_NONBLOCK, 0o644)
        except FileNotFoundError:  # the directory went away under us (a holder cleaning up)
            _make_dir(out)
            continue
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise StoreError(f"out: {path} is a symbolic link; the lock file is never "
                                 "followed (remove the link)") from None
            raise StoreError(f"out: cannot write to {out}: {e.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:  # written below: ours alone
            os.close(fd)
            what = "a hard link to another file" if stat.S_ISREG(st.st_mode) else \
                "not a regular file"
            raise StoreError(f"out: {path} is {what}; the lock file is never written through "
                             "(remove it)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise _in_use(out, pid) from None
        except OSError as e:
            os.close(fd)
            raise StoreError(f"out: cannot lock {path}: {e.strerror}") from None
        # A holder removes the file as it finishes (still holding it): the lock counts only if
        # it is on the file that is there now.
        try:
            if os.path.samestat(os.fstat(fd), os.lstat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:  # pragma: no cover - 100 holders finishing in a row
        raise StoreError(f"out: cannot lock {path}")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        for p in (out, out / FILENAME):
            if p.exists() and not os.access(p, os.W_OK | (os.X_OK if p.is_dir() else 0)):
                raise PermissionError(13, "Permission denied")
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
        raise StoreError(f"out: cannot write to {out}: {e.strerror}") from None
    return fd


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=BUSY_SECONDS)
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as e:
        raise StoreError(f"out: cannot open {path}: {e}") from None
    conn.text_factory = _text
    return conn


def _say_if_held(conn: sqlite3.Connection, path: Path) -> None:
    """Says on stderr when another program holds the store locked, before SQLite waits for it
    (up to ``BUSY_SECONDS``), so a command does not seem to hang."""
    try:
        conn.execute("PRAGMA busy_timeout = 500")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except sqlite3.OperationalError as e:
        if "locked" in str(e):
            print(f"waiting for {path}: another program holds it locked (up to "
                  f"{BUSY_SECONDS} s) ...", file=sys.stderr, flush=True)
    except sqlite3.DatabaseError:
        pass  # damaged or foreign: the read that follows says so
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute(f"PRAGMA busy_timeout = {BUSY_SECONDS * 1000}")


def _text(data: bytes) -> str | bytes:
    """A TEXT value as str; one that is not UTF-8 (a damaged store) as its bytes, which the
    reader then refuses as not text."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def _looks_like_sqlite(path: Path) -> bool:
    """Whether the file is, or was, an SQLite database (a damaged store, not a foreign file,
    when SQLite then cannot read it): its header says so, or it is a whole number of pages
    whose header was zeroed or overwritten but still has SQLite's fixed bytes, or whose first
    page still holds a b-tree."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if head.startswith(SQLITE_MAGIC):
        return True
    if size < 512 or size % 512:
        return False
    return not any(head[:100]) or head[21:24] == b"\x40\x20\x20" or head[100] in (0x05, 0x0D)


def _corrupt(path: Path, e: Exception | str) -> CorruptStore:
    # SQLite's message may quote bytes of the damaged file: escaped, so it stays one line
    why = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(e))
    return CorruptStore(f"out: {path}: database is corrupt ({why}); restore it from a copy, "
                        "or rerun into a new --out")


# SQLite's errors that say the file could not be read now (not that it is damaged)
_TRANSIENT = ("locked", "disk i/o error", "unable to open", "readonly", "interrupted")


def _read_error(path: Path, e: sqlite3.DatabaseError) -> StoreError:
    """A failed read: the file is locked or unreadable now (StoreError), or damaged
    (CorruptStore: malformed, an unsupported header, ...)."""
    if isinstance(e, sqlite3.OperationalError) and any(w in str(e).lower() for w in _TRANSIENT):
        return StoreError(f"out: cannot read {path}: {e}")
    return _corrupt(path, e)


def _damaged(path: Path, problems: list[str]) -> CorruptStore:
    """The error of a store that SQLite reads but whose rows break the store's rules."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    e = CorruptStore(f"out: {path}: damaged store: {problems[0]}{more}; `parity-jax check "
                     f"{path.parent}` lists every problem; restore it from a copy, or rerun "
                     "into a new --out")
    e.problems = problems  # what `check` lists
    return e


def _read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, str]:
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = "
                                             "'table'").fetchall()}
    except sqlite3.DatabaseError as e:
        if "no such table" in str(e) or not _looks_like_sqlite(path):
            raise StoreError(f"out: {path} is not a parity_jax results store") from None
        raise _read_error(path, e) from None
    except UnicodeDecodeError as e:  # a column name in the schema is not UTF-8
        raise _corrupt(path, e) from None
    ours = {"meta", "cells"} <= tables and bool({"trials", "tabular_trials"} & tables)
    fmt = meta.get("format")
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("parity_jax/"):
            raise StoreError(f"out: {path} holds results of format {_show(fmt)}; this version "
                             f"reads {FORMAT!r}")
        if not ours:
            raise StoreError(f"out: {path} is not a parity_jax results store ({FORMAT})")
        raise _damaged(path, [f"meta: format is {_show(fmt)}, not {FORMAT!r}"])
    problems = [f"meta: {key} is not text" for key, v in meta.items()
                if key in ("kind", "study", "fingerprint", "plan", "data")
                and not isinstance(v, str)]
    if "kind" not in meta and "tabular_trials" in tables:  # both came with tabular studies
        problems.append("meta: kind is missing")
    elif meta.get("kind", "parity") not in KINDS:
        problems.append(f"meta: kind {_show(meta.get('kind'))} is not one of "
                        f"{', '.join(KINDS)}")
    if "fingerprint" not in meta or "study" not in meta:
        problems.append("meta: the study or its fingerprint is missing")
    if problems:
        raise _damaged(path, problems)
    return meta


# -- reading: every row is checked here, where it is read -------------------------------------

class Contents(NamedTuple):
    """A store's cells, trials and curves as read once and checked against its study
    (``Store.contents``): ``problems`` names every row that breaks a rule; the lists hold only
    the sound rows."""

    cells: list[dict]
    rows: list
    curves: list[Curve]
    problems: list[str]


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _real(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _show(v) -> str:
    """A stored value in a message: its repr, cut short."""
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _flag(v) -> bool:
    return _int(v) and v in (0, 1)


def _fraction(v) -> bool:
    """An error rate: None (none measured) or a number in [0, 1]."""
    return v is None or (_real(v) and 0 <= v <= 1)


def _where(raw: tuple, table: str, cells: int, seeds: int) -> tuple[str, list[str]]:
    """Where a trial or curve row is, and the problem when it names no trial of the grid."""
    cell, seed = raw[0], raw[1]
    if not (_int(cell) and _int(seed)):
        return (f"{table} row (cell {_show(cell)}, seed {_show(seed)})",
                ["cell and seed are not integers"])
    where = f"{'curve of ' if table == 'curves' else ''}trial (cell {cell}, seed {seed})"
    if not (0 <= cell < cells and 0 <= seed < seeds):
        return where, ["outside the study's grid"]
    return where, []


def _parity_trial(raw: tuple, grid: list, seeds: int) -> tuple[Trial | None, list[str]]:
    """A stored parity trial, or the problems that make it unreadable."""
    if len(raw) != len(Trial._fields):
        return None, [f"trials row {_show(raw[:2])}: {len(raw)} columns, not {len(Trial._fields)}"]
    where, bad = _where(raw, "trials", len(grid), seeds)
    if not bad:
        _, _, success, first_hit, test_error, train_loss, steps_run, diverged = raw
        steps = grid[raw[0]].steps
        if not (_flag(success) and _flag(diverged)):
            bad.append("success/diverged not a flag")
        wrong = [f"{name} {_show(v)} {rule}" for name, v, ok, rule in (
            ("first_hit", first_hit, first_hit is None or _int(first_hit), "is not an integer"),
            ("test_error", test_error, _fraction(test_error), "outside [0, 1]"),
            ("train_loss", train_loss, train_loss is None or _real(train_loss),
             "is not a number"),
            ("steps_run", steps_run, _int(steps_run), "is not an integer")) if not ok]
        bad += wrong
        if not wrong:
            if bool(success) != (first_hit is not None):
                bad.append("success and first_hit disagree")
            if not 0 <= steps_run <= steps:
                bad.append(f"steps_run {steps_run} outside [0, {steps}]")
            elif first_hit is not None and not 0 < first_hit <= steps_run:
                bad.append(f"first_hit {first_hit} outside (0, steps_run]")
            if diverged and test_error is not None:
                bad.append("diverged but has a test error")
    if bad:
        return None, [f"{where}: {b}" for b in bad]
    return Trial(*raw[:4], *(None if v is None else float(v) for v in raw[4:6]), *raw[6:]), []


def _tabular_trial(raw: tuple, grid: list, seeds: int) -> tuple[TabularTrial | None, list[str]]:
    """A stored tabular trial, or the problems that make it unreadable."""
    if len(raw) != len(TabularTrial._fields):
        return None, [f"tabular_trials row {_show(raw[:2])}: {len(raw)} columns, not "
                      f"{len(TabularTrial._fields)}"]
    where, bad = _where(raw, "tabular_trials", len(grid), seeds)
    if not bad:
        _, _, m, val_loss, val_error, test_error, best_step, final, diverged, extra = raw
        cell = grid[raw[0]]
        if not _flag(diverged):
            bad.append("diverged not a flag")
        if not (_int(m) and m >= 1):
            bad.append(f"m = {_show(m)} is not a training-set size")
        if not (val_loss is None or _real(val_loss)):
            bad.append(f"val_loss {_show(val_loss)} is not a number")
        bad += [f"{name} {_show(v)} outside [0, 1]" for name, v in
                (("val_error", val_error), ("test_error", test_error),
                 ("final_test_error", final)) if not _fraction(v)]
        if not (best_step is None or _int(best_step)):
            bad.append(f"best_step {_show(best_step)} is not an integer")
        elif cell.model == "mlp" and best_step is not None and not -1 <= best_step <= cell.steps:
            bad.append(f"best_step {best_step} outside [-1, {cell.steps}]")
        try:
            parsed = json.loads(extra) if isinstance(extra, str) else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or not set(parsed) <= {"params"}:
            bad.append("extra is not a JSON object of the forest's params")
    if bad:
        return None, [f"{where}: {b}" for b in bad]
    return TabularTrial(*raw[:3], *(None if v is None else float(v) for v in raw[3:6]),
                        raw[6], None if raw[7] is None else float(raw[7]), *raw[8:]), []


def _curve(raw: tuple, grid: list, seeds: int, steps_run: dict) -> tuple[Curve | None, list]:
    """A recorded curve, or the problems that make it unreadable (``steps_run``: of each
    sound trial)."""
    if len(raw) != len(Curve._fields):
        return None, [f"curves row {_show(raw[:2])}: {len(raw)} columns, not {len(Curve._fields)}"]
    where, bad = _where(raw, "curves", len(grid), seeds)
    if not bad:
        if raw[:2] not in steps_run:
            bad.append("no such trial")
        elif not all(isinstance(b, bytes) for b in raw[2:]):
            bad.append("test_error/train_loss are not float32 arrays")
        else:
            evals = math.ceil(steps_run[raw[:2]] / grid[raw[0]].eval_every)
            if any(len(b) != 4 * evals for b in raw[2:]):
                bad.append(f"{len(raw[2]) / 4:g} and {len(raw[3]) / 4:g} points, the trial ran "
                           f"{evals} evaluations")
    if bad:
        return None, [f"{where}: {b}" for b in bad]
    return Curve(*raw), []


def _cell_problems(rows: list[tuple], grid: list) -> tuple[list[dict], list[str]]:
    """The stored cells (settings parsed), or the problems: every cell of the study's grid
    stored once, with its settings."""
    cells, problems, seen = [], [], set()
    for i, settings in rows:
        where = f"cells row {_show(i)}"
        if not (_int(i) and 0 <= i < len(grid)):
            problems.append(f"{where}: not a cell of the stored study's grid")
            continue
        try:
            parsed = json.loads(settings) if isinstance(settings, str) else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            problems.append(f"{where}: settings are not a JSON object")
        elif parsed != json.loads(grid[i].key()):
            problems.append(f"{where}: settings differ from the stored study's grid")
        else:
            seen.add(i)
            cells.append({"cell": i, **parsed})
    missing = len(grid) - len(seen)
    if missing and not problems:
        problems.append(f"cells: {missing} cell(s) of the stored study's grid missing")
    return cells, problems


_PLAN_TYPES = {"memory_budget": "a positive integer", "devices": "a positive integer",
               "shard": "i/N with 0 <= i < N", "platform": "text",
               "sizes": "an object of [features, rows] pairs", "merged_from": "a list of paths"}


def _plan_problems(settings: dict) -> list[str]:
    """What is wrong with stored plan settings (the values a resumed run and check use)."""
    def ok(key, v):
        if key in ("memory_budget", "devices"):
            return _int(v) and v >= 1
        if key == "shard":
            i, _, n = v.partition("/") if isinstance(v, str) else ("", "", "")
            return i.isdigit() and n.isdigit() and int(i) < int(n)
        if key == "platform":
            return isinstance(v, str)
        if key == "sizes":
            return isinstance(v, dict) and all(
                isinstance(p, list) and len(p) == 2 and all(_int(x) and x >= 1 for x in p)
                for p in v.values())
        return isinstance(v, list) and all(isinstance(x, str) for x in v)

    return [f"meta: plan setting {key} = {_show(v)} is not {_PLAN_TYPES[key]}"
            for key, v in settings.items() if key in _PLAN_TYPES and not ok(key, v)]


class Store:
    """An open results store bound to one study."""

    def __init__(self, conn: sqlite3.Connection, path: Path, meta: dict[str, str]):
        self.conn = conn
        self.path = path
        self.meta = meta
        self._study = None
        self._contents: Contents | None = None  # read once, when first asked for

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open_for_run(cls, out: str | Path, study: Study | TabularStudy, cells: list,
                     plan_settings: dict, data: dict | None = None) -> Store:
        """Creates the store, or reopens it to resume the same study; refuses another study.

        ``data``: for a tabular study, the fingerprint of each dataset's splits; a resume on
        data that changed since is refused. Nothing is written to an existing store before it
        is known to hold this study, and a store that cannot be written is refused before
        anything is computed for it. Its caller should hold ``lock(out)`` while it writes
        (re-entrant); the store is opened or created under that lock in any case.
        """
        with lock(out):
            return cls._open_for_run(Path(out), study, cells, plan_settings, data)

    @classmethod
    def _open_for_run(cls, out: Path, study: Study | TabularStudy, cells: list,
                      plan_settings: dict, data: dict | None) -> Store:
        path = out / FILENAME
        for p in (path, *(out / (FILENAME + s) for s in ("-journal", "-wal", "-shm"))):
            if p.is_symlink():  # SQLite would write through it
                raise StoreError(f"out: {p} is a symbolic link; a results store is never "
                                 "written through one (remove the link, or use another --out)")
        if path.exists():
            store = cls.open(out)
            if store.meta.get("fingerprint") != study.fingerprint():
                other = store.study_name()
                store.close()
                raise StoreError(
                    f"out: {out} holds another study ({other!r}); "
                    "use a new --out directory, or the same config to resume"
                )
            try:
                stored = store.data()
            except StoreError:
                store.close()
                raise
            if data is not None and stored != data:
                changed = sorted(k for k in data if (stored or {}).get(k) != data[k])
                store.close()
                raise StoreError(f"out: {out} holds this study on other data (dataset "
                                 f"{', '.join(changed)} changed since); use a new --out "
                                 "directory")
            try:
                store.probe_write()  # a read-only store is refused now, not after computing
            except BaseException:
                store.close()
                raise
            return store
        tmp = out / (FILENAME + ".tmp")  # a creation cut off by a crash: started again
        leftovers = {tmp.name + suffix for suffix in ("", "-journal", "-wal", "-shm")}
        if any(p.name not in leftovers | {LOCKNAME} for p in out.iterdir()):
            raise StoreError(f"out: {out} is not empty and holds no results store; "
                             "use a new or empty --out directory")
        try:
            for name in leftovers:  # ours to remove: this thread holds the lock
                (out / name).unlink(missing_ok=True)
            conn = _connect(tmp)
            with conn:
                conn.executescript(_SCHEMA)
                meta = {
                    "format": FORMAT,
                    "kind": kind_of(study),
                    "study": json.dumps(study.to_dict(), sort_keys=True),
                    "fingerprint": study.fingerprint(),
                    "plan": json.dumps(plan_settings, sort_keys=True),
                }
                if data is not None:
                    meta["data"] = json.dumps(data, sort_keys=True)
                conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                conn.executemany("INSERT INTO cells VALUES (?, ?)",
                                 [(i, c.key()) for i, c in enumerate(cells)])
            conn.close()
            tmp.rename(path)  # the store appears whole or not at all
        except (OSError, sqlite3.Error) as e:
            reason = e.strerror if isinstance(e, OSError) else str(e)
            if tmp.parent.is_dir():
                tmp.unlink(missing_ok=True)
            raise StoreError(f"out: cannot write to {out}: {reason}") from None
        return cls.open(out)

    @classmethod
    def open(cls, out: str | Path) -> Store:
        """Opens an existing store for reading (and appending)."""
        out = Path(out)
        path = out / FILENAME if out.is_dir() or not out.exists() else out
        if not path.is_file():
            raise StoreError(f"out: no results store at {path}")
        conn = _connect(path)
        _say_if_held(conn, path)
        meta = _read_meta(conn, path)
        return cls(conn, path, meta)

    # -- reading ---------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """"parity" or "tabular" (stores made before tabular ones: parity)."""
        return self.meta.get("kind", "parity")

    @property
    def _table(self) -> str:
        return "tabular_trials" if self.kind == "tabular" else "trials"

    def study(self) -> Study | TabularStudy:
        if self._study is None:
            try:
                stored = json.loads(self.meta["study"])
                if not isinstance(stored, dict):
                    raise TypeError("not a JSON object")
                self._study = KINDS[self.kind].from_dict(stored)
            except ConfigError as e:
                if _digest(stored) != self.meta["fingerprint"]:  # not as a version wrote it
                    raise _damaged(self.path, [f"meta: its stored study is refused ({e}) and "
                                               "does not match its fingerprint"]) from None
                raise StoreError(f"out: {self.path} holds a study this version refuses ({e})") \
                    from None  # e.g. past a limit of this version
            except (KeyError, ValueError, TypeError, AttributeError) as e:  # edited, damaged
                raise _damaged(self.path, [f"meta: its stored study cannot be read: {e}"]) \
                    from None
        return self._study

    def study_name(self) -> str:
        """The stored study's name, as far as it can be read ("?" if not)."""
        try:
            return str(json.loads(self.meta["study"]).get("name", "?"))
        except (KeyError, ValueError, TypeError, AttributeError):
            return "?"

    def data(self) -> dict | None:
        """A tabular store's dataset fingerprints (None for parity stores)."""
        try:
            data = json.loads(self.meta.get("data", "null"))
        except (ValueError, TypeError):
            data = ""
        if not (data is None or (isinstance(data, dict) and all(
                isinstance(v, str) for v in data.values()))):
            raise _damaged(self.path, ["meta: its dataset fingerprints are not a JSON object "
                                       "of texts"])
        return data

    def plan_settings(self) -> dict:
        try:
            settings = json.loads(self.meta.get("plan", "{}"))
        except (ValueError, TypeError) as e:  # meta edited or damaged
            raise _damaged(self.path, [f"meta: its plan settings cannot be read: {e}"]) \
                from None
        if not isinstance(settings, dict):
            raise _damaged(self.path, ["meta: its plan settings are not a JSON object"])
        problems = _plan_problems(settings)
        if problems:
            raise _damaged(self.path, problems)
        return settings

    def query(self, sql: str) -> list[tuple]:
        """Rows of a read; a damaged file gives a StoreError, not a traceback."""
        try:
            return self.conn.execute(sql).fetchall()
        except sqlite3.DatabaseError as e:
            raise _read_error(self.path, e) from None
        except UnicodeDecodeError as e:  # a column name in the schema is not UTF-8
            raise _corrupt(self.path, e) from None

    def contents(self, strict: bool = True) -> Contents:
        """The cells, trials and curves, every row checked against the stored study (the one
        place a store's rows are read). ``strict``: a CorruptStore naming the first problem
        (every command but ``check``, which lists them all)."""
        if self._contents is None:
            self._contents = self._read()
        if strict and self._contents.problems:
            raise _damaged(self.path, self._contents.problems)
        return self._contents

    def _read(self) -> Contents:
        study = self.study()
        grid = study.cells()
        cells, problems = _cell_problems(
            self.query("SELECT cell, settings FROM cells ORDER BY cell"), grid)
        if self.kind == "parity":
            cells = [{"cell": c.pop("cell"), **LATER_DEFAULTS, **c} for c in cells]
        record = _tabular_trial if self.kind == "tabular" else _parity_trial
        rows = []
        for raw in self.query(f"SELECT * FROM {self._table} ORDER BY cell, seed"):
            row, bad = record(raw, grid, study.seeds)
            problems += bad
            if row is not None:
                rows.append(row)
        steps_run = {} if self.kind == "tabular" else {r[:2]: r.steps_run for r in rows}
        curves = []
        if self._has("curves"):
            for raw in self.query("SELECT * FROM curves ORDER BY cell, seed"):
                curve, bad = _curve(raw, grid, study.seeds, steps_run)
                problems += bad
                if curve is not None:
                    curves.append(curve)
        return Contents(cells, rows, curves, problems)

    def cells(self) -> list[dict]:
        return self.contents().cells

    def _has(self, table: str) -> bool:
        return bool(self.query("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                               f"name = '{table}'"))

    def done(self) -> set[tuple[int, int]]:
        """(cell, seed) of every stored trial."""
        return {r[:2] for r in self.rows()}

    def rows(self) -> list[Trial] | list[TabularTrial]:
        """Every stored trial (``Trial``s, or ``TabularTrial``s in a tabular store), ordered
        by (cell, seed)."""
        return self.contents().rows

    def curve_rows(self) -> list[Curve]:
        """Every recorded curve."""
        return self.contents().curves

    def trials(self) -> list[dict]:
        """Every stored trial as a dict (flags as bools; a tabular trial's ``extra`` merged
        in)."""
        out = []
        for row in self.rows():
            d = row._asdict()
            d["diverged"] = bool(d["diverged"])
            if "success" in d:
                d["success"] = bool(d["success"])
            if "extra" in d:
                d.update(json.loads(d.pop("extra")))
            out.append(d)
        return out

    # -- writing ---------------------------------------------------------------------------------

    def add_trials(self, rows: list[Trial] | list[TabularTrial],
                   curves: list[Curve] = ()) -> None:
        """Appends one batch's outcomes (and the curves of trials among them) in a single
        transaction."""
        if not rows:
            return
        holes = ", ".join("?" * len(rows[0]))
        self._contents = None
        try:
            with self.conn:
                self.conn.executemany(f"INSERT INTO {self._table} VALUES ({holes})", rows)
                if curves:
                    self.conn.executemany("INSERT INTO curves VALUES (?, ?, ?, ?)", curves)
        except sqlite3.DatabaseError as e:  # read-only, disk full, locked: nothing written
            raise StoreError(f"out: cannot write to {self.path}: {e}; the trials stored "
                             "before are intact, rerun to resume once it is writable") from None

    def probe_write(self) -> None:
        """Raises StoreError unless the store can be written (a write rolled back)."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("DELETE FROM meta WHERE 0")
        except sqlite3.DatabaseError as e:
            raise StoreError(f"out: cannot write to {self.path}: {e}; the trials stored "
                             "before are intact, rerun to resume once it is writable") from None
        finally:
            if self.conn.in_transaction:
                self.conn.rollback()

    def close(self) -> None:
        self.conn.close()


def kind_of(study: Study | TabularStudy) -> str:
    """The kind of a study: "parity" or "tabular"."""
    return "tabular" if isinstance(study, TabularStudy) else "parity"


# -- whole-store operations ----------------------------------------------------------------------

def merge(inputs: list[str | Path], out: str | Path) -> tuple[int, int]:
    """Combines stores of one study (e.g. the shards of a job array) into ``out``.

    ``out`` is created, or must already hold the same study (its trials then count as one more
    input). Refused, with nothing written, when the inputs hold different studies or a trial
    stored twice with different outcomes; a trial stored identically twice is kept once.
    Returns (trials written, duplicates skipped).
    """
    if not inputs:
        raise StoreError("merge: give at least one results directory")
    stores = []
    try:
        for p in inputs:  # a bad input is named as one, not as --out
            try:
                stores.append(Store.open(p))
            except StoreError as e:
                raise type(e)(f"merge: input {p}: {str(e).removeprefix('out: ')}") from None
        first = stores[0]
        for other in stores[1:]:
            if other.meta["fingerprint"] != first.meta["fingerprint"]:
                raise StoreError(
                    f"merge: {other.path} holds another study "
                    f"({other.study().name!r}) than {first.path} ({first.study().name!r})")
            if other.data() != first.data():
                raise StoreError(f"merge: {other.path} holds this study on other data than "
                                 f"{first.path}")
        study = first.study()
        rows: dict[tuple[int, int], tuple] = {}
        origin: dict[tuple[int, int], Path] = {}
        duplicates = 0
        for store in stores:
            for row in store.rows():
                key = row[:2]
                if key in rows:
                    if rows[key] != row:
                        raise StoreError(
                            f"merge: trial (cell {key[0]}, seed {key[1]}) differs between "
                            f"{origin[key]} and {store.path}; nothing written")
                    duplicates += 1
                    continue
                rows[key], origin[key] = row, store.path
        curves = {r[:2]: r for store in stores for r in store.curve_rows()}
        settings = {"merged_from": [str(s.path) for s in stores]}
        data = first.data()
    except StoreError as e:  # an input that cannot be read: not --out's fault
        if not str(e).startswith("out: "):
            raise
        raise type(e)(f"merge: reading an input: {str(e).removeprefix('out: ')}") from None
    finally:
        for store in stores:
            store.close()
    out = Path(out)
    with lock(out):  # one writer: a run or another merge into ``out`` is refused at once
        return _merge_into(out, study, rows, origin, curves, settings, data, duplicates)


def _merge_into(out: Path, study, rows: dict, origin: dict, curves: dict, settings: dict,
                data: dict | None, duplicates: int) -> tuple[int, int]:
    created = not (out / FILENAME).exists()
    target = Store.open_for_run(out, study, study.cells(), settings, data)
    try:
        shard = target.plan_settings().get("shard", "0/1")
        if shard != "0/1":
            raise StoreError(f"merge: --out {out} holds shard {shard} of the study; merge into "
                             "a new directory")
        existing = {r[:2]: r for r in target.rows()}
        for key, row in existing.items():
            if key in rows and rows[key] != row:
                raise StoreError(f"merge: trial (cell {key[0]}, seed {key[1]}) differs between "
                                 f"{origin[key]} and {target.path}; nothing written")
        new = [row for key, row in sorted(rows.items()) if key not in existing]
        target.add_trials(new, [curves[r[:2]] for r in new if r[:2] in curves])
    except BaseException:
        target.close()
        if created:  # leave no empty store behind (nor a directory ``lock`` made)
            target.path.unlink(missing_ok=True)
        raise
    target.close()
    return len(new), duplicates + len(rows) - len(new)


def check(out: str | Path, expected: set[tuple[int, int]] | None = None) -> tuple[list[str], dict]:
    """Integrity check of a store: SQLite's own, then its meta, cells and every trial.

    ``expected``: the (cell, seed) this store should end up holding (its shard of the study);
    a stored trial outside it is a problem, a missing one only makes the store incomplete.
    Returns (problems, summary); a store with no problems may still be incomplete, and a
    store SQLite cannot read has the one problem "database is corrupt" and no summary. A
    directory without a store, or a file that is no store, is a StoreError.
    """
    try:
        return _check(out, expected)
    except CorruptStore as e:  # unreadable, or its meta is: the rows cannot be checked
        return getattr(e, "problems", None) or [str(e).removeprefix("out: ")], {}


def _check(out: str | Path, expected: set[tuple[int, int]] | None) -> tuple[list[str], dict]:
    store = Store.open(out)
    problems: list[str] = []
    try:
        try:
            status = [r[0] for r in store.query("PRAGMA integrity_check")]
        except CorruptStore:
            raise
        except StoreError as e:
            status = [str(e)]
        if status != ["ok"]:
            lines = [line for s in status for line in str(s).splitlines() if line][:5]
            return [f"{store.path}: database is corrupt (sqlite integrity_check: "
                    f"{'; '.join(lines)})"], {}
        problems += [f"{r[0]} row {r[1]}: the row it refers to is not in {r[2]}"
                     for r in store.query("PRAGMA foreign_key_check")]
        study = store.study()  # unreadable: the one problem (the rows cannot be checked)
        if study.fingerprint() != store.meta.get("fingerprint"):
            problems.append("meta: the stored study does not match its fingerprint")
        for read in (store.plan_settings, store.data):
            try:
                read()
            except CorruptStore as e:
                problems += e.problems
        with contextlib.suppress(CorruptStore):
            if store.kind == "tabular" and store.data() is None:
                problems.append("meta: its datasets' fingerprints are missing (a run cannot "
                                "resume it)")
        contents = store.contents(strict=False)
        problems += contents.problems
        ids = {r[:2] for r in contents.rows}
        if expected is not None:
            problems += [f"trial (cell {c}, seed {i}): not part of this store's shard"
                         for c, i in sorted(ids - expected)]
        else:
            expected = {(c, i) for c in range(len(study.cells())) for i in range(study.seeds)}
        summary = {"study": study.name, "trials": len(ids), "expected": len(expected),
                   "complete": expected <= ids}
    finally:
        store.close()
    return problems, summary
