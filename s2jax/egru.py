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

The numerics are those of every model (:mod:`s2jax.numerics`, one class per profile, built by
:func:`~s2jax.numerics.numerics_for` or :func:`egru_numerics`); the EGRU's share of them:

- "float", :class:`~s2jax.numerics.FloatNumerics`: float training. Plain JAX float32 ops (XLA may
  fuse); ``event`` is the Heaviside step with the pseudo-derivative ``gamma * max(0, 1 - s |c - theta|)``.
- "float32", :class:`~s2jax.numerics.ChipFloat32`: the chip's float32 ARM code. Every operation is
  one IEEE-754 binary32 operation rounded to nearest even, no fused multiply-add (products through
  :func:`s2jax.fixedpoint.fmul`). ``linear`` is event-driven: per output unit the contributions
  ``fl(x_i * W[i, o])`` are added to an accumulator starting at +0 one input unit at a time, in
  index order, skipping units without an event (``x_i == 0``); the input and the recurrent sums
  are separate accumulators. ``sigmoid`` / ``tanh`` use Cephes ``expf`` (``e = exp(-|a|)``:
  ``sigmoid = 1/(1+e)`` for ``a >= 0`` else ``e/(1+e)``; ``e = exp(-2|a|)``: ``tanh =
  sign(a) (1-e)/(1+e)``), arguments of ``exp`` clamped to [-87, 0]
  (:func:`~s2jax.fixedpoint.sigmoid_f32`, :func:`~s2jax.fixedpoint.tanh_f32`). Gradients:
  ``s(1-s)``, ``1-t^2``, the pseudo-derivative, and selects differentiated as ``o*a + (1-o)*b``.
- "fixed", :class:`~s2jax.numerics.ChipFixed`: the integer profile (``ChipSpec.egru_*``; defaults
  below, ``F = 12``):

  ===================  ====================================================================
  x, y, h, b, theta    int16 Q3.12 (q means q / 2^12); ``theta`` in [0, 2^12]
  W, R                 int8 in [-127, 127]; ``e_in``, ``e_rec`` ``(3H,)`` exponents in [0, 31]:
                       the real weight of column ``o`` is ``q * 2^-e[o]``
  linear(x, W, e)      ``shift_right(sum_i x_i W[i, o], e[o], HALF_UP)``: exact int32 sum
                       (``quant.quantize`` rejects weights that could overflow it)
  add, sub             int32, saturating
  mul(a, b)            ``shift_right(sat16(a) * sat16(b), F, HALF_UP)`` (the product fits int32)
  sigmoid, tanh        ``LUT[clip((sat16(a) + 2^15) >> 4, 0, 4095)]``, 4096 int16 entries
                       ``round_half_even(f(bin centre) * 2^F)`` (:func:`~s2jax.fixedpoint.lut`)
  one_minus(z)         ``2^F - z``
  narrow(v)            ``sat16(v)`` as int16 (what is stored: c, y, h)
  event, select        ``c > theta``; ``where``
  ===================  ====================================================================

  With ``|h_prev| <= 2^F`` (true from the zero state on) every ``c``, ``h`` lies in
  ``[-2^F, 2^F]`` and every event in ``(0, 2^F]``: ``|mul(z, h)| <= z`` and ``|mul(2^F - z, g)|
  <= 2^F - z``.

The state is stored as ``narrow`` leaves it: int16 in the fixed profile (where a neuron's state is
int32), float32 otherwise; :func:`zero_state` builds it. ``EGRUFloat``, ``EGRUChipFloat32`` and
``EGRUInt`` are the earlier names of the three numerics, kept: calling one builds the numerics
above with the EGRU's arguments, and ``isinstance`` with one asks for its profile.

