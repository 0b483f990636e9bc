"""Event-based GRU (EGRU) dynamics, written once, with the arithmetic injected as a *numerics* object.

Float semantics (``SPINNAKER2.md`` section 6; Subramoney et al., ICLR 2023), gate order (z, r, g)::

    z = sigmoid(W_z x + R_z y_prev + b_z)
    r = sigmoid(W_r x + R_r y_prev + b_r)
    g = tanh(W_g x + b_xg + r * (R_g y_prev + b_rg))
    c = z * h_prev + (1 - z) * g
    o = c > theta               # event; theta per unit in [0, 1]; pseudo-derivative backward
    y = o ? c : 0               # graded event: the output and the recurrent input (not h)
    h = o ? c - theta : c       # reset by subtraction

Shapes: ``W`` ``(I, 3H)`` and ``R`` ``(H, 3H)``, columns ``[z | r | g]``; ``bias`` ``(3H,)`` =
``[b_z | b_r | b_xg]``; ``b_rg``, ``theta`` ``(H,)``; ``x`` ``(..., I)``; state ``y``, ``h``
``(..., H)``. Because ``c > theta >= 0`` on an event, ``y > 0`` exactly where ``o`` is set.

:func:`egru_step` spells the tick with the numerics' operations, nothing else::

    ax = linear(x, W, e_in);  ay = linear(y_prev, R, e_rec)            # (..., 3H) each
    z = sigmoid(add(add(ax_z, ay_z), b_z));  r = sigmoid(add(add(ax_r, ay_r), b_r))
    g = tanh(add(add(ax_g, b_xg), mul(r, add(ay_g, b_rg))))
    c = narrow(add(mul(z, h_prev), mul(one_minus(z), g)))
    o = event(c, theta);  y = narrow(select(o, c, 0));  h = narrow(select(o, sub(c, theta), c))

Three numerics (frozen dataclasses: hashable, static under ``jax.jit``):

- :class:`EGRUFloat`: float training. Plain JAX float32 ops (XLA may fuse); ``event`` is the
  Heaviside step with the pseudo-derivative ``gamma * max(0, 1 - s |c - theta|)``.
- :class:`EGRUChipFloat32`: the chip's float32 ARM code. Every operation is one IEEE-754 binary32
  operation rounded to nearest even, no fused multiply-add (products through
  :func:`s2jax.fixedpoint.fmul`). ``linear`` is event-driven: per output unit the contributions
  ``fl(x_i * W[i, o])`` are added to an accumulator starting at +0 one input unit at a time, in
  index order, skipping units without an event (``x_i == 0``); the input and the recurrent sums
  are separate accumulators. ``sigmoid`` / ``tanh`` use Cephes ``expf`` (``e = exp(-|a|)``:
  ``sigmoid = 1/(1+e)`` for ``a >= 0`` else ``e/(1+e)``; ``e = exp(-2|a|)``: ``tanh =
  sign(a) (1-e)/(1+e)``), arguments of ``exp`` clamped to [-87, 0]. Gradients: ``s(1-s)``,
  ``1-t^2``, the pseudo-derivative, and selects differentiated as ``o*a + (1-o)*b``.
- :class:`EGRUInt`: the integer profile (``ChipSpec.egru_*``; defaults below, ``F = 12``):

  ===================  ====================================================================
  x, y, h, b, theta    int16 Q3.12 (q means q / 2^12); ``theta`` in [0, 2^12]
  W, R                 int8 in [-127, 127]; ``e_in``, ``e_rec`` ``(3H,)`` exponents in [0, 31]:
                       the real weight of column ``o`` is ``q * 2^-e[o]``
  linear(x, W, e)      ``shift_right(sum_i x_i W[i, o], e[o], HALF_UP)``: exact int32 sum
                       (``quant.egru.quantize_egru`` rejects weights that could overflow it)
  add, sub             int32, saturating
  mul(a, b)            ``shift_right(sat16(a) * sat16(b), F, HALF_UP)`` (the product fits int32)
  sigmoid, tanh        ``LUT[clip((sat16(a) + 2^15) >> 4, 0, 4095)]``, 4096 int16 entries
                       ``round_half_even(f(bin centre) * 2^F)``
  one_minus(z)         ``2^F - z``
  narrow(v)            ``sat16(v)`` as int16 (what is stored: c, y, h)
  event, select        ``c > theta``; ``where``
  ===================  ====================================================================

  With ``|h_prev| <= 2^F`` (true from the zero state on) every ``c``, ``h`` lies in
  ``[-2^F, 2^F]`` and every event in ``(0, 2^F]``: ``|mul(z, h)| <= z`` and ``|mul(2^F - z, g)|
  <= 2^F - z``.

Example::

    >>> import jax.numpy as jnp
    >>> p = EGRUParams(jnp.zeros((1, 3)), jnp.zeros((1, 3)), None, None,
    ...                jnp.array([-20.0, 0.0, 20.0]), jnp.zeros(1), jnp.array([0.5]))
    >>> s, y = egru_step(p, EGRUState(jnp.zeros(1), jnp.zeros(1)), jnp.zeros(1), EGRUFloat())
    >>> y.tolist(), s.h.tolist()   # z = 0, g = 1: c = 1 > 0.5, an event of value 1, h = 0.5
    ([1.0], [0.5])
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from s2jax import fixedpoint as fx
from s2jax.spec import SPINNAKER2, ChipSpec, Rounding

__all__ = ["EGRUParams", "EGRUState", "EGRULayer", "EGRUFloat", "EGRUChipFloat32", "EGRUInt", "egru_step",
           "egru_numerics", "straight_through", "event", "pseudo_derivative", "sigmoid_f32", "tanh_f32", "lut"]

F32 = jnp.float32


class EGRUParams(NamedTuple):
    """What :func:`egru_step` reads: float32 arrays, or the integer profile's (``e_*`` None in float)."""

    w_in: jnp.ndarray  # (I, 3H)
    w_rec: jnp.ndarray  # (H, 3H)
    e_in: jnp.ndarray | None  # (3H,) power-of-two exponents (integer profile)
    e_rec: jnp.ndarray | None  # (3H,)
    bias: jnp.ndarray  # (3H,) [b_z | b_r | b_xg]
    b_rg: jnp.ndarray  # (H,)
    theta: jnp.ndarray  # (H,)


