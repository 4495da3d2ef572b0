"""Files read and written safely.

Reading (``read_bytes``, ``read_json``): one guarded reader for every file the program reads
whole (the kernel's verdicts, a config): regular files only -- opened without blocking, so a
FIFO in a file's place never hangs, and a device such as ``/dev/zero`` (or a link to one) is
refused, never read -- at most a size limit of bytes, and any failure (missing, unreadable,
too large, not UTF-8, not JSON, JSON nested too deep) one ``InputError`` line. A caller keeping
a cache treats an ``InputError`` as an absent file.

Writing (figures, reports, the bench's JSON): never through a symbolic link, and replaced whole
-- written to a temporary file in the same directory, then renamed over the old one -- so a
kill mid-write leaves the old file or the new one, never a truncated one. A name that is a
symbolic link, or anything but a regular file (a directory, a device such as ``/dev/full``, a
FIFO), is refused with an ``OutputError`` (a ``StoreError``: one ``error:`` line, exit status 2,
on the command line): a link's target is never truncated or replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from parity_jax.errors import StoreError, error_line, one_line, show

READ_LIMIT = 64 << 20  # bytes read from one file unless its reader says otherwise


class OutputError(StoreError):
    """An output file that cannot, or must not, be written."""


class InputError(StoreError):
    """A file that cannot, or must not, be read (one line: what, where, why)."""


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n} bytes"


def read_bytes(path: str | Path, limit: int = READ_LIMIT, what: str = "input",
               error: type[Exception] = InputError) -> bytes:
    """The contents of ``path``, a regular file (a link to one is followed) of at most ``limit``
    bytes. Anything else -- missing, unreadable, a directory, a FIFO, a device, larger than
    ``limit`` -- is one line, an ``error`` (``InputError`` unless the reader says otherwise:
    a config's is a ConfigError); nothing beyond ``limit + 1`` bytes is ever read, and the
    open never blocks (``O_NONBLOCK``: a FIFO without a writer). Every file the package reads
    whole comes through here: configs, the kernel's verdicts, datasets, /proc/meminfo."""
    if not isinstance(path, str | os.PathLike):
        raise error(f"{what} = {show(path)}: must be a file path")
    shown = one_line(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise error(f"{what}: file not found: {shown}") from None
    except OSError as e:
        raise error(f"{what}: cannot read {shown}: {e.strerror or e}") from None
    except ValueError as e:  # a path with a NUL character
        raise error(f"{what} = {show(str(path))}: cannot read it ({e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise error(f"{what}: {shown} is {kind}")
        if st.st_size > limit:
            raise error(f"{what}: {shown} is larger than {_size(limit)}")
        chunks, size = [], 0
        while size <= limit:  # a file that grows meanwhile is still read only so far
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise error(f"{what}: {shown} is larger than {_size(limit)}")
        return b"".join(chunks)
    except OSError as e:
        raise error(f"{what}: cannot read {shown}: {e.strerror or e}") from None
    finally:
        os.close(fd)


def read_text(path: str | Path, limit: int = READ_LIMIT, what: str = "input") -> str:
    """``read_bytes`` decoded as UTF-8 (text that is not: an ``InputError``)."""
    try:
        return read_bytes(path, limit, what).decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what}: {one_line(str(path))} is not UTF-8 text "
                         f"({error_line(e)})") from None


def read_json(path: str | Path, limit: int = READ_LIMIT, what: str = "input") -> Any:
    """The JSON value in ``path`` (``read_text``); text that is not JSON, or JSON nested
    deeper than the parser's recursion limit, is an ``InputError``."""
    text = read_text(path, limit, what)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InputError(f"{what}: {one_line(str(path))} is not valid JSON "
                         f"({error_line(e)})") from None


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
