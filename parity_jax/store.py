"""The results store: SQLite at ``OUT/results.sqlite``.

Tables: ``meta`` (format, resolved study config, its fingerprint, plan settings), ``cells``
(one row per grid cell, its settings as JSON) and ``trials`` (one row per finished trial).
Each finished batch is written in one transaction, so a crash loses at most the batch in flight
and a trial is never stored twice (primary key (cell, seed)).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from parity_jax.config import Cell, ConfigError, Study

FORMAT = "parity_jax/1"
FILENAME = "results.sqlite"

TRIAL_FIELDS = ("success", "first_hit", "test_error", "train_loss", "steps_run", "diverged")

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
"""


class StoreError(ConfigError):
    """An output location that cannot hold, or does not hold, this study's results."""


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, str]:
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError:
        raise StoreError(f"out: {path} is not a parity_jax results store") from None
    if meta.get("format") != FORMAT:
        raise StoreError(f"out: {path} is not a parity_jax results store ({FORMAT})")
    return meta


class Store:
    """An open results store bound to one study."""

    def __init__(self, conn: sqlite3.Connection, path: Path, meta: dict[str, str]):
        self.conn = conn
        self.path = path
        self.meta = meta

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open_for_run(cls, out: str | Path, study: Study, cells: list[Cell],
                     plan_settings: dict) -> Store:
        """Creates the store, or reopens it to resume the same study; refuses another study.

        Nothing is written to an existing store before it is known to hold this study.
        """
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise StoreError(f"out: {out} exists and is not a directory")
        path = out / FILENAME
        if path.exists():
            store = cls.open(out)
            if store.meta.get("fingerprint") != study.fingerprint():
                other = json.loads(store.meta["study"]).get("name", "?")
                raise StoreError(
                    f"out: {out} holds another study ({other!r}); "
                    "use a new --out directory, or the same config to resume"
                )
            return store
        if out.exists() and any(out.iterdir()):
            raise StoreError(f"out: {out} is not empty and holds no results store; "
                             "use a new or empty --out directory")
        try:
            out.mkdir(parents=True, exist_ok=True)
            tmp = out / (FILENAME + ".tmp")
            tmp.unlink(missing_ok=True)
            conn = _connect(tmp)
            with conn:
                conn.executescript(_SCHEMA)
                meta = {
                    "format": FORMAT,
                    "study": json.dumps(study.to_dict(), sort_keys=True),
                    "fingerprint": study.fingerprint(),
                    "plan": json.dumps(plan_settings, sort_keys=True),
                }
                conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                conn.executemany("INSERT INTO cells VALUES (?, ?)",
                                 [(i, c.key()) for i, c in enumerate(cells)])
            conn.close()
            tmp.rename(path)  # the store appears whole or not at all
        except OSError as e:
            raise StoreError(f"out: cannot write to {out}: {e.strerror}") from None
        return cls.open(out)

    @classmethod
    def open(cls, out: str | Path) -> Store:
        """Opens an existing store for reading (and appending)."""
        out = Path(out)
        path = out / FILENAME if out.is_dir() or not out.exists() else out
        if not path.is_file():
            raise StoreError(f"out: no results store at {path}")
        conn = _connect(path)
        meta = _read_meta(conn, path)
        return cls(conn, path, meta)

    # -- reading ---------------------------------------------------------------------------------

    def study(self) -> Study:
        return Study.from_dict(json.loads(self.meta["study"]))

    def plan_settings(self) -> dict:
        return json.loads(self.meta.get("plan", "{}"))

    def cells(self) -> list[dict]:
        rows = self.conn.execute("SELECT cell, settings FROM cells ORDER BY cell").fetchall()
        return [{"cell": i, **json.loads(s)} for i, s in rows]

    def done(self) -> set[tuple[int, int]]:
        """(cell, seed) of every stored trial."""
        return set(self.conn.execute("SELECT cell, seed FROM trials").fetchall())

    def trials(self) -> list[dict]:
        cols = ("cell", "seed") + TRIAL_FIELDS
        rows = self.conn.execute(
            f"SELECT {', '.join(cols)} FROM trials ORDER BY cell, seed").fetchall()
        out = []
        for row in rows:
            d = dict(zip(cols, row, strict=True))
            d["success"], d["diverged"] = bool(d["success"]), bool(d["diverged"])
            out.append(d)
        return out

    # -- writing ---------------------------------------------------------------------------------

    def add_trials(self, rows: list[tuple]) -> None:
        """Appends one batch's outcomes in a single transaction.

        rows: (cell, seed, success, first_hit, test_error, train_loss, steps_run, diverged).
        """
        with self.conn:
            self.conn.executemany(
                "INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def close(self) -> None:
        self.conn.close()