class EGRUState(NamedTuple):
    y: jnp.ndarray  # the last events (graded), the recurrent input
    h: jnp.ndarray  # the hidden state after reset


class EGRULayer(NamedTuple):
    """One EGRU layer as the chip stores it (data only; ``s2jax.quant.egru.quantize_egru`` makes it).

    Integer profile: ``w_in`` / ``w_rec`` int8, ``e_in`` / ``e_rec`` int8 exponents, ``bias``,
    ``b_rg``, ``theta`` int16 Q3.12. float32 profile: float32 arrays and ``e_*`` None. Same fields
    and layout as :class:`EGRUParams`. Pruned weights are zeros (``s2jax.layers.egru.to_csr``
    gives the chip's CSR rows).
    """

    w_in: np.ndarray
    w_rec: np.ndarray
    e_in: np.ndarray | None
    e_rec: np.ndarray | None
    bias: np.ndarray
    b_rg: np.ndarray
    theta: np.ndarray

    @property
    def profile(self) -> str:
        return "float32" if self.e_in is None else "fixed"

    def params(self) -> EGRUParams:
        return EGRUParams(*(None if a is None else jnp.asarray(a) for a in self))


# --- the pseudo-derivative and the differentiable select -----------------------------------------


def pseudo_derivative(x, gamma, slope):
    """``gamma * max(0, 1 - slope * |x|)`` with ``x = c - theta`` (EGRU's d o / d c)."""
    return gamma * jnp.maximum(0.0, 1.0 - slope * jnp.abs(x))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def event(c, theta, gamma, slope):
    """``c > theta`` as 0/1 in c's dtype; its derivative is :func:`pseudo_derivative` (in c, minus it
    in theta)."""
    return (c > theta).astype(c.dtype)


@event.defjvp
def _event_jvp(gamma, slope, primals, tangents):
    c, theta = primals
    dc, dtheta = tangents
    return event(c, theta, gamma, slope), pseudo_derivative(c - theta, gamma, slope) * (dc - dtheta)


@jax.custom_jvp
def _select(o, a, b):
    return jnp.where(o > 0, a, b)


@_select.defjvp
def _select_jvp(primals, tangents):
    o, a, b = primals
    do, da, db = tangents
    return _select(o, a, b), jnp.where(o > 0, da, db) + do * (a - b)


def _gates(v, h):
    return v[..., :h], v[..., h:2 * h], v[..., 2 * h:]


# --- float32 activations of the chip (Cephes expf, one rounding per operation) --------------------

_LOG2E, _C1, _C2 = 1.44269504088896341, 0.693359375, -2.12194440e-4
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
             5.0000001201e-1)


