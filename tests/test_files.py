"""files: an output file is replaced whole (a kill mid-write leaves the old one) and never
written through a link; a file read whole is a regular file within a size limit, and any
failure to read it is one InputError line."""

import os
import threading

import pytest
from conftest import make_victim

pytestmark = pytest.mark.quick  # pure Python: make test-quick


def test_an_output_file_is_replaced_whole_and_never_written_through_a_link(tmp_path):
    from parity_jax import files

    victim, data = make_victim(tmp_path)
    target = tmp_path / "report.json"
    target.write_text("old\n")
    target.chmod(0o640)

    def half(f):
        f.write(b"new but")
        raise KeyboardInterrupt  # a kill mid-write

    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(target, half)
    assert target.read_text() == "old\n"  # the old file survives whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "victim.txt"]
    files.write_text(target, "new\n")
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == 0o640
    (tmp_path / "link.json").symlink_to(victim)
    with pytest.raises(files.OutputError, match="link.json is a symbolic link"):
        files.write_text(tmp_path / "link.json", "x")
    assert victim.read_bytes() == data


def _within(fn, seconds=20.0):
    """``fn()`` in a thread: (value, exception); a failure if it hangs."""
    out = []

    def call():
        try:
            out.append((fn(), None))
        except BaseException as e:  # noqa: BLE001 -- handed back to the test
            out.append((None, e))

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the read hangs"
    return out[0]


def test_read_bytes_reads_a_regular_file_and_follows_a_link_to_one(tmp_path):
    from parity_jax import files

    (tmp_path / "a.json").write_bytes(b'{"x": [1, 2]}')
    (tmp_path / "link.json").symlink_to(tmp_path / "a.json")
    assert files.read_bytes(tmp_path / "a.json") == b'{"x": [1, 2]}'
    assert files.read_json(tmp_path / "link.json") == {"x": [1, 2]}
    assert files.read_text(tmp_path / "a.json", limit=13) == '{"x": [1, 2]}'


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                    reason="needs FIFOs and /dev/zero")
def test_what_is_not_a_regular_file_within_the_limit_is_one_input_error(tmp_path):
    from parity_jax import files

    os.mkfifo(tmp_path / "fifo")  # no writer: a plain open() waits forever
    (tmp_path / "zero").symlink_to("/dev/zero")  # read() never ends
    (tmp_path / "big").write_bytes(b"1" * 101)
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "bad.json").write_text('{"x": ')
    (tmp_path / "latin1.json").write_bytes(b'"\xe9t\xe9"')
    (tmp_path / "dir").mkdir()
    for name, says in [("fifo", "is not a regular file"), ("zero", "is not a regular file"),
                       ("big", "is larger than 100 bytes"), ("deep.json", "is not valid JSON"),
                       ("bad.json", "is not valid JSON"), ("latin1.json", "is not UTF-8 text"),
                       ("dir", "is a directory"), ("missing", "file not found")]:
        limit = 100 if name == "big" else files.READ_LIMIT
        value, e = _within(lambda n=name, k=limit: files.read_json(tmp_path / n, k, what="x"))
        assert isinstance(e, files.InputError), (name, value, e)
        line = str(e)
        assert line.startswith(f"x: {tmp_path / name}") or line.startswith(
            f"x: file not found: {tmp_path / name}")
        assert says in line and "\n" not in line, (name, line)
