"""settings: each environment variable, read when asked, a good value and a bad one."""

from pathlib import Path

import pytest
from conftest import TINY_TOML, one_error

from parity_jax import ConfigError, cli, settings

pytestmark = pytest.mark.quick  # pure Python: make test-quick

SMALL = TINY_TOML.replace('name = "tiny"', 'name = "edges"')


@pytest.mark.parametrize("raw, want", [("", None), ("  ", None), ("3", 3), (" 2 ", 2)])
def test_cpu_devices(monkeypatch, raw, want):
    monkeypatch.setenv("PARITY_JAX_CPU_DEVICES", raw)
    assert settings.cpu_devices() == want


def test_cpu_devices_unset(monkeypatch):
    monkeypatch.delenv("PARITY_JAX_CPU_DEVICES", raising=False)
    assert settings.cpu_devices() is None


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5", "1025", str(2**31), "100000"])
def test_cpu_devices_bad(monkeypatch, raw):
    # past 1024: 2^31 was a JAX traceback, 100000 a plan that ran for minutes
    monkeypatch.setenv("PARITY_JAX_CPU_DEVICES", raw)
    with pytest.raises(ConfigError, match=f"^PARITY_JAX_CPU_DEVICES = '{raw}': must be an "
                                          r"integer in 1\.\.1024 .*or unset \(one per core\)$"):
        settings.cpu_devices()


def test_cpu_devices_bound_is_in_the_table(monkeypatch):
    monkeypatch.setenv("PARITY_JAX_CPU_DEVICES", "1024")
    assert settings.cpu_devices() == 1024 == settings.BOUNDS[settings.CPU_DEVICES][1]


@pytest.mark.parametrize("value", [1e-3, 1.0, 300.0, 86400.0])
def test_budget(value):
    assert settings.budget(value) == value


@pytest.mark.parametrize("value", [0.0, -1.0, 1e10, 1e300, float("inf"), float("nan")])
def test_budget_bad(value):
    # 1e10 was accepted, then every check failed with OverflowError from the alarm timer
    with pytest.raises(ConfigError, match=r"^--budget = .*: must be a number of seconds in "
                                          r"0\.001\.\.86400$"):
        settings.budget(value)


@pytest.mark.parametrize("where, url", [("gs://bucket/x", True), ("file:///tmp/x", True),
                                        ("/tmp/x", False), ("relative/dir", False)])
def test_is_url(where, url):
    assert settings.is_url(where) is url


def test_cpu_devices_forced_by_xla_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=3")
    assert settings.cpu_devices_forced()
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    assert not settings.cpu_devices_forced()
    monkeypatch.delenv("XLA_FLAGS")
    assert not settings.cpu_devices_forced()


@pytest.mark.parametrize("raw", ["off", "OFF", " Off "])
def test_cache_off(monkeypatch, raw):
    monkeypatch.setenv("PARITY_JAX_CACHE", raw)
    assert settings.cache() is None


def test_cache_directory_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("PARITY_JAX_CACHE", f" {tmp_path / 'c'} ")
    assert settings.cache() == str(tmp_path / "c")
    # any other value is a directory: one that cannot be made turns the cache off there
    # (devices.compile_cache), so no value is an error
    monkeypatch.setenv("PARITY_JAX_CACHE", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert settings.cache() == str(tmp_path / "xdg" / "parity_jax" / "jax")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert settings.cache() == str(tmp_path / "home" / ".cache" / "parity_jax" / "jax")


@pytest.mark.parametrize("raw, want", [("", "auto"), ("auto", "auto"), (" OFF ", "off"),
                                       ("on", "on"), ("Interpret", "interpret"),
                                       ("3xtf32", "3xtf32")])
def test_kernel(monkeypatch, raw, want):
    monkeypatch.setenv("PARITY_JAX_KERNEL", raw)
    assert settings.kernel() == want


def test_kernel_unset_and_bad(monkeypatch):
    monkeypatch.delenv("PARITY_JAX_KERNEL", raising=False)
    assert settings.kernel() == "auto"
    monkeypatch.setenv("PARITY_JAX_KERNEL", "Fast")  # read again on every call
    with pytest.raises(ConfigError, match="^PARITY_JAX_KERNEL = 'fast': must be one of auto, "
                                          "off, on, interpret, 3xtf32$"):
        settings.kernel()


def test_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PARITY_JAX_DATA", str(tmp_path / "data"))
    assert settings.data_dir() == tmp_path / "data"
    # any value is a directory (set but empty: the current one, as before); none is an error
    monkeypatch.setenv("PARITY_JAX_DATA", "")
    assert settings.data_dir() == Path("")
    monkeypatch.delenv("PARITY_JAX_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert settings.data_dir() == tmp_path / "home" / ".cache" / "parity_jax"


def test_distributed(monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    assert settings.coordinator() is None and settings.distributed() == (None, None)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", " 3")  # int()'s parsing, as runner's was
    assert settings.coordinator() == "10.0.0.1:1234" and settings.distributed() == (4, 3)


def test_a_bad_process_count_matters_only_to_a_multi_host_job(monkeypatch):
    from parity_jax import multihost

    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    multihost.init_distributed()  # one process: nothing read, nothing joined
    with pytest.raises(ConfigError, match="^JAX_NUM_PROCESSES = 'two'"):
        multihost.init_distributed("10.0.0.1:1234")


@pytest.mark.parametrize("name", ["JAX_NUM_PROCESSES", "JAX_PROCESS_ID"])
@pytest.mark.parametrize("raw", ["two", "-1", str(2**40)])
def test_distributed_bad(monkeypatch, name, raw):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=f"^{name} = '{raw}': must be an integer in "):
        settings.distributed()


def test_docstring_tables_every_variable():
    for name in (settings.CPU_DEVICES, settings.CACHE, settings.KERNEL, settings.DATA,
                 settings.COORDINATOR, settings.NUM_PROCESSES, settings.PROCESS_ID, "XLA_FLAGS",
                 *(f"``{c}``" for c in settings.KERNEL_CHOICES)):
        assert name in settings.__doc__, name


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5", "100000"])
def test_a_bad_cpu_device_count_is_one_line_naming_the_variable(tmp_path, monkeypatch, capsys,
                                                                value):
    config = tmp_path / "s.toml"
    config.write_text(SMALL)
    monkeypatch.setenv("PARITY_JAX_CPU_DEVICES", value)
    for argv in (["plan", str(config)], ["run", str(config), "--out", str(tmp_path / "o")]):
        assert cli.main(argv) == 2
        assert one_error(capsys) == (f"error: PARITY_JAX_CPU_DEVICES = {value!r}: must be an "
                                      "integer in 1..1024 (the JAX CPU devices to split the "
                                      "CPU into), or unset (one per core)")
    assert not (tmp_path / "o").exists()
