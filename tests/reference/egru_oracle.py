"""Independent scalar oracle of the EGRU chip profiles (SPINNAKER2.md section 6, ChipSpec egru_*).

Written separately from ``s2jax``: it imports nothing from the package but takes the numbers of a
``ChipSpec``, reads layers through their field names only (``w_in``, ``w_rec``, ``e_in``,
``e_rec``, ``bias``, ``b_rg``, ``theta``), and loops over batch, steps, layers, units and synapses
in plain Python. The float32 profile is NumPy float32 scalars, one operation at a time, every
result flushed to zero below 2^-126 (``ChipSpec.flush_subnormals``), in the event-driven order;
the integer profile is unbounded Python integers with explicit saturation and rounding. Slow by
design: use small layers.
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32
TINY = np.finfo(np.float32).tiny
I16_MIN, I16_MAX = -(2**15), 2**15 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def _ftz(x):
    x = F32(x)
    if x != 0 and abs(x) < TINY:
        return F32(np.copysign(F32(0), x))
    return x


# --- float32 profile -----------------------------------------------------------------------------------

# Cephes expf (S. L. Moshier): x = n ln2 + f, ln2 in two parts, a degree-5 polynomial in f
LOG2E, C1, C2 = 1.44269504088896341, 0.693359375, -2.12194440e-4
POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)


def exp_f32(x):
    """exp of a float32 ``x <= 0``, clamped below at -87, one rounding per operation."""
    x = F32(x)
    if x < F32(-87.0):
        x = F32(-87.0)
    n = F32(math.floor(_ftz(_ftz(x * F32(LOG2E)) + F32(0.5))))
    x = _ftz(x - _ftz(n * F32(C1)))
    x = _ftz(x - _ftz(n * F32(C2)))
    z = _ftz(x * x)
    p = F32(POLY[0])
    for coef in POLY[1:]:
        p = _ftz(_ftz(p * x) + F32(coef))
    p = _ftz(_ftz(_ftz(p * z) + x) + F32(1.0))
    return _ftz(p * F32(2.0 ** int(n)))


def sigmoid_f32(a):
    a = F32(a)
    e = exp_f32(-abs(a))
    d = _ftz(F32(1.0) + e)
    return _ftz(F32(1.0) / d) if a >= 0 else _ftz(e / d)


def tanh_f32(a):
    a = F32(a)
    with np.errstate(over="ignore"):  # -2|a| may round to -inf, which exp_f32 clamps
        e = exp_f32(_ftz(F32(-2.0) * abs(a)))
    t = _ftz(_ftz(F32(1.0) - e) / _ftz(F32(1.0) + e))
    return -t if a < 0 else t


def _accumulate_f32(x, w):
    """Event-driven: per output, +0 plus fl(x_i w_io) for every input unit with an event, in order."""
    acc = [F32(0.0)] * w.shape[1]
    for i in range(w.shape[0]):
        xi = _ftz(x[i])
        if xi == 0:
            continue
        for o in range(w.shape[1]):
            acc[o] = _ftz(acc[o] + _ftz(xi * F32(w[i, o])))
    return acc


def _step_f32(layer, y, h, x):
    n = len(h)
    ax, ay = _accumulate_f32(x, layer.w_in), _accumulate_f32(y, layer.w_rec)
    b = [F32(v) for v in layer.bias]
    y_new, h_new = [], []
    for u in range(n):
        z = sigmoid_f32(_ftz(_ftz(ax[u] + ay[u]) + b[u]))
        r = sigmoid_f32(_ftz(_ftz(ax[n + u] + ay[n + u]) + b[n + u]))
        rec = _ftz(r * _ftz(ay[2 * n + u] + F32(layer.b_rg[u])))
        g = tanh_f32(_ftz(_ftz(ax[2 * n + u] + b[2 * n + u]) + rec))
        c = _ftz(_ftz(z * h[u]) + _ftz(_ftz(F32(1.0) - z) * g))
        theta = F32(layer.theta[u])
        if c > theta:
            y_new.append(c)
            h_new.append(_ftz(c - theta))
        else:
            y_new.append(F32(0.0))
            h_new.append(c)
    return y_new, h_new


# --- integer profile -------------------------------------------------------------------------------------


def shift_round(x: int, s: int, mode: str) -> int:
    """round(x / 2^s) with the named rounding, exact."""
    if s == 0:
        return x
    fl, rem, half = x >> s, x & ((1 << s) - 1), 1 << (s - 1)
    if mode == "floor":
        return fl
    if mode == "to_zero":
        return fl + (1 if x < 0 and rem else 0)
    if mode == "half_up":
        return fl + (1 if rem >= half else 0)
    if mode == "half_even":
        return fl + (1 if rem > half or (rem == half and fl % 2 == 1) else 0)
    raise ValueError(mode)


def sat(x: int, lo: int, hi: int) -> int:
    return min(max(x, lo), hi)


def table(kind: str, entries: int, lo: float, hi: float, frac: int) -> list[int]:
    """Bin centres lo + (i + 1/2) (hi - lo) / entries; Python's round() is half to even."""
    out = []
    for i in range(entries):
        c = lo + (i + 0.5) * (hi - lo) / entries
        f = 1.0 / (1.0 + math.exp(-c)) if kind == "sigmoid" else math.tanh(c)
        out.append(sat(round(f * 2**frac), I16_MIN, I16_MAX))
    return out


