"""``parity-jax`` and ``python -m parity_jax``: the command line (``cli.main``), with a Ctrl-C
during its start -- importing JAX takes a second or two -- a clean exit (status 130, one line)
instead of a KeyboardInterrupt or ImportError traceback."""

import sys

from parity_jax import _start


def main(argv: list[str] | None = None) -> int:
    with _start.sigint_deferred() as interrupted:
        from parity_jax import cli
    if interrupted:
        return _start.interrupted()
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