def _exp_nonpositive(x):
    """Cephes ``expf`` for ``x <= 0`` (clamped to >= -87, so the result is a normal float32)."""
    x = jnp.maximum(x, F32(-87.0))
    n = jnp.floor(fx.fmul(x, F32(_LOG2E)) + F32(0.5))
    x = x - fx.fmul(n, F32(_C1))
    x = x - fx.fmul(n, F32(_C2))
    z = fx.fmul(x, x)
    p = F32(_EXP_POLY[0])
    for coef in _EXP_POLY[1:]:
        p = fx.fmul(p, x) + F32(coef)
    p = fx.fmul(p, z) + x + F32(1.0)
    two_n = lax.bitcast_convert_type(lax.shift_left(n.astype(jnp.int32) + 127, 23), jnp.float32)
    return fx.fmul(p, two_n)


@jax.custom_jvp
def sigmoid_f32(a):
    """The float32 profile's sigmoid (see the module doc); derivative ``s (1 - s)``."""
    e = _exp_nonpositive(-jnp.abs(a))
    d = F32(1.0) + e
    return jnp.where(a >= 0, F32(1.0) / d, e / d)


@sigmoid_f32.defjvp
def _sigmoid_jvp(primals, tangents):
    s = sigmoid_f32(primals[0])
    return s, s * (1.0 - s) * tangents[0]


@jax.custom_jvp
def tanh_f32(a):
    """The float32 profile's tanh (see the module doc); derivative ``1 - t^2``."""
    e = _exp_nonpositive(fx.fmul(F32(-2.0), jnp.abs(a)))
    t = (F32(1.0) - e) / (F32(1.0) + e)
    return jnp.where(a < 0, -t, t)


@tanh_f32.defjvp
def _tanh_jvp(primals, tangents):
    t = tanh_f32(primals[0])
    return t, (1.0 - t * t) * tangents[0]


# --- integer lookup tables -------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def lut(kind: str, entries: int, lo: float, hi: float, frac_bits: int) -> np.ndarray:
    """The int16 table of ``kind`` ("sigmoid" or "tanh") over [lo, hi): ``entries`` bins, entry
    ``round_half_even(f(bin centre) * 2^frac_bits)``, computed on the host in float64."""
    width = (hi - lo) / entries
    centre = lo + (np.arange(entries, dtype=np.float64) + 0.5) * width
    f = 1.0 / (1.0 + np.exp(-centre)) if kind == "sigmoid" else np.tanh(centre)
    table = np.clip(np.rint(f * 2.0**frac_bits), -32768, 32767).astype(np.int16)
    table.flags.writeable = False
    return table


def straight_through(value, shadow):
    """``value`` forward, exactly (``value + (shadow - shadow)``), and the gradient of ``shadow``
    backward: how an integer result carries its float shadow's gradient."""
    return lax.stop_gradient(value) + (shadow - lax.stop_gradient(shadow))


def _sat16(x):
    return fx.saturate(jnp.asarray(x).astype(jnp.int32), -32768, 32767)


# --- numerics ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EGRUFloat:
    """Float training arithmetic: plain JAX ops, pseudo-derivative events. Not chip-faithful."""

    gamma: float = 0.7
    slope: float = 1.0
    name = "float"
    state_dtype = jnp.float32

    def linear(self, x, w, e):
        return x @ w

    def add(self, a, b):
        return a + b

    def sub(self, a, b):
        return a - b

    def mul(self, a, b):
        return a * b

    def one_minus(self, z):
        return 1.0 - z

    def sigmoid(self, a):
        return jax.nn.sigmoid(a)

    def tanh(self, a):
        return jnp.tanh(a)

    def narrow(self, v):
        return v

    def event(self, c, theta):
        return event(c, theta, self.gamma, self.slope)

    def select(self, o, a, b):
        return _select(o, a, b)


@dataclass(frozen=True)
class EGRUChipFloat32(EGRUFloat):
    """The chip's float32 profile: rounded binary32 ops, no FMA, event-driven accumulation order."""

    name = "float32"

    def linear(self, x, w, e):
        """Per output unit: ``acc = +0; for i in order: if x_i != 0: acc = fl(acc + fl(x_i W[i]))``."""

        def add_row(acc, xw):
            xi, wi = xw
            xi = xi[..., None]
            return jnp.where(xi != 0, acc + fx.fmul(xi, wi), acc), None

        acc = jnp.zeros((*x.shape[:-1], w.shape[-1]), jnp.float32)
        return lax.scan(add_row, acc, (jnp.moveaxis(x, -1, 0), w))[0]

    def mul(self, a, b):
        return fx.fmul(a, b)

    def sigmoid(self, a):
        return sigmoid_f32(a)

    def tanh(self, a):
        return tanh_f32(a)


