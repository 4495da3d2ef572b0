"""A run's progress: trials done of the total, trial-steps per second, elapsed time and ETA.

On a terminal it is a live ``rich.progress`` bar, redrawn twice a second (the elapsed time runs
on and the ETA counts down while a batch trains); on any other stream (a log file, a pipe) it is
one plain line per update, without escape codes::

    [###.....................] 100/800 trials  1,234 trial-steps/s  elapsed 0m03s  ETA 0m21s

The ETA assumes the trials still to run take as long, on average, as the ones this run has
done so far (trials stored before it started, and resumed from, do not count).
"""

from __future__ import annotations

import atexit
import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, Task
from rich.progress import Progress as _RichProgress
from rich.table import Column
from rich.text import Text

BAR_WIDTH = 24

_now = time.perf_counter  # the clock (tests replace it)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """Progress of ``total`` trials of which ``done`` were stored before; written to ``stream``
    (None: nowhere, but ``done`` still counts). ``update`` after each batch, ``close`` at the
    end (or use it as a context manager: on a terminal, ``close`` restores the cursor)."""

    def __init__(self, total: int, done: int, stream: TextIO | None):
        self.total, self.done, self.stream = total, done, stream
        self.label = ""  # said before the status (an adaptive study's round)
        self.start = _now()
        self.run_trials = 0  # trials done by this run
        self.trial_steps = 0  # SGD steps summed over them
        self._rate = 0.0  # trial-steps/s as of the last update
        self._eta: tuple[float, float] | None = None  # (seconds left, when) at the last update
        self._bar: _RichProgress | None = None
        if stream is not None and stream.isatty():
            console = Console(file=stream)
            if console.is_terminal and not console.is_dumb_terminal:
                self._bar = _RichProgress(
                    BarColumn(bar_width=BAR_WIDTH), _StatusColumn(self), console=console,
                    refresh_per_second=2, redirect_stdout=False, redirect_stderr=False)
                self._task = self._bar.add_task("trials", total=total, completed=done)
                self._bar.start()
                atexit.register(self.close)  # never leave a terminal without its cursor

    def update(self, n_trials: int, trial_steps: int) -> None:
        """Counts a finished batch: ``n_trials`` more trials done, ``trial_steps`` SGD steps
        summed over them."""
        self.done += n_trials
        self.run_trials += n_trials
        self.trial_steps += trial_steps
        if self.stream is None:
            return
        now = _now()
        elapsed = now - self.start
        self._rate = self.trial_steps / max(elapsed, 1e-9)
        eta = (self.total - self.done) * elapsed / max(self.run_trials, 1)
        self._eta = (eta, now)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            self._bar.refresh()
            return
        fill = int(BAR_WIDTH * self.done / max(self.total, 1))
        self.stream.write(f"[{'#' * fill}{'.' * (BAR_WIDTH - fill)}] "
                          f"{self.status(elapsed, eta)}\n")
        self.stream.flush()

    def retotal(self, total: int, label: str = "") -> None:
        """A new total (a round of an adaptive study: the trials it wants so far) and a label
        said before the status ("round 2 of 4, 31 cells open")."""
        self.total, self.label = total, label
        if self._bar is not None:
            self._bar.update(self._task, total=total, completed=self.done)

    def warn(self, line: str) -> None:
        """A warning line: above the live bar when there is one (a line written under it would
        be overwritten at its next redraw), else on stderr."""
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def status(self, elapsed: float, eta: float | None) -> str:
        """``12/800 trials  1,234 trial-steps/s  elapsed 0m03s  ETA 3m10s`` (ETA ``-``: not
        known yet)."""
        return ((f"{self.label}  " if self.label else "")
                + f"{self.done}/{self.total} trials  {self._rate:,.0f} trial-steps/s  "
                f"elapsed {_clock(elapsed)}  ETA {'-' if eta is None else _clock(eta)}")

    def close(self) -> None:
        """Ends the display: on a terminal, the bar's last state stays, followed by a new line.
        Closing twice is harmless."""
        bar, self._bar = self._bar, None
        if bar is not None:
            atexit.unregister(self.close)
            bar.stop()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _StatusColumn(ProgressColumn):
    """The live bar's text: ``Progress.status`` now, the ETA counted down since the last
    update."""

    def __init__(self, owner: Progress):
        super().__init__(Column(no_wrap=True, overflow="ellipsis"))
        self.owner = owner

    def render(self, task: Task) -> Text:
        now = _now()
        eta = self.owner._eta
        left = None if eta is None else max(0.0, eta[0] - (now - eta[1]))
        return Text(self.owner.status(now - self.owner.start, left), no_wrap=True,
                    overflow="ellipsis")
