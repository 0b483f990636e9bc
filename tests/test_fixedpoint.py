"""fixedpoint: every integer helper against unbounded Python integers, float32 against NumPy."""

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax import lax

from s2jax import fixedpoint as fx
from s2jax.fixedpoint import Rounding

I32 = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([-(2**31), 2**31 - 1, -1, 0, 1, -(2**30), 2**30]))
EDGES = np.array([-(2**31), -(2**31) + 1, -(2**30) - 1, -65537, -32768, -3, -2, -1, 0, 1, 2, 3, 32767, 32768,
                  65535, 2**30, 2**31 - 9, 2**31 - 2, 2**31 - 1], np.int64)


def py_round(num: int, den: int, rounding: Rounding) -> int:
    x = Fraction(num, den)
    fl = num // den
    rem = x - fl
    if rounding is Rounding.FLOOR:
        return fl
    if rounding is Rounding.TO_ZERO:
        return fl + (1 if x < 0 and rem else 0)
    if rounding is Rounding.HALF_UP:
        return fl + (1 if rem >= Fraction(1, 2) else 0)
    return fl + (1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2) else 0)


def sat(x):
    return max(-(2**31), min(2**31 - 1, x))


@pytest.mark.parametrize("rounding", list(Rounding))
def test_shift_right_every_shift_on_edges(rounding):
    f = jax.jit(lambda x, s: fx.shift_right(x, s, rounding))
    for s in range(32):
        got = np.asarray(f(jnp.asarray(EDGES, jnp.int32), s)).astype(np.int64)
        want = [py_round(int(x), 2**s, rounding) for x in EDGES]
        np.testing.assert_array_equal(got, want, err_msg=f"shift {s}")


@given(st.lists(I32, min_size=1, max_size=64), st.integers(0, 31), st.sampled_from(list(Rounding)))
def test_shift_right_random(xs, s, rounding):
    got = np.asarray(fx.shift_right(jnp.asarray(xs, jnp.int32), s, rounding)).astype(np.int64)
    np.testing.assert_array_equal(got, [py_round(x, 2**s, rounding) for x in xs])


def test_rounding_modes_differ_where_they_should():
    x = jnp.asarray([5, -5, 6, -6, 7, -7], jnp.int32)  # /2: 2.5, -2.5, 3, -3, 3.5, -3.5
    assert fx.shift_right(x, 1, Rounding.FLOOR).tolist() == [2, -3, 3, -3, 3, -4]
    assert fx.shift_right(x, 1, Rounding.TO_ZERO).tolist() == [2, -2, 3, -3, 3, -3]
    assert fx.shift_right(x, 1, Rounding.HALF_UP).tolist() == [3, -2, 3, -3, 4, -3]
    assert fx.shift_right(x, 1, Rounding.HALF_EVEN).tolist() == [2, -2, 3, -3, 4, -4]


def test_shift_right_rejects_other_dtypes():
    with pytest.raises(TypeError, match="int32"):
        fx.shift_right(jnp.asarray([1.0], jnp.float32), 1, Rounding.FLOOR)


@given(st.lists(st.tuples(I32, I32), min_size=1, max_size=64))
def test_saturating_add_sub(pairs):
    a = jnp.asarray([p[0] for p in pairs], jnp.int32)
    b = jnp.asarray([p[1] for p in pairs], jnp.int32)
    np.testing.assert_array_equal(np.asarray(fx.add_saturate(a, b)).astype(np.int64), [sat(x + y) for x, y in pairs])
    np.testing.assert_array_equal(np.asarray(fx.sub_saturate(a, b)).astype(np.int64), [sat(x - y) for x, y in pairs])


@given(st.lists(I32, min_size=1, max_size=32), st.integers(0, 30))
def test_shift_left_saturate(xs, s):
    got = np.asarray(fx.shift_left_saturate(jnp.asarray(xs, jnp.int32), s)).astype(np.int64)
    np.testing.assert_array_equal(got, [sat(x * 2**s) for x in xs])


def test_saturate_keeps_dtype():
    y = fx.saturate(jnp.asarray([-300, 5, 300], jnp.int32), -128, 127)
    assert y.dtype == jnp.int32 and y.tolist() == [-128, 5, 127]


