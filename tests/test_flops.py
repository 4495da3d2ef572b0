"""flops: the FLOPs counted by hand, in pure Python (the reducer imports it without JAX)."""

import subprocess
import sys

import pytest

from parity_jax import flops

pytestmark = pytest.mark.quick  # pure Python: make test-quick


def test_flops_to_step_equals_the_flops_counted_by_hand():
    cell = dict(width=10, n=50, batch=32, n_test=2000, eval_every=100)
    # depth 1, per step 4*B*r*(n+2) = 66,560; per test row 2*r*(n+1) = 1,020; 47 evaluations
    assert 4 * 32 * 10 * 52 == 66_560 and 2 * 10 * 51 == 1_020
    assert flops.flops_to_step(4700, depth=1, **cell) == 4700 * 66_560 + 47 * 2000 * 1_020
    assert flops.flops_to_step(4700, depth=1, **cell) == 408_712_000
    # a step past an evaluation starts the next one: ceil(4701 / 100) = 48 evaluations
    assert flops.flops_to_step(4701, depth=1, **cell) == 4701 * 66_560 + 48 * 2000 * 1_020
    # depth 2 adds 6*B*r^2 = 19,200 per step and 2*r^2 = 200 per test row
    assert flops.flops_to_step(4700, depth=2, **cell) == (4700 * (66_560 + 19_200)
                                                          + 47 * 2000 * (1_020 + 200))
    assert flops.flops_to_step(4700, depth=2, **cell) == 517_752_000


def test_counting_flops_imports_no_jax():
    code = ("import sys; import parity_jax.flops, parity_jax.reduce; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
