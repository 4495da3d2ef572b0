"""The fused kernel's dot variants (``kernel.variants``): the TF32 split (``tf32``, ``split``)
against plain numpy, and each variant's kernel in interpret mode on the CPU against the XLA
step at float32's tolerance (``kernel_check.self_check``), which a single TF32 pass fails."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from parity_jax import core, kernel, kernel_check
from parity_jax.tasks import sparse


def _values(count=20000, seed=0):
    """float32 values of many magnitudes and both signs, with exact TF32 ties among them."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(count) * np.exp2(rng.integers(-60, 60, count))
    ties = np.float32(1 + 2.0 ** -11) * np.array([1, -1, 3.0, -2.0 ** -30])  # half a TF32 ulp
    return np.concatenate([v.astype(np.float32), ties.astype(np.float32), [0, -0.0, 1, -1]])


def _significant_bits(v):
    """Bits from the highest set bit of each float32's significand to its lowest."""
    mant = (v.view(np.uint32) & 0x7FFFFF) | 0x800000
    low = np.log2(mant & -mant.astype(np.int64)).astype(int)
    return 24 - low


def test_tf32_rounds_to_the_nearest_tf32_number():
    v = _values()
    hi = np.asarray(kernel.tf32(jnp.asarray(v)))
    nonzero = v != 0
    assert np.all(_significant_bits(hi[nonzero]) <= 11)  # 1 implicit + 10 explicit bits
    # nearest: within half a TF32 ulp of v (2^-11 of v's binade), ties away from zero
    ulp = np.exp2(np.floor(np.log2(np.abs(v[nonzero]))) - 10)
    assert np.all(np.abs(hi[nonzero].astype(np.float64) - v[nonzero]) <= ulp / 2)
    ties = np.float32(1 + 2.0 ** -11) * np.float32([1, -1])
    assert list(np.asarray(kernel.tf32(jnp.asarray(ties)))) == [1 + 2.0 ** -10, -1 - 2.0 ** -10]
    assert np.all(hi[~nonzero] == 0)


def test_tf32_keeps_nan_and_infinities():
    # 0x7FFFFFFF: a GPU's NaN, whose bits plus half a TF32 ulp would carry into the sign
    special = np.array([0x7FFFFFFF, 0xFFFFFFFF, 0x7FC00000, 0x7F800000, 0xFF800000],
                       np.uint32).view(np.float32)
    hi, lo = (np.asarray(p) for p in kernel.split(jnp.asarray(special)))
    np.testing.assert_array_equal(hi, special)
    assert np.all(np.isnan(lo))  # hi + lo stays non-finite: the dot sees it


def test_split_is_two_tf32_numbers_summing_to_the_value():
    v = _values(seed=1)
    hi, lo = (np.asarray(p) for p in kernel.split(jnp.asarray(v)))
    for part in (hi, lo):
        assert np.all(_significant_bits(part[part != 0]) <= 11)
    exact = hi.astype(np.float64) + lo
    assert np.all(np.abs(exact - v) <= 2.0 ** -22 * np.abs(v))
    # the low part is what hi missed: far below it (at most half a TF32 ulp)
    assert np.all(np.abs(lo) <= 2.0 ** -11 * np.abs(v))


DIMS = (((1,), (1,)), ((), ()))  # the forward dot's: w (W, n) . x (B, n)


def test_split_dots_have_float32_accuracy():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((64, 50)).astype(np.float32)
    gauss = rng.standard_normal((32, 50)).astype(np.float32)
    signs = rng.choice(np.float32([-1, 1]), (32, 50))
    for x in (gauss, signs):
        exact = w.astype(np.float64) @ x.T.astype(np.float64)
        # a float32 dot's rounding bound (n u sum|terms|), twice: the split's 2^-22 per product
        bound = 2 * 50 * 2.0 ** -24 * (np.abs(w).astype(np.float64) @ np.abs(x).T)
        one = np.asarray(kernel._plain(kernel.tf32(jnp.asarray(w)), x, DIMS, kernel.TF32))
        assert np.abs(one - exact).max() > 10 * bound.max()  # one TF32 pass: far off
        three = np.asarray(kernel._three_pass(jnp.asarray(w), jnp.asarray(x), DIMS, None))
        assert np.all(np.abs(three - exact) <= bound)
    # with +-1 inputs (xlo = 0) the two passes are the three, to the bit
    two = kernel._two_pass(jnp.asarray(w), jnp.asarray(signs), DIMS, None)
    three = kernel._three_pass(jnp.asarray(w), jnp.asarray(signs), DIMS, None)
    np.testing.assert_array_equal(np.asarray(two), np.asarray(three))


def _shape(W, precision="float32", inputs="boolean", kernel_name="interpret"):
    task = sparse.SparseTask(n=50, M=2000, batch=32, n_test=256, inputs=inputs, target=(
        "parity" if inputs == "boolean" else "staircase"), k=0 if inputs == "boolean" else 3)
    return core.Shape(task=task, depth=1, W=W, G=1, P=4, eval_every=100, loss="hinge",
                      precision=precision, kernel=kernel_name)


@pytest.mark.parametrize("precision,inputs,expected", [
    ("float32", "boolean", ("", "3xtf32", "2xtf32")),
    ("float32", "gaussian", ("", "3xtf32")),
    ("tf32", "boolean", ("",)),
    ("bfloat16", "gaussian", ("",)),
])
def test_variants_follow_precision_and_inputs(precision, inputs, expected):
    assert kernel.variants(_shape(64, precision, inputs)) == expected


def test_kernel_names_say_their_variant_and_mode():
    named = {name: (kernel.variant(name), kernel.interpreted(name)) for name in kernel.KERNELS}
    assert named == {"off": ("", False), "pallas": ("", False),
                     "pallas-3xtf32": ("3xtf32", False), "pallas-2xtf32": ("2xtf32", False),
                     "interpret": ("", True), "interpret-3xtf32": ("3xtf32", True),
                     "interpret-2xtf32": ("2xtf32", True)}
    assert set(kernel.DOTS) == {kernel.variant(name) for name in kernel.KERNELS}


@pytest.mark.slow
@pytest.mark.parametrize("W", [64, 256])
@pytest.mark.parametrize("name", ["interpret", "interpret-3xtf32", "interpret-2xtf32"])
def test_each_variant_passes_the_float32_self_check(W, name):
    # W = 64 (n = 50 padded to 64) keeps w1 in registers; W = 256 walks it in tiles of 64
    wp, _, _, tw = kernel.geometry(W, 50, 32)
    assert (tw == wp) == (W == 64)
    ok, rel, detail = kernel_check.self_check(_shape(W, kernel_name=name))
    assert ok and detail.startswith("agrees with the XLA step"), detail


def _one_pass(a, x, dims, precision):
    """A single TF32 pass: w rounded to TF32 and nothing recovered (what a plain TF32 dot
    computes)."""
    return kernel._plain(kernel.tf32(a), x, dims, kernel.TF32)


@pytest.mark.slow
def test_a_single_tf32_pass_fails_the_float32_self_check(monkeypatch):
    # the check has teeth: TF32's rounding of w (2^-11) is far above float32's tolerance
    monkeypatch.setitem(kernel.DOTS, "1xtf32", _one_pass)
    shape = _shape(64, kernel_name="interpret-1xtf32")
    ok, rel, detail = kernel_check.self_check(shape)
    assert not ok and detail.startswith("it disagrees with the XLA step"), detail
    # the same program with the 2-pass split agrees: the failure is the rounding's
    assert kernel_check.self_check(dataclasses.replace(shape, kernel="interpret-2xtf32"))[0]
