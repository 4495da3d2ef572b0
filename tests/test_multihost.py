"""multihost: two processes joined as one give the same results as one process."""

import json
import socket
import sqlite3
import subprocess

import faults
import pytest
from conftest import stored_trials


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_same_results_as_one(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text(faults.SMALL.replace("steps = 3000", "steps = 400"))
    single = tmp_path / "single"
    subprocess.run(faults.command(config, single, "40K"), check=True, capture_output=True)
    out = tmp_path / "multi"
    port = _free_port()
    env = {**__import__("os").environ,
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = [subprocess.Popen(
        faults.command(config, out, "40K") + [
            "--coordinator", f"localhost:{port}", "--num-processes", "2",
            "--process-id", str(i)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    logs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert stored_trials(out) == stored_trials(single)
    meta = sqlite3.connect(out / "results.sqlite").execute(
        "SELECT value FROM meta WHERE key = 'plan'").fetchone()[0]
    assert json.loads(meta)["devices"] == 4  # 2 processes x 2 devices
