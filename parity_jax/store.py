"""The results store: SQLite at ``OUT/results.sqlite``, one for every kind of study.

Tables: ``meta`` (format, study kind, resolved study config, its fingerprint, plan settings,
for studies that read data the fingerprints of the datasets' splits, the engine each program
ran with: ``Store.engines``), ``cells`` (one row per
grid cell, its settings as JSON), and the tables of the store's kind (``StudyKind.schema``:
parity's ``trials`` and ``curves``, tabular's ``tabular_trials``; stores made before study
kinds existed hold every kind's). Each finished batch is written in one transaction, so a
crash loses at most the batch in flight and a trial is never stored twice (primary key (cell,
seed)). Rows are checked against the stored study in one place, where they are read
(``Store.contents``, through the kind's ``read_row``): a damaged or hand-edited row is a
problem ``check`` lists and a ``CorruptStore`` (one line) for every other reader, never a
traceback. The one-writer lock is ``parity_jax.lock``; merge and check are modules of their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import NamedTuple

from parity_jax import config, errors, kinds, lock
from parity_jax.errors import ConfigError, CorruptStore, StoreError, digest
from parity_jax.stored import Curve, cell_problems, plan_problems

FORMAT = "parity_jax/1"
FILENAME = lock.FILENAME
SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_SECONDS = 30  # how long a command waits for a store another program holds locked
# Stores made before study kinds existed hold parity studies, no "kind" in their meta and only
# these tables.
KIND_BEFORE_KINDS = "parity"
TABLES_BEFORE_KINDS = {"meta", "cells", "trials", "curves"}
ENGINE = "engine "  # meta keys: ENGINE + a program's key (``race.program_key``)


# the base tables; a store of a kind adds the kind's own (``StudyKind.schema``)
_BASE_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cells (cell INTEGER PRIMARY KEY, settings TEXT NOT NULL UNIQUE);
"""


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
    ours = {"meta", "cells"} <= tables and any(
        kinds.named(name).rows_table in tables for name in kinds.names())
    fmt = meta.get("format")
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("parity_jax/"):
            raise StoreError(f"out: {path} holds results of format {errors.show(fmt)}; this "
                             f"version reads {FORMAT!r}")
        if not ours:
            raise StoreError(f"out: {path} is not a parity_jax results store ({FORMAT})")
        raise _damaged(path, [f"meta: format is {errors.show(fmt)}, not {FORMAT!r}"])
    problems = [f"meta: {key} is not text" for key, v in meta.items()
                if key in ("kind", "study", "fingerprint", "plan", "data")
                and not isinstance(v, str)]
    if "kind" not in meta and tables - TABLES_BEFORE_KINDS:  # both came with study kinds
        problems.append("meta: kind is missing")
    elif meta.get("kind", KIND_BEFORE_KINDS) not in kinds.names():
        problems.append(f"meta: kind {errors.show(meta.get('kind'))} is not one of "
                        f"{', '.join(kinds.names())}")
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
    def open_for_run(cls, out: str | Path, study, cells: list,
                     plan_settings: dict, data: dict | None = None) -> Store:
        """Creates the store, or reopens it to resume the same study; refuses another study.

        ``data``: for a tabular study, the fingerprint of each dataset's splits; a resume on
        data that changed since is refused. Nothing is written to an existing store before it
        is known to hold this study, and a store that cannot be written is refused before
        anything is computed for it. Its caller should hold ``lock(out)`` while it writes
        (re-entrant); the store is opened or created under that lock in any case.
        """
        with lock.lock(out):
            return cls._open_for_run(Path(out), study, cells, plan_settings, data)

    @classmethod
    def _open_for_run(cls, out: Path, study, cells: list,
                      plan_settings: dict, data: dict | None) -> Store:
        path = out / FILENAME
        for p in (path, *(out / (FILENAME + s) for s in ("-journal", "-wal", "-shm"))):
            if p.is_symlink():  # SQLite would write through it
                raise StoreError(f"out: {p} is a symbolic link; a results store is never "
                                 "written through one (remove the link, or use another --out)")
        if path.exists():
            store = cls.open(out)
            if store.meta.get("fingerprint") != study.fingerprint():
                other = store.study_name(study.to_dict())
                store.close()
                raise StoreError(f"out: {out} holds another study ({other}); use a new --out "
                                 "directory, or the same config to resume")
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
        if any(p.name not in leftovers | {lock.LOCKNAME} for p in out.iterdir()):
            raise StoreError(f"out: {out} is not empty and holds no results store; "
                             "use a new or empty --out directory")
        try:
            for name in leftovers:  # ours to remove: this thread holds the lock
                (out / name).unlink(missing_ok=True)
            conn = _connect(tmp)
            with conn:
                conn.executescript(_BASE_SCHEMA + kinds.of(study).schema)
                meta = {
                    "format": FORMAT,
                    "kind": kinds.of(study).name,
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
        """The name of its study's kind (``kinds.names()``)."""
        return self.meta.get("kind", KIND_BEFORE_KINDS)

    @property
    def study_kind(self) -> kinds.StudyKind:
        return kinds.named(self.kind)

    def study(self):
        if self._study is None:
            try:
                stored = json.loads(self.meta["study"])
                if not isinstance(stored, dict):
                    raise TypeError("not a JSON object")
                cls = self.study_kind.study_type  # from_stored: config.StudyConfig's
                self._study = getattr(cls, "from_stored", cls.from_dict)(stored)
            except ConfigError as e:
                if digest(stored) != self.meta["fingerprint"]:  # not as a version wrote it
                    raise _damaged(self.path, [f"meta: its stored study is refused ({e}) and "
                                               "does not match its fingerprint"]) from None
                raise StoreError(f"out: {self.path} holds a study this version or process "
                                 f"refuses ({e})") \
                    from None  # past a limit of this version; a target registered elsewhere
            except (KeyError, ValueError, TypeError, AttributeError) as e:  # edited, damaged
                raise _damaged(self.path, [f"meta: its stored study cannot be read: {e}"]) \
                    from None
        return self._study

    def study_name(self, other: dict | None = None) -> str:
        """The stored study's name, as far as it can be read ("?" if not), and with ``other``
        (a study's ``to_dict``) the first settings where they differ."""
        try:
            stored = json.loads(self.meta["study"])
            return repr(str(stored.get("name", "?"))) + config.differences(stored, other or {})
        except (KeyError, ValueError, TypeError, AttributeError):
            return "'?'"

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
        problems = plan_problems(settings, self.study_kind)
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
        cells, problems = cell_problems(
            self.query("SELECT cell, settings FROM cells ORDER BY cell"), grid)
        kind = self.study_kind
        cells = [{"cell": c.pop("cell"), **kind.cell_record(c)} for c in cells]
        rows = []
        for raw in self.query(f"SELECT * FROM {kind.rows_table} ORDER BY cell, seed"):
            row, bad = kind.read_row(raw, grid, study.seeds)
            problems += bad
            if row is not None:
                rows.append(row)
        by_id = {r[:2]: r for r in rows}
        curves = []
        if kind.curves_table and self._has(kind.curves_table):
            for raw in self.query(f"SELECT * FROM {kind.curves_table} ORDER BY cell, seed"):
                curve, bad = kind.read_curve(raw, grid, study.seeds, by_id)
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

    def rows(self) -> list[tuple]:
        """Every stored trial (its kind's ``Row``s), ordered by (cell, seed)."""
        return self.contents().rows

    def curve_rows(self) -> list[Curve]:
        """Every recorded curve."""
        return self.contents().curves

    def trials(self) -> list[dict]:
        """Every stored trial as a record (its kind's ``record``: flags as bools, ...)."""
        return [self.study_kind.record(row) for row in self.rows()]

    # -- writing ---------------------------------------------------------------------------------

    def engines(self) -> dict[str, dict]:
        """The engines each program ran with, by program key: {"engine" ("pallas", or several
        joined by "+"), "program"} (a value that cannot be read is left out: a resume races
        again)."""
        out = {}
        for key, value in self.meta.items():
            with contextlib.suppress(ValueError, TypeError):  # damaged: not a record
                record = json.loads(value) if str(key).startswith(ENGINE) else None
                if isinstance(record, dict) and isinstance(record.get("engine"), str):
                    out[key.removeprefix(ENGINE)] = record
        return out

    def add_trials(self, rows: list[tuple], curves: list[Curve] = (),
                   engines: dict[str, dict] | None = None) -> None:
        """Appends one batch's outcomes (and the curves of trials among them) in a single
        transaction, with the engine records of the programs that ran (``engines``: each
        replaces its program's record)."""
        if not rows and not engines:
            return
        width = len(self.query(f"PRAGMA table_info({self.study_kind.rows_table})"))
        if any(v is not None for r in rows for v in r[width:]):  # made before those columns
            raise StoreError(f"out: {self.path} was made before a column its trials need")
        self._contents = None
        try:
            with self.conn:
                self.conn.executemany(f"INSERT INTO {self.study_kind.rows_table} VALUES "
                                      f"({', '.join('?' * width)})", [r[:width] for r in rows])
                if curves:
                    self.conn.executemany(
                        f"INSERT INTO {self.study_kind.curves_table} VALUES (?, ?, ?, ?)",
                        curves)
                self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                    (ENGINE + k, json.dumps(v, sort_keys=True))
                    for k, v in (engines or {}).items()])
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
