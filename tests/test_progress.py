"""Progress: one plain line per update on a file or pipe, a rich bar on a terminal, silence on
None."""

import io
import re

import pytest

from parity_jax import progress

pytestmark = pytest.mark.quick  # pure Python: make test-quick

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(progress, "_now", c)
    return c


def test_plain_stream_one_line_per_update(clock):
    out = io.StringIO()
    bar = progress.Progress(800, 100, out)
    assert out.getvalue() == ""
    clock.t += 3
    bar.update(12, 12345)  # 12345 / 3 s; ETA: 688 trials left at 3 s per 12
    clock.t += 62
    bar.update(588, 1_000_000)
    bar.close()
    assert out.getvalue() == (
        "[###.....................] 112/800 trials  4,115 trial-steps/s  elapsed 0m03s  "
        "ETA 2m52s\n"
        "[#####################...] 700/800 trials  15,575 trial-steps/s  elapsed 1m05s  "
        "ETA 0m11s\n")
    assert (bar.done, bar.total, bar.run_trials, bar.trial_steps) == (700, 800, 600, 1_012_345)


def test_none_stream_is_silent_but_counts(clock):
    bar = progress.Progress(10, 2, None)
    bar.update(3, 30)
    bar.close()
    assert (bar.done, bar.total) == (5, 10)


def test_terminal_gets_a_live_bar_and_a_newline_on_close(clock, monkeypatch):
    for var in ("TERM", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "FORCE_COLOR", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    out = Terminal()
    with progress.Progress(800, 100, out) as bar:
        clock.t += 3
        bar.update(12, 12345)
        clock.t += 60
        bar.update(88, 100_000)
    bar.close()  # twice: harmless
    text = ANSI.sub("", out.getvalue())
    assert "112/800 trials  4,115 trial-steps/s  elapsed 0m03s  ETA 2m52s" in text
    assert "200/800 trials" in text and "ETA" in text
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert bar.done == 200


def test_terminal_bar_closes_on_error(clock, monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    out = Terminal()
    with pytest.raises(KeyboardInterrupt), progress.Progress(0, 0, out):
        raise KeyboardInterrupt
    assert ANSI.sub("", out.getvalue()).endswith("\n")
    assert "\x1b[?25h" in out.getvalue()  # the cursor is shown again


def test_dumb_terminal_gets_plain_lines(clock, monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    out = Terminal()
    bar = progress.Progress(4, 0, out)
    clock.t += 1
    bar.update(2, 10)
    bar.close()
    assert out.getvalue() == ("[############............] 2/4 trials  10 trial-steps/s  "
                              "elapsed 0m01s  ETA 0m01s\n")


def test_a_warning_is_one_line_above_the_live_bar_or_on_stderr(clock, monkeypatch, capsys):
    monkeypatch.setenv("TERM", "xterm-256color")
    for var in ("TTY_COMPATIBLE", "TTY_INTERACTIVE", "FORCE_COLOR", "NO_COLOR", "COLUMNS"):
        monkeypatch.delenv(var, raising=False)
    out = Terminal()
    warning = "warning: the fused kernel is off for the program (n=50, W=100, batch 32): " * 2
    with progress.Progress(8, 0, out) as bar:
        clock.t += 1
        bar.update(2, 10)
        bar.warn(warning)
        bar.update(2, 10)
    lines = ANSI.sub("", out.getvalue()).replace("\r", "\n").splitlines()
    assert warning in lines  # whole, on its own line, not wrapped nor erased by a redraw
    assert lines.index(warning) < max(i for i, line in enumerate(lines) if "4/8 trials" in line)
    assert capsys.readouterr().err == ""
    plain = progress.Progress(8, 0, io.StringIO())  # a file or None: stderr
    plain.warn(warning)
    assert capsys.readouterr().err == warning + "\n"
