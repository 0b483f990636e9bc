"""The chip's arithmetic, written once.

Integer helpers work on ``int32`` arrays without widening (JAX runs with x64 off), never overflow
in an intermediate, and name their rounding. Float helpers give IEEE-754 binary32 results rounded
after every operation, as the Cortex-M4F FPU computes them.

Why :func:`fmul` exists: XLA on CPU contracts ``a * b + c`` into a fused multiply-add, which rounds
once instead of twice; about 10% of random float32 triples then differ from the chip in the last
bit. :func:`fmul` seals the product: it passes the product's bits through an XOR with a value that
is always zero (bit 0 of ``x * (x + 1)``, a product of two consecutive integers) but that neither
XLA nor LLVM can prove to be zero, so the rounded product is what the following add consumes.
``tests/test_fixedpoint.py`` checks this on 10^6 triples against NumPy, under jit and inside scan.

Float values reach the integer grid through one conversion, :func:`to_fixed` (``round(x * 2^F)``
with a named rounding, then an optional clamp), on the host and in traced code alike. The EGRU's
activations live here too: the float32 profile's :func:`sigmoid_f32` / :func:`tanh_f32` (Cephes
``expf``, one rounding per operation) and the integer profile's lookup tables (:func:`lut`).

Example::

    >>> import jax.numpy as jnp
    >>> from s2jax.fixedpoint import Rounding, shift_right
    >>> shift_right(jnp.array([-3, 3, 5], jnp.int32), 1, Rounding.HALF_EVEN).tolist()
    [-2, 2, 2]
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from s2jax.spec import Rounding

__all__ = [
    "Rounding",
    "INT32_MIN",
    "INT32_MAX",
    "shift_right",
    "shift_left_saturate",
    "saturate",
    "add_saturate",
    "sub_saturate",
    "mul_shift",
    "requantize",
    "fmul",
    "round_host",
    "round_float",
    "to_fixed",
    "sigmoid_f32",
    "tanh_f32",
    "lut",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def _round_increment(q, rem, half, negative, rounding: Rounding):
    """0/1 increment that turns a floor quotient into the named rounding.

    ``q``: floor quotient; ``rem``: remainder in [0, 2^s) as uint32; ``half``: 2^(s-1) as uint32
    (0 when s == 0, in which case ``rem`` is 0 and no increment happens); ``negative``: whether the
    exact value is negative.
    """
    nonzero = rem != 0
    if rounding is Rounding.FLOOR:
        inc = jnp.zeros_like(nonzero)
    elif rounding is Rounding.TO_ZERO:
        inc = negative & nonzero
    elif rounding is Rounding.HALF_UP:
        inc = nonzero & (rem >= half)
    elif rounding is Rounding.HALF_EVEN:
        odd = (q & 1) == 1
        inc = nonzero & ((rem > half) | ((rem == half) & odd))
    else:
        raise ValueError(f"unknown rounding {rounding!r}")
    return q + inc.astype(jnp.int32)


def shift_right(x, s, rounding: Rounding):
    """``round(x / 2^s)`` for int32 ``x`` and shift ``s`` in [0, 31], rounded as named.

    Exact for every int32 input (no ``x + 2^(s-1)`` that could overflow near INT32_MAX).
    """
    x = jnp.asarray(x)
    if x.dtype != jnp.int32:
        raise TypeError(f"shift_right needs int32, got {x.dtype}")
    if isinstance(s, int) and not 0 <= s <= 31:
        raise ValueError(f"shift must be in [0, 31], got {s}")
    s = jnp.asarray(s, jnp.int32)
    su = s.astype(jnp.uint32)
    q = lax.shift_right_arithmetic(x, s)
    mask = lax.shift_left(jnp.uint32(1), su) - jnp.uint32(1)
    rem = lax.bitcast_convert_type(x, jnp.uint32) & mask
    half = lax.shift_right_logical(lax.shift_left(jnp.uint32(1), su), jnp.uint32(1))
    half = jnp.where(s > 0, half, jnp.uint32(0))
    return _round_increment(q, rem, half, x < 0, rounding)


def saturate(x, lo: int, hi: int):
    """Clamp integer ``x`` to [lo, hi] (keeps the dtype of ``x``)."""
    x = jnp.asarray(x)
    return jnp.clip(x, jnp.asarray(lo, x.dtype), jnp.asarray(hi, x.dtype))


def add_saturate(a, b):
    """int32 ``a + b`` saturated to [INT32_MIN, INT32_MAX] instead of wrapping."""
    a = jnp.asarray(a, jnp.int32)
    b = jnp.asarray(b, jnp.int32)
    s = a + b  # wraps
    overflow = ((a ^ s) & (b ^ s)) < 0
    return jnp.where(overflow, jnp.where(a < 0, jnp.int32(INT32_MIN), jnp.int32(INT32_MAX)), s)


def sub_saturate(a, b):
    """int32 ``a - b`` saturated to [INT32_MIN, INT32_MAX] instead of wrapping."""
    a = jnp.asarray(a, jnp.int32)
    b = jnp.asarray(b, jnp.int32)
    s = a - b  # wraps
    overflow = ((a ^ b) & (a ^ s)) < 0
    return jnp.where(overflow, jnp.where(a < 0, jnp.int32(INT32_MIN), jnp.int32(INT32_MAX)), s)


def shift_left_saturate(x, s: int):
    """int32 ``x * 2^s``, saturated to the int32 range (``s`` a Python int in [0, 30])."""
    if not 0 <= s <= 30:
        raise ValueError(f"shift must be in [0, 30], got {s}")
    x = jnp.asarray(x, jnp.int32)
    lo, hi = INT32_MIN >> s, INT32_MAX >> s
    shifted = lax.shift_left(jnp.clip(x, lo, hi), jnp.int32(s))
    return jnp.where(x > hi, jnp.int32(INT32_MAX), jnp.where(x < lo, jnp.int32(INT32_MIN), shifted))


def mul_shift(v, a_q, frac_bits: int, rounding: Rounding):
    """``round(a_q * v / 2^frac_bits)`` for int32 ``v`` and an unsigned fraction ``a_q``.

    ``a_q`` must lie in [0, 2^frac_bits] (a factor in [0, 1]) and ``frac_bits`` in [1, 16]. The
    48-bit product is never formed: ``v`` is split as ``vh * 2^16 + vl`` with ``vl`` in [0, 2^16),
    ``a_q * vl`` fits uint32 and ``a_q * vh`` fits int32, and the floor quotient and remainder are
    assembled from those. The result is exact for every int32 ``v`` (its magnitude never exceeds ``|v|``).
    """
    if not 1 <= frac_bits <= 16:
        raise ValueError(f"frac_bits must be in [1, 16], got {frac_bits}")
    v = jnp.asarray(v, jnp.int32)
    a_q = jnp.asarray(a_q, jnp.int32)
    vh = lax.shift_right_arithmetic(v, jnp.int32(16))
    vl = lax.bitcast_convert_type(v, jnp.uint32) & jnp.uint32(0xFFFF)
    low = a_q.astype(jnp.uint32) * vl  # < 2^32
    high = lax.shift_left(a_q * vh, jnp.int32(16 - frac_bits))  # |.| <= 2^31
    q = high + lax.shift_right_logical(low, jnp.uint32(frac_bits)).astype(jnp.int32)
    rem = low & jnp.uint32((1 << frac_bits) - 1)
    half = jnp.uint32(1 << (frac_bits - 1))
    return _round_increment(q, rem, half, q < 0, rounding)


def requantize(acc, shift: int, rounding: Rounding, *, relu: bool = False, lo: int = -128, hi: int = 127):
    """MAC-array output stage: ``clip(relu?(round(acc / 2^shift)), lo, hi)`` as int32.

    ``acc`` is the int32 accumulator; the caller narrows the result to its output dtype.
    """
    y = shift_right(acc, shift, rounding)
    if relu:
        y = jnp.maximum(y, jnp.int32(0))
    return saturate(y, lo, hi)


@jax.custom_jvp
def fmul(a, b):
    """float32 product ``fl(a * b)`` that XLA cannot fuse into a following add (see module doc).

    Differentiable: its derivative is that of ``a * b``.
    """
    p = jnp.multiply(a, b)
    bits = lax.bitcast_convert_type(p, jnp.int32)
    zero = (bits * (bits + 1)) & 1  # always 0: one of two consecutive integers is even
    return lax.bitcast_convert_type(bits ^ zero, jnp.float32)


@fmul.defjvp
def _fmul_jvp(primals, tangents):
    a, b = primals
    da, db = tangents
    return fmul(a, b), da * b + a * db


def _round(x, rounding: Rounding, xp):
    """Round float ``x`` to integral floats with ``xp`` (NumPy or jax.numpy), exactly for every input.

    HALF_UP is ``floor(x)`` plus one where ``x - floor(x) >= 1/2``; that difference is exact in
    binary floating point, unlike ``x + 0.5``, which rounds (0.49999997 or 2^23 + 1 in float32).
    """
    if rounding is Rounding.FLOOR:
        return xp.floor(x)
    if rounding is Rounding.TO_ZERO:
        return xp.trunc(x)
    if rounding is Rounding.HALF_UP:
        f = xp.floor(x)
        return xp.where(x - f >= 0.5, f + 1, f)
    if rounding is Rounding.HALF_EVEN:
        return xp.round(x)  # NumPy's and JAX's round are half to even
    raise ValueError(f"unknown rounding {rounding!r}")


def round_host(x, rounding: Rounding) -> np.ndarray:
    """Round float values to integers on the host (NumPy float64, exact)."""
    return _round(np.asarray(x, dtype=np.float64), rounding, np)


def round_float(x, rounding: Rounding):
    """Round float values to integral floats in JAX with the named rounding (the traced twin of
    :func:`round_host`; both are exact)."""
    return _round(jnp.asarray(x), rounding, jnp)


def to_fixed(x, frac_bits: int, rounding: Rounding, lo=None, hi=None):
    """``clip(round(x * 2^frac_bits), lo, hi)``: float values on the fixed-point grid of ``frac_bits``
    fraction bits, as integer-valued floats (the caller casts them). The one float-to-fixed
    conversion of s2jax: neuron parameters (s16.15, decays 0.16), EGRU values (Q3.12), weights.

    Host or traced, by the input: a JAX array or tracer is converted in float32 with jax.numpy
    (jittable); anything else (NumPy arrays, Python numbers) in float64 with NumPy, returning NumPy.
    The product with ``2^frac_bits`` is exact unless it overflows to +-inf, and the rounding is
    exact, so float32 inputs give the same integers either way (XLA on CPU flushes subnormal
    inputs to zero, NumPy does not). ``lo`` / ``hi`` (None: no bound) clamp after rounding; without
    them +-inf and NaN pass through for the caller to report. A float32 clamp at ``INT32_MAX`` is
    ``2^31``, which ``astype(jnp.int32)`` saturates back to ``INT32_MAX``.

    Example::

        >>> to_fixed([0.5, -1.25, 3.0], 1, Rounding.HALF_EVEN, -4, 4).tolist()
        [1.0, -2.0, 4.0]
    """
    if not isinstance(frac_bits, (int, np.integer)) or isinstance(frac_bits, bool) or not 0 <= frac_bits <= 62:
        raise ValueError(f"frac_bits must be an integer in [0, 62], got {frac_bits!r}")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"to_fixed bounds must satisfy lo <= hi, got [{lo}, {hi}]")
    if isinstance(x, jax.Array):
        xp, x = jnp, jnp.asarray(x, jnp.float32)
    else:
        xp, x = np, np.asarray(x, np.float64)
    q = _round(x * (2.0**frac_bits), rounding, xp)
    if lo is not None or hi is not None:
        q = xp.clip(q, lo, hi)
    return q


# --- the EGRU's float32 activations (Cephes expf, one rounding per operation) ----------------------

_LOG2E, _C1, _C2 = 1.44269504088896341, 0.693359375, -2.12194440e-4
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
             5.0000001201e-1)
_F32 = jnp.float32


def _exp_nonpositive(x):
    """Cephes ``expf`` for ``x <= 0`` (clamped to >= -87, so the result is a normal float32)."""
    x = jnp.maximum(x, _F32(-87.0))
    n = jnp.floor(fmul(x, _F32(_LOG2E)) + _F32(0.5))
    x = x - fmul(n, _F32(_C1))
    x = x - fmul(n, _F32(_C2))
    z = fmul(x, x)
    p = _F32(_EXP_POLY[0])
    for coef in _EXP_POLY[1:]:
        p = fmul(p, x) + _F32(coef)
    p = fmul(p, z) + x + _F32(1.0)
    two_n = lax.bitcast_convert_type(lax.shift_left(n.astype(jnp.int32) + 127, 23), jnp.float32)
    return fmul(p, two_n)


@jax.custom_jvp
def sigmoid_f32(a):
    """The EGRU float32 profile's sigmoid: ``e = exp(-|a|)``, ``1/(1+e)`` for ``a >= 0`` else
    ``e/(1+e)`` (``exp`` clamped at -87); derivative ``s (1 - s)``."""
    e = _exp_nonpositive(-jnp.abs(a))
    d = _F32(1.0) + e
    return jnp.where(a >= 0, _F32(1.0) / d, e / d)


@sigmoid_f32.defjvp
def _sigmoid_jvp(primals, tangents):
    s = sigmoid_f32(primals[0])
    return s, s * (1.0 - s) * tangents[0]


@jax.custom_jvp
def tanh_f32(a):
    """The EGRU float32 profile's tanh: ``e = exp(-2|a|)``, ``sign(a) (1-e)/(1+e)``; derivative
    ``1 - t^2``."""
    e = _exp_nonpositive(fmul(_F32(-2.0), jnp.abs(a)))
    t = (_F32(1.0) - e) / (_F32(1.0) + e)
    return jnp.where(a < 0, -t, t)


@tanh_f32.defjvp
def _tanh_jvp(primals, tangents):
    t = tanh_f32(primals[0])
    return t, (1.0 - t * t) * tangents[0]


@functools.lru_cache(maxsize=None)
def lut(kind: str, entries: int, lo: float, hi: float, frac_bits: int) -> np.ndarray:
    """The int16 table of ``kind`` ("sigmoid" or "tanh") over [lo, hi): ``entries`` bins, entry
    ``round_half_even(f(bin centre) * 2^frac_bits)``, computed on the host in float64."""
    width = (hi - lo) / entries
    centre = lo + (np.arange(entries, dtype=np.float64) + 0.5) * width
    f = 1.0 / (1.0 + np.exp(-centre)) if kind == "sigmoid" else np.tanh(centre)
    table = to_fixed(f, frac_bits, Rounding.HALF_EVEN, -32768, 32767).astype(np.int16)
    table.flags.writeable = False
    return table
