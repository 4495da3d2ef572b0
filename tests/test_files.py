"""files: an output file is replaced whole (a kill mid-write leaves the old one) and never
written through a link."""


import pytest
from conftest import make_victim


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
