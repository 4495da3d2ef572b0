"""Start-up of the command line: Ctrl-C while its modules import is deferred until they are
imported, then a clean exit (an import cut short by KeyboardInterrupt leaves half-initialised
modules: a traceback, or an ImportError later)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def sigint_deferred() -> Iterator[list[int]]:
    """While open, SIGINT is recorded (in the yielded list), not raised; on exit the previous
    handler is back. A no-op outside the main thread and where SIGINT is ignored."""
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN or previous is None:
        yield pending
        return
    signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield pending
    finally:
        signal.signal(signal.SIGINT, previous)


def interrupted() -> int:
    """What a Ctrl-C during start-up prints; its exit status."""
    print("interrupted while starting; nothing was run", file=sys.stderr)
    return 130
