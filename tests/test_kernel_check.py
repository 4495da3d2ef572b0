"""kernel_check's verdict cache against damaged files: a FIFO, JSON nested too deep, a link to
/dev/zero, a huge file, entries of the wrong type -- each treated as absent (the check runs
again), never a hang, a traceback or memory eaten; a cached detail is printed as one short
line."""

import json
import os
import random
import threading

import pytest
from conftest import small_shape

from parity_jax import kernel_check

pytestmark = pytest.mark.quick  # pure Python: make test-quick

SHAPE = small_shape(kernel="interpret")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    kernel_check._verdicts.clear()
    checked = []
    monkeypatch.setattr(kernel_check, "self_check",
                        lambda shape: checked.append(shape) or (True, 1e-7, "agrees"))
    yield checked
    kernel_check._verdicts.clear()


def _verdict_within(path, seconds=20.0):
    """``kernel_check.verdict`` in a thread: its result, or a failure if it hangs."""
    out = []
    worker = threading.Thread(target=lambda: out.append(kernel_check.verdict(SHAPE, str(path))),
                              daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "verdict() hangs on this file"
    return out[0]


def _fifo(path):
    os.mkfifo(path)


def _deep(path):
    path.write_text("[" * 100_000 + "]" * 100_000)  # a RecursionError in json.loads


def _dev_zero(path):
    path.symlink_to("/dev/zero")  # read to the end: memory runs out


def _huge(path):
    path.write_bytes(b" " * (kernel_check.VERDICTS_LIMIT + 1))


def _not_utf8(path):
    path.write_bytes(b"\xff\xfe{}")


def _directory(path):
    path.mkdir()


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                    reason="needs FIFOs and /dev/zero")
@pytest.mark.parametrize("damage", [_fifo, _deep, _dev_zero, _huge, _not_utf8, _directory])
def test_a_damaged_verdicts_file_is_absent(tmp_path, _fresh, damage):
    path = tmp_path / kernel_check.VERDICTS_FILE
    damage(path)
    assert _verdict_within(path) == (True, "agrees")
    assert len(_fresh) == 1  # checked again, as with no file


def test_verdict_entries_of_any_shape_are_absent_or_honoured(tmp_path, _fresh):
    # a property test, damaged-store style: random JSON values in place of the file and of
    # this geometry's entry; only an object entry with a boolean "ok" is a verdict
    rng = random.Random(0)
    key = kernel_check.verdict_key(SHAPE)

    def value(depth=0):
        kinds = ["int", "float", "str", "bool", "none"] + (["list", "dict"] if depth < 3 else [])
        kind = rng.choice(kinds)
        return {"int": lambda: rng.randint(-2**70, 2**70), "float": lambda: rng.random() * 1e300,
                "str": lambda: "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(20)),
                "bool": lambda: rng.random() < 0.5, "none": lambda: None,
                "list": lambda: [value(depth + 1) for _ in range(3)],
                "dict": lambda: {str(i): value(depth + 1) for i in range(3)}}[kind]()

    path = tmp_path / kernel_check.VERDICTS_FILE
    for i in range(60):
        kernel_check._verdicts.clear()
        entry = value() if i % 3 else {"ok": value(), "detail": value()}
        content = {key: entry} if i % 2 else value()
        path.write_text(json.dumps(content))
        before = len(_fresh)
        ok, detail = _verdict_within(path)
        cached = isinstance(entry, dict) and isinstance(entry.get("ok"), bool) and i % 2
        assert len(_fresh) == before + (not cached)
        assert ok is (entry["ok"] if cached else True)
        assert detail.isprintable() and len(detail) < 1000


@pytest.mark.parametrize("detail", ["line one\nline two\x1b[31m red\x1b[0m\r", "x" * 100_000,
                                    ["not", "a string"]])
def test_a_cached_detail_is_one_short_line(tmp_path, _fresh, detail):
    path = tmp_path / kernel_check.VERDICTS_FILE
    path.write_text(json.dumps({kernel_check.verdict_key(SHAPE): {"ok": False,
                                                                  "detail": detail}}))
    ok, got = _verdict_within(path)
    assert ok is False and not _fresh
    line = kernel_check.warning(SHAPE, got)
    assert line.isprintable() and "\x1b" not in line and "\n" not in line
    assert len(line) < 2 * kernel_check.DETAIL_LIMIT + 200
    assert "(verdict cached in" in got
