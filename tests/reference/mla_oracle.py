"""The MAC-array layers with scalar Python loops and unbounded integers (the oracle of
``s2jax.hwmodel.mla`` and of the ``mla_dense`` / ``mla_conv2d`` layer kinds)."""

from __future__ import annotations

import numpy as np

from s2jax import Rounding


def py_shift(acc: int, s: int, rounding: Rounding) -> int:
    fl, rem = acc >> s, acc - ((acc >> s) << s)
    half = 1 << (s - 1) if s else 0
    if rounding is Rounding.FLOOR or rem == 0:
        return fl
    if rounding is Rounding.TO_ZERO:
        return fl + (acc < 0)
    if rounding is Rounding.HALF_UP:
        return fl + (rem >= half)
    return fl + (rem > half or (rem == half and fl % 2 == 1))


def py_out(acc, shift, rounding, relu, lo, hi):
    y = py_shift(acc, shift, rounding)
    return min(max(max(y, 0) if relu else y, lo), hi)


def dense(x, w, b, shift, rounding, relu, lo=-128, hi=127):
    """``x`` ``(N, K)``, ``w`` ``(O, K)``, ``b`` ``(O,)`` or None -> ``(N, O)`` int64."""
    n, (o, k) = len(x), w.shape
    return np.array([[py_out((0 if b is None else int(b[j])) + sum(int(w[j, i]) * int(x[m, i]) for i in range(k)),
                             shift, rounding, relu, lo, hi) for j in range(o)] for m in range(n)], np.int64).reshape(n, o)


def conv2d(x, w, b, shift, stride, pad, rounding, relu, lo=-128, hi=127):
    """``x`` ``(N, C, H, W)``, ``w`` ``(O, C, kH, kW)`` -> ``(N, O, H_out, W_out)`` int64 (cross-correlation)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (pt, pb), (pl, pr) = pad
    ho = (h + pt + pb - kh) // stride[0] + 1
    wo = (wd + pl + pr - kw) // stride[1] + 1
    out = np.zeros((n, o, ho, wo), np.int64)
    for ni in range(n):
        for oi in range(o):
            for yy in range(ho):
                for xx in range(wo):
                    acc = 0 if b is None else int(b[oi])
                    for ci in range(c):
                        for ky in range(kh):
                            for kx in range(kw):
                                iy, ix = yy * stride[0] + ky - pt, xx * stride[1] + kx - pl
                                if 0 <= iy < h and 0 <= ix < wd:
                                    acc += int(w[oi, ci, ky, kx]) * int(x[ni, ci, iy, ix])
                    out[ni, oi, yy, xx] = py_out(acc, shift, rounding, relu, lo, hi)
    return out
