"""One writer per output directory: ``lock(OUT)`` holds ``OUT/.lock`` (an advisory ``flock``,
released by the kernel when its process dies) while a run or a merge writes there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from parity_jax.errors import StoreError

FILENAME = "results.sqlite"  # the results store in OUT (parity_jax.store)
LOCKNAME = ".lock"

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
            if e.errno == errno.EISDIR:
                raise StoreError(f"out: {path} is a directory; it must be the lock file "
                                 "(remove it)") from None
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
            for _ in range(40):  # the holder writes its id just after it locks: wait for it
                if pid is not None:
                    break
                time.sleep(0.025)
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