@pytest.mark.parametrize("frac", [1, 8, 15, 16])
@pytest.mark.parametrize("rounding", list(Rounding))
def test_mul_shift_exhaustive_edges(frac, rounding):
    alphas = sorted({0, 1, 2 ** (frac - 1), 2**frac - 1, 2**frac, (2**frac * 9) // 10})
    xs = jnp.asarray(EDGES, jnp.int32)
    for a in alphas:
        got = np.asarray(fx.mul_shift(xs, jnp.int32(a), frac, rounding)).astype(np.int64)
        want = [py_round(a * int(x), 2**frac, rounding) for x in EDGES]
        np.testing.assert_array_equal(got, want, err_msg=f"alpha_q {a}")


@given(st.lists(I32, min_size=1, max_size=64), st.integers(0, 2**16), st.sampled_from(list(Rounding)))
def test_mul_shift_random(xs, a, rounding):
    got = np.asarray(jax.jit(lambda x: fx.mul_shift(x, a, 16, rounding))(jnp.asarray(xs, jnp.int32)))
    np.testing.assert_array_equal(got.astype(np.int64), [py_round(a * x, 2**16, rounding) for x in xs])


@given(st.lists(st.integers(-(2**23), 2**23), min_size=1, max_size=32), st.integers(0, 12), st.booleans(),
       st.sampled_from(list(Rounding)))
def test_requantize(accs, shift, relu, rounding):
    got = np.asarray(fx.requantize(jnp.asarray(accs, jnp.int32), shift, rounding, relu=relu)).astype(np.int64)
    want = []
    for acc in accs:
        y = py_round(acc, 2**shift, rounding)
        y = max(y, 0) if relu else y
        want.append(max(-128, min(127, y)))
    np.testing.assert_array_equal(got, want)


def _triples(n, seed):
    rng = np.random.default_rng(seed)

    def draw():
        return (rng.standard_normal(n) * 10 ** rng.uniform(-4, 4, n)).astype(np.float32)

    return draw(), draw(), draw(), draw()


def test_fmul_is_not_fused_under_jit_and_scan():
    """10^6 random triples: fl(fl(fl(a*v) + I) + b) equals NumPy float32, op by op, bit for bit."""
    a, v, i, b = _triples(1_000_000, 0)
    want = ((a * v) + i) + b  # NumPy: each operation rounded to float32

    def chip(a, v, i, b):
        return (fx.fmul(a, v) + i) + b

    def plain(a, v, i, b):
        return (a * v + i) + b

    got = np.asarray(jax.jit(chip)(a, v, i, b))
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))

    def scanned(a, v, i, b):
        rows = tuple(x.reshape(1000, 1000) for x in (a, v, i, b))
        return lax.scan(lambda c, x: (c, chip(*x)), 0, rows)[1].reshape(-1)

    got = np.asarray(jax.jit(scanned)(a, v, i, b))
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))

    # The same expression without fmul is contracted into an FMA by XLA on CPU: this is what the
    # test guards against. (If a future XLA stops contracting, this check is merely informative.)
    mismatch = np.mean(np.asarray(jax.jit(plain)(a, v, i, b)).view(np.int32) != want.view(np.int32))
    print(f"plain JAX a*v+I+b differs from op-by-op float32 in {mismatch:.1%} of triples")


def test_fmul_recurrence_matches_numpy():
    """A decaying membrane over 500 ticks, the way the chip model uses it (carry through scan)."""
    a, v0, i, b = _triples(2000, 1)
    a = np.abs(a) / (np.abs(a) + 1)
    i = i.reshape(500, 4)[:, :4]

    def run(v):
        def body(v, x):
            v = (fx.fmul(a[:4], v) + x) + b[:4]
            return v, v
        return lax.scan(body, v, i)[1]

    got = np.asarray(jax.jit(run)(v0[:4]))
    v = v0[:4].copy()
    want = []
    for t in range(500):
        v = ((a[:4] * v) + i[t]) + b[:4]
        want.append(v)
    np.testing.assert_array_equal(got.view(np.int32), np.stack(want).view(np.int32))


def test_fmul_gradient_is_the_product_rule():
    g = jax.grad(lambda a, v: fx.fmul(a, v), argnums=(0, 1))(jnp.float32(0.5), jnp.float32(3.0))
    assert float(g[0]) == 3.0 and float(g[1]) == 0.5


@pytest.mark.parametrize("rounding,want", [
    (Rounding.FLOOR, [-3, -3, 2, 2]), (Rounding.TO_ZERO, [-2, -2, 2, 2]),
    (Rounding.HALF_UP, [-2, -3, 3, 3]), (Rounding.HALF_EVEN, [-2, -3, 2, 3]),
])
def test_round_host(rounding, want):
    assert fx.round_host([-2.5, -2.6, 2.5, 2.6], rounding).tolist() == want