Example::

    >>> import jax.numpy as jnp
    >>> p = EGRUParams(jnp.zeros((1, 3)), jnp.zeros((1, 3)), None, None,
    ...                jnp.array([-20.0, 0.0, 20.0]), jnp.zeros(1), jnp.array([0.5]))
    >>> s, y = egru_step(p, zero_state((1,), numerics_for("float")), jnp.zeros(1), numerics_for("float"))
    >>> y.tolist(), s.h.tolist()   # z = 0, g = 1: c = 1 > 0.5, an event of value 1, h = 0.5
    ([1.0], [0.5])
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from s2jax.fixedpoint import lut, sigmoid_f32, tanh_f32
from s2jax.numerics import ChipFixed, ChipFloat32, FloatNumerics, Numerics, numerics_for, straight_through
from s2jax.spec import SPINNAKER2, ChipSpec, Rounding
from s2jax.surrogates import event, pseudo_derivative

__all__ = ["EGRUParams", "EGRUState", "EGRULayer", "zero_state", "egru_step", "egru_numerics", "EGRUFloat",
           "EGRUChipFloat32", "EGRUInt", "straight_through", "event", "pseudo_derivative", "sigmoid_f32", "tanh_f32",
           "lut"]


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
    """One EGRU layer as the chip stores it (data only; ``s2jax.quant.quantize`` makes the network of them).

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


def _gates(v, h):
    return v[..., :h], v[..., h:2 * h], v[..., 2 * h:]


def zero_state(shape, num) -> EGRUState:
    """The zero state of ``shape`` (``(..., H)``) in the dtype the numerics ``num`` store it:
    ``num.narrow`` of zeros (int16 in the fixed profile, float32 otherwise)."""
    zero = num.narrow(jnp.zeros(shape, num.state_dtype))
    return EGRUState(zero, zero)


def egru_numerics(profile: str, spec: ChipSpec = SPINNAKER2, gamma: float = 0.7, slope: float = 1.0):
    """The numerics of ``profile``: "float" (training), "float32" or "fixed" (the chip's; "int" is
    its earlier name, still accepted), under ``spec``: :func:`s2jax.numerics.numerics_for`."""
    return numerics_for(profile, spec, gamma=gamma, slope=slope)


# --- the earlier names of the numerics -----------------------------------------------------------


class _ProfileAlias(type):
    """Metaclass of the earlier numerics names: ``isinstance(num, EGRUInt)`` holds for the numerics
    of the profiles the name stood for (``_profiles``); calling the name builds them (``__new__``)."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, Numerics) and obj.name in cls._profiles


class EGRUFloat(metaclass=_ProfileAlias):
    """Earlier name of :class:`~s2jax.numerics.FloatNumerics` with the EGRU's arguments. The
    float32 profile's numerics count as instances (``EGRUChipFloat32`` was a subclass)."""

    _profiles = ("float", "float32")

    def __new__(cls, gamma: float = 0.7, slope: float = 1.0):
        return FloatNumerics(gamma=gamma, slope=slope)


class EGRUChipFloat32(metaclass=_ProfileAlias):
    """Earlier name of :class:`~s2jax.numerics.ChipFloat32` with the EGRU's arguments."""

    _profiles = ("float32",)

    def __new__(cls, gamma: float = 0.7, slope: float = 1.0):
        return ChipFloat32(gamma=gamma, slope=slope)


class EGRUInt(metaclass=_ProfileAlias):
    """Earlier name of :class:`~s2jax.numerics.ChipFixed` with the EGRU's arguments (``frac_bits``
    is ``egru_frac_bits``)."""

    _profiles = ("fixed",)

    def __new__(cls, frac_bits: int = 12, requant_rounding: Rounding = Rounding.HALF_UP,
                product_rounding: Rounding = Rounding.HALF_UP, sigmoid_entries: int = 4096,
                tanh_entries: int = 4096, lut_range: tuple[float, float] = (-8.0, 8.0)):
        return ChipFixed(egru_frac_bits=frac_bits, requant_rounding=requant_rounding,
                         product_rounding=product_rounding, sigmoid_entries=sigmoid_entries,
                         tanh_entries=tanh_entries, lut_range=tuple(lut_range))


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
