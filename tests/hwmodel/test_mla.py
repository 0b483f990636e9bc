"""The int8 MAC layer against scalar Python loops with unbounded integers."""

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2jax import Rounding
from s2jax.hwmodel import mla
from tests.reference import mla_oracle
from tests.reference.mla_oracle import py_out


@given(seed=st.integers(0, 2**31), shift=st.integers(0, 14), rounding=st.sampled_from(list(Rounding)),
       relu=st.booleans(), unsigned_x=st.booleans())
def test_dense_matches_loops(seed, shift, rounding, relu, unsigned_x):
    rng = np.random.default_rng(seed)
    k, o = int(rng.integers(1, 40)), int(rng.integers(1, 9))
    x = rng.integers(0, 256, (3, k)).astype(np.uint8) if unsigned_x else rng.integers(-128, 128, (3, k)).astype(np.int8)
    x[0] = 255 if unsigned_x else -128  # range edges
    w = rng.integers(-128, 128, (o, k)).astype(np.int8)
    w[0] = -128
    b = rng.integers(-(2**20), 2**20, o).astype(np.int32)
    got = np.asarray(jax.jit(lambda x, w, b: mla.dense(x, w, b, shift=shift, rounding=rounding, relu=relu))(x, w, b))
    assert got.dtype == np.int8
    want = [[py_out(int(b[j]) + sum(int(w[j, i]) * int(x[n, i]) for i in range(k)), shift, rounding, relu, -128, 127)
             for j in range(o)] for n in range(3)]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("stride,pad", [((1, 1), ((0, 0), (0, 0))), ((2, 1), ((1, 0), (2, 1)))])
def test_conv2d_matches_loops(stride, pad):
    rng = np.random.default_rng(0)
    n, c, h, wd, o, kh, kw = 2, 3, 7, 6, 4, 3, 2
    x = rng.integers(-128, 128, (n, c, h, wd)).astype(np.int8)
    w = rng.integers(-128, 128, (o, c, kh, kw)).astype(np.int8)
    b = rng.integers(-1000, 1000, o).astype(np.int32)
    got = np.asarray(mla.conv2d(x, w, b, shift=6, stride=stride, padding=pad, relu=True, out_range=(0, 255)))
    assert got.dtype == np.uint8
    want = mla_oracle.conv2d(x, w, b, 6, stride, pad, Rounding.FLOOR, True, 0, 255)
    np.testing.assert_array_equal(got, want)


def test_operands_must_be_8_bit():
    with pytest.raises(TypeError, match="int8 or uint8"):
        mla.dense(np.zeros((1, 4), np.int32), np.zeros((2, 4), np.int8), shift=0)
    assert mla.output_dtype(-32768, 32767) == np.int16
