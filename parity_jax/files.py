"""Output files (figures, reports, the bench's JSON) written safely: never through a symbolic
link, and replaced whole -- written to a temporary file in the same directory, then renamed over
the old one -- so a kill mid-write leaves the old file or the new one, never a truncated one.

A name that is a symbolic link, or anything but a regular file (a directory, a device such as
``/dev/full``, a FIFO), is refused with an ``OutputError`` (a ``StoreError``: one ``error:``
line, exit status 2, on the command line): a link's target is never truncated or replaced.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from parity_jax.errors import StoreError


class OutputError(StoreError):
    """An output file that cannot, or must not, be written."""


def refuse_unsafe(path: str | Path, what: str = "out") -> None:
    """Raises OutputError unless ``path`` is absent or a regular file (not a link to one)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:  # a loop or a too-long name further up, a parent that is a file
        raise OutputError(f"{what}: cannot write {path}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(f"{what}: {path} is a symbolic link; it is never written through "
                          "(remove the link, or write elsewhere)")
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise OutputError(f"{what}: {path} is {kind}; give a file name")


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object], what: str = "out"
                 ) -> Path:
    """Writes ``path`` whole: ``write(f)`` fills a new temporary file beside it, which then
    replaces it (an existing file keeps its permission bits). Returns ``path``."""
    path = Path(path)
    refuse_unsafe(path, what)
    tmp = None  # once made: ours to remove
    try:
        for _ in range(100):  # a fresh name, never a file (or a link) already there
            name = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o666)  # the umask applies, as to any new file
            except FileExistsError:
                continue
            tmp = name
            break
        else:  # pragma: no cover - 100 random names taken
            raise FileExistsError(17, "File exists")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode))
        os.replace(tmp, path)  # a link put there meanwhile is replaced, never followed
    except OSError as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise OutputError(f"{what}: cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    return path


def write_text(path: str | Path, text: str, what: str = "out") -> Path:
    """``write_atomic`` of UTF-8 text."""
    return write_atomic(path, lambda f: f.write(text.encode()), what)


def save_figure(fig, path: str | Path, what: str = "out", **kwargs) -> Path:
    """``fig.savefig(path)``, atomically (the format from ``path``'s suffix)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    return write_atomic(path, lambda f: fig.savefig(f, format=fmt, **kwargs), what)