@dataclass(frozen=True)
class EGRUInt:
    """The integer profile (module doc); values are int16 Q(15-F).F, sums int32."""

    frac_bits: int = 12
    requant_rounding: Rounding = Rounding.HALF_UP
    product_rounding: Rounding = Rounding.HALF_UP
    sigmoid_entries: int = 4096
    tanh_entries: int = 4096
    lut_range: tuple[float, float] = (-8.0, 8.0)
    name = "fixed"
    state_dtype = jnp.int16

    def linear(self, x, w, e):
        x = jnp.asarray(x).astype(jnp.int32)
        acc = lax.dot_general(x, jnp.asarray(w).astype(jnp.int32), (((x.ndim - 1,), (0,)), ((), ())),
                              preferred_element_type=jnp.int32)
        return fx.shift_right(acc, jnp.broadcast_to(jnp.asarray(e).astype(jnp.int32), acc.shape),
                              self.requant_rounding)

    def add(self, a, b):
        return fx.add_saturate(jnp.asarray(a).astype(jnp.int32), jnp.asarray(b).astype(jnp.int32))

    def sub(self, a, b):
        return fx.sub_saturate(jnp.asarray(a).astype(jnp.int32), jnp.asarray(b).astype(jnp.int32))

    def mul(self, a, b):
        return fx.shift_right(_sat16(a) * _sat16(b), self.frac_bits, self.product_rounding)

    def one_minus(self, z):
        return jnp.int32(1 << self.frac_bits) - jnp.asarray(z).astype(jnp.int32)

    def _lookup(self, kind, entries, a):
        lo, hi = self.lut_range
        lo_q = int(lo * 2**self.frac_bits)
        shift = int((hi - lo) * 2**self.frac_bits // entries).bit_length() - 1
        idx = fx.shift_right(_sat16(a) - jnp.int32(lo_q), shift, Rounding.FLOOR)
        idx = jnp.clip(idx, 0, entries - 1)
        return jnp.take(jnp.asarray(lut(kind, entries, lo, hi, self.frac_bits)), idx)

    def sigmoid(self, a):
        return self._lookup("sigmoid", self.sigmoid_entries, a)

    def tanh(self, a):
        return self._lookup("tanh", self.tanh_entries, a)

    def narrow(self, v):
        return _sat16(v).astype(jnp.int16)

    def event(self, c, theta):
        return jnp.asarray(c).astype(jnp.int32) > jnp.asarray(theta).astype(jnp.int32)

    def select(self, o, a, b):
        return jnp.where(o, jnp.asarray(a).astype(jnp.int32), jnp.asarray(b).astype(jnp.int32))


def egru_numerics(profile: str, spec: ChipSpec = SPINNAKER2, gamma: float = 0.7, slope: float = 1.0):
    """The numerics of ``profile``: "float" (training), "float32" or "fixed" (the chip's; "int" is
    its earlier name, still accepted), under ``spec``."""
    from s2jax.dynamics import profile_name

    profile = profile_name(profile)
    if profile == "float":
        return EGRUFloat(gamma, slope)
    if profile == "float32":
        return EGRUChipFloat32(gamma, slope)
    if profile == "fixed":
        return EGRUInt(spec.egru_frac_bits, spec.egru_requant_rounding, spec.egru_product_rounding,
                       spec.egru_sigmoid_lut_entries, spec.egru_tanh_lut_entries, tuple(spec.egru_lut_input_range))


# --- the step ------------------------------------------------------------------------------------------


def egru_step(p: EGRUParams, s: EGRUState, x, num) -> tuple[EGRUState, jnp.ndarray]:
    """One tick of an EGRU layer (module doc). Returns the new state and the events ``y``."""
    units = p.theta.shape[-1]
    ax_z, ax_r, ax_g = _gates(num.linear(x, p.w_in, p.e_in), units)
    ay_z, ay_r, ay_g = _gates(num.linear(s.y, p.w_rec, p.e_rec), units)
    b_z, b_r, b_xg = _gates(p.bias, units)
    z = num.sigmoid(num.add(num.add(ax_z, ay_z), b_z))
    r = num.sigmoid(num.add(num.add(ax_r, ay_r), b_r))
    g = num.tanh(num.add(num.add(ax_g, b_xg), num.mul(r, num.add(ay_g, p.b_rg))))
    c = num.narrow(num.add(num.mul(z, s.h), num.mul(num.one_minus(z), g)))
    o = num.event(c, p.theta)
    y = num.narrow(num.select(o, c, jnp.zeros_like(c)))
    h = num.narrow(num.select(o, num.sub(c, p.theta), c))
    return EGRUState(y, h), y
