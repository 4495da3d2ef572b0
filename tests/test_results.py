"""results: the Results reader checks its arguments like the CLI."""

import pytest
from conftest import TINY_TOML, one_error

import parity_jax
from parity_jax import ConfigError, cli, kinds

pytestmark = pytest.mark.quick  # pure Python: make test-quick

SMALL = TINY_TOML.replace('name = "tiny"', 'name = "edges"')


@pytest.mark.slow
def test_frontier_target_is_checked_like_the_cli(tmp_path, capsys):
    config = tmp_path / "s.toml"
    config.write_text(SMALL.replace("m = [40, 80]", "m = 40").replace("width = [4, 8]",
                                                                       "width = 4"))
    out = tmp_path / "o"
    results = parity_jax.run(kinds.load_study(config), out, progress=None)
    for target in (2, 0, True, "0.5"):
        with pytest.raises(ConfigError, match="target = .*: must be a number in \\(0, 1\\]"):
            results.frontier(target)
    assert cli.main(["report", str(out), "--target", "2"]) == 2
    assert "--target = 2.0: must be a number in (0, 1]" in one_error(capsys)