class IntProfile:
    def __init__(self, spec):
        self.frac = spec.egru_frac_bits
        self.requant = spec.egru_requant_rounding.value
        self.product = spec.egru_product_rounding.value
        lo, hi = spec.egru_lut_input_range
        self.lo_q = int(lo * 2**self.frac)
        self.sig = table("sigmoid", spec.egru_sigmoid_lut_entries, lo, hi, self.frac)
        self.tanh = table("tanh", spec.egru_tanh_lut_entries, lo, hi, self.frac)
        self.width = int((hi - lo) * 2**self.frac)

    def lookup(self, tab, a):
        step = self.width // len(tab)
        idx = (sat(a, I16_MIN, I16_MAX) - self.lo_q) // step
        return tab[sat(idx, 0, len(tab) - 1)]

    def mul(self, a, b):
        return shift_round(sat(a, I16_MIN, I16_MAX) * sat(b, I16_MIN, I16_MAX), self.frac, self.product)

    def accumulate(self, x, w, e):
        out = []
        for o in range(w.shape[1]):
            acc = sum(int(x[i]) * int(w[i, o]) for i in range(w.shape[0]) if int(x[i]) != 0)
            if not I32_MIN <= acc <= I32_MAX:
                raise OverflowError("int32 accumulator overflow")
            out.append(shift_round(acc, int(e[o]), self.requant))
        return out

    def step(self, layer, y, h, x):
        n = len(h)
        ax, ay = self.accumulate(x, layer.w_in, layer.e_in), self.accumulate(y, layer.w_rec, layer.e_rec)
        b = [int(v) for v in layer.bias]

        def add(a, c):
            return sat(a + c, I32_MIN, I32_MAX)

        y_new, h_new = [], []
        for u in range(n):
            z = self.lookup(self.sig, add(add(ax[u], ay[u]), b[u]))
            r = self.lookup(self.sig, add(add(ax[n + u], ay[n + u]), b[n + u]))
            rec = self.mul(r, add(ay[2 * n + u], int(layer.b_rg[u])))
            g = self.lookup(self.tanh, add(add(ax[2 * n + u], b[2 * n + u]), rec))
            c = sat(add(self.mul(z, h[u]), self.mul((1 << self.frac) - z, g)), I16_MIN, I16_MAX)
            theta = int(layer.theta[u])
            if c > theta:
                y_new.append(c)
                h_new.append(sat(add(c, -theta), I16_MIN, I16_MAX))
            else:
                y_new.append(0)
                h_new.append(c)
        return y_new, h_new


def run(layers, inputs, profile: str, spec):
    """``inputs`` ``(B, T, I)``; returns per layer ``(outputs y, states h)``, each ``(B, T, H)``
    (float32, or int64 raw Q3.12)."""
    inputs = np.asarray(inputs)
    batch, steps = inputs.shape[:2]
    ints = IntProfile(spec) if profile == "int" else None
    dtype = np.int64 if ints else np.float32
    result = [(np.zeros((batch, steps, len(l.theta)), dtype), np.zeros((batch, steps, len(l.theta)), dtype))
              for l in layers]
    for b in range(batch):
        xs = [list(inputs[b, t]) for t in range(steps)]
        for k, layer in enumerate(layers):
            n = len(layer.theta)
            zero = 0 if ints else F32(0.0)
            y, h = [zero] * n, [zero] * n
            for t in range(steps):
                y, h = ints.step(layer, y, h, xs[t]) if ints else _step_f32(layer, y, h, xs[t])
                result[k][0][b, t], result[k][1][b, t] = y, h
                xs[t] = y
    return result


def quantize(w_in, w_rec, bias, b_rg, theta, spec):
    """The integer layer data of float parameters (theta already clamped), computed independently."""
    if spec.fixed_param_rounding.value != "half_even":
        raise NotImplementedError("the oracle quantizes with Python's round(), half to even")
    limit = 2 ** (spec.egru_weight_bits - 1) - 1
    lo, hi = spec.egru_weight_exponent_range
    one = 2**spec.egru_frac_bits

    def weights(w):
        w = np.asarray(w, np.float32).astype(np.float64)
        q, es = np.zeros(w.shape, np.int64), []
        for o in range(w.shape[1]):
            top = max(abs(v) for v in w[:, o])
            e = hi
            while e > lo and top * 2.0**e > limit:
                e -= 1
            es.append(e)
            for i in range(w.shape[0]):
                q[i, o] = round(min(max(w[i, o] * 2.0**e, -limit), limit))
        return q, np.array(es)

    def fixed(v):
        return np.array([sat(round(float(F32(x)) * one), I16_MIN, I16_MAX) for x in np.ravel(v)])

    (wi, ei), (wr, er) = weights(w_in), weights(w_rec)
    return wi, wr, ei, er, fixed(bias), fixed(b_rg), fixed(theta)
