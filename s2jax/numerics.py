"""Numerics: the arithmetic every model is written with, injected as one object.

The neuron steps (:mod:`s2jax.dynamics`, every kind of :mod:`s2jax.kinds`) and the EGRU step
(:mod:`s2jax.egru`) never touch arithmetic directly: they call the operations of a *numerics*
object, the :class:`Numerics` protocol. Three implementations, one per profile name
(:data:`PROFILES`), each one frozen dataclass (hashable, so a static argument of ``jax.jit``)
parameterised by its formats and covering the neuron and the EGRU operations alike:

- :class:`FloatNumerics` ("float"): float training, plain JAX float32 ops (XLA may fuse and
  reorder); spikes carry a surrogate gradient, EGRU events a pseudo-derivative. Not chip-faithful.
- :class:`ChipFloat32` ("float32"): the chip's float32 ARM code, every operation one IEEE-754
  binary32 operation rounded to nearest even, no fused multiply-add.
- :class:`ChipFixed` ("fixed"): the chip's integer arithmetic: neurons in int32 s16.15 with
  unsigned 0.16 decays, the EGRU in int16 Q3.12 (``F = egru_frac_bits``) with int32 sums.

:func:`numerics_for` builds one from a profile name and a :class:`~s2jax.spec.ChipSpec`.

========================  =========================  ===========================  ======================================
operation                 FloatNumerics              ChipFloat32                  ChipFixed
========================  =========================  ===========================  ======================================
``name``                  "float"                    "float32"                    "fixed"
``state_dtype``           float32                    float32                      int32 (a neuron's state; the EGRU
                                                                                  stores ``narrow``'s int16)
input(i)                  float32(i)                 float32(i)                   ``sat32(i * 2^v_frac_bits)``
decay(a, x)               ``a * x``                  ``fl(a * x)``, never fused   ``round(a_q x / 2^decay_frac_bits)``
                                                                                  (``decay_rounding``)
add(a, b), sub(a, b)      ``a + b``, ``a - b``       ``fl(a + b)``, ``fl(a-b)``   int32, saturating
mul(a, b)                 ``a * b``                  ``fl(a * b)``, never fused   ``round(sat16(a) sat16(b) / 2^F)``
                                                                                  (``product_rounding``)
one_minus(z)              ``1 - z``                  ``fl(1 - z)``                ``2^F - z``
linear(x, W, e)           ``x @ W``                  per output unit ``o``: from  ``round(sum_i x_i W[i, o] / 2^e[o])``
                                                     ``+0`` add each              (``requant_rounding``), the sum an
                                                     ``fl(x_i W[i, o])`` with     exact int32
                                                     ``x_i != 0``, in order
sigmoid(a), tanh(a)       ``jax.nn.sigmoid``,        Cephes ``expf``, one         ``LUT[clip((sat16(a) - lo) >> s)]``
                          ``jnp.tanh``               rounding per operation       (``sigmoid_entries`` /
                                                                                  ``tanh_entries`` bins over
                                                                                  ``lut_range``)
narrow(v)                 ``v``                      ``v``                        ``sat16(v)`` as int16 (what the EGRU
                                                                                  stores)
spike(v, thr, scale)      ``v > thr``; surrogate     ``v > thr`` (``>=`` unless   ``v > thr`` (``>=`` unless
                          gradient of width          ``strict_threshold``);       ``strict_threshold``), no gradient
                          ``scale``                  surrogate gradient
event(c, theta)           ``c > theta``; pseudo-     as FloatNumerics             ``c > theta`` (bool)
                          derivative (``gamma``,
                          ``slope``)
select(o, a, b)           ``o ? a : b``; gradient    as FloatNumerics             ``where(o, a, b)`` in int32
                          ``o da + (1-o) db +
                          (a - b) do``
reset_subtract(v, z, t)   ``v - z t`` (``z``         ``z ? fl(v - t) : v``        ``z ? sat32(v - t) : v``
                          detached with
                          ``detach_reset``)
reset_to(v, z, v_reset)   ``v (1-z) + z v_reset``    ``z ? v_reset : v``          ``z ? v_reset : v``
========================  =========================  ===========================  ======================================

``fl`` is one IEEE-754 binary32 operation rounded to nearest even; ``sat32`` / ``sat16`` saturate
to int32 / int16; ``F = egru_frac_bits``. The float32 activations are
:func:`s2jax.fixedpoint.sigmoid_f32` and :func:`s2jax.fixedpoint.tanh_f32`, the tables
:func:`s2jax.fixedpoint.lut`. The EGRU's equations are in :mod:`s2jax.egru`, the neurons' in
:mod:`s2jax.dynamics`.

Integer arithmetic has no gradient: QAT in the fixed profile runs it beside a float shadow that
supplies the backward pass, joined by :func:`straight_through` (the forward value is the integer
one, exactly).

Example::

    >>> import jax.numpy as jnp
    >>> num = numerics_for("fixed")
    >>> isinstance(num, Numerics), num.name, num.input(jnp.int32(3)).tolist()
    (True, 'fixed', 98304)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
from jax import lax

from s2jax import fixedpoint as fx
from s2jax.spec import SPINNAKER2, ChipSpec, Rounding
from s2jax.surrogates import FastSigmoid, event, spike

__all__ = ["Numerics", "FloatNumerics", "ChipFloat32", "ChipFixed", "numerics_for", "straight_through", "PROFILES",
           "PROFILE_ALIASES", "profile_name"]


@runtime_checkable
class Numerics(Protocol):
    """The primitive operations of every model (the module's table says what each does per profile).

    ``name`` is the profile name; ``state_dtype`` the dtype of a neuron's state.
    """

    name: str
    state_dtype: Any

    # neurons (s2jax.dynamics, s2jax.kinds)
    def input(self, i_syn): ...
    def decay(self, alpha, x): ...
    def add(self, a, b): ...
    def sub(self, a, b): ...
    def spike(self, v, threshold, scale=1.0): ...
    def reset_subtract(self, v, z, threshold): ...
    def reset_to(self, v, z, v_reset): ...

    # the EGRU (s2jax.egru); add and sub as above
    def linear(self, x, w, e): ...
    def mul(self, a, b): ...
    def one_minus(self, z): ...
    def sigmoid(self, a): ...
    def tanh(self, a): ...
    def narrow(self, v): ...
    def event(self, c, theta): ...
    def select(self, o, a, b): ...


# --- straight-through -----------------------------------------------------------------------------


def straight_through(value, shadow):
    """``value`` forward, exactly, and the gradient of ``shadow`` backward.

    How a quantized or integer result carries the gradient of its float shadow: ``ste_round(x)``
    is ``straight_through(round(x), x)``. ``value`` is converted to ``shadow``'s dtype and both are
    broadcast to a common shape; ``value`` gets no gradient.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> jax.value_and_grad(lambda x: straight_through(jnp.round(x), 3.0 * x))(jnp.float32(0.4))
        (Array(0., dtype=float32), Array(3., dtype=float32))
    """
    shadow = jnp.asarray(shadow)
    value = jnp.asarray(value).astype(shadow.dtype)
    shape = jnp.broadcast_shapes(value.shape, shadow.shape)
    return _straight_through(jnp.broadcast_to(value, shape), jnp.broadcast_to(shadow, shape))


@jax.custom_jvp
def _straight_through(value, shadow):
    return value


@_straight_through.defjvp
def _straight_through_jvp(primals, tangents):
    return primals[0], tangents[1]


# --- the float profiles ----------------------------------------------------------------------------


@jax.custom_jvp
def _select(o, a, b):
    return jnp.where(o > 0, a, b)


@_select.defjvp
def _select_jvp(primals, tangents):
    o, a, b = primals
    do, da, db = tangents
    return _select(o, a, b), jnp.where(o > 0, da, db) + do * (a - b)


class _Float32Ops:
    """The operations the two float profiles share (each one rounded float32 operation)."""

    state_dtype: ClassVar[Any] = jnp.float32

    def input(self, i_syn):
        return i_syn.astype(jnp.float32)

    def add(self, a, b):
        return a + b

    def sub(self, a, b):
        return a - b

    def one_minus(self, z):
        return 1.0 - z

    def narrow(self, v):
        return v

    def event(self, c, theta):
        return event(c, theta, self.gamma, self.slope)

    def select(self, o, a, b):
        return _select(o, a, b)


@dataclass(frozen=True)
class FloatNumerics(_Float32Ops):
    """Float training arithmetic: plain JAX float32 ops (XLA may fuse and reorder within its rules).

    Spikes use ``surrogate`` backward; ``detach_reset`` stops the gradient through the reset's
    spike. EGRU events use the pseudo-derivative ``gamma * max(0, 1 - slope |c - theta|)``. Not
    chip-faithful: the numerics of float training, before ``s2jax.quant.qat``.
    """

    surrogate: object = FastSigmoid()
    detach_reset: bool = False
    gamma: float = 0.7
    slope: float = 1.0
    name: ClassVar[str] = "float"

    def decay(self, alpha, x):
        return alpha * x

    def mul(self, a, b):
        return a * b

    def linear(self, x, w, e):
        return x @ w

    def sigmoid(self, a):
        return jax.nn.sigmoid(a)

    def tanh(self, a):
        return jnp.tanh(a)

    def spike(self, v, threshold, scale=1.0):
        return spike(v, threshold, self.surrogate, scale)

    def reset_subtract(self, v, z, threshold):
        z = lax.stop_gradient(z) if self.detach_reset else z
        return v - z * threshold

    def reset_to(self, v, z, v_reset):
        z = lax.stop_gradient(z) if self.detach_reset else z
        return v * (1.0 - z) + z * v_reset


@dataclass(frozen=True)
class ChipFloat32(_Float32Ops):
    """The chip's float32 profile: IEEE-754 binary32, every operation rounded to nearest even, no FMA
    (products through :func:`s2jax.fixedpoint.fmul`), the EGRU's event-driven accumulation order.

    Differentiable, so QAT trains through this exact forward pass: spikes carry ``surrogate``'s
    gradient (resets are selects: a detached reset), EGRU events the pseudo-derivative
    (``gamma``, ``slope``), the activations ``s (1 - s)`` and ``1 - t^2``.
    """

    strict_threshold: bool = True
    surrogate: object = FastSigmoid()
    gamma: float = 0.7
    slope: float = 1.0
    name: ClassVar[str] = "float32"

    def decay(self, alpha, x):
        return fx.fmul(alpha, x)

    def mul(self, a, b):
        return fx.fmul(a, b)

    def linear(self, x, w, e):
        """Per output unit: ``acc = +0; for i in order: if x_i != 0: acc = fl(acc + fl(x_i W[i]))``."""

        def add_row(acc, xw):
            xi, wi = xw
            xi = xi[..., None]
            return jnp.where(xi != 0, acc + fx.fmul(xi, wi), acc), None

        acc = jnp.zeros((*x.shape[:-1], w.shape[-1]), jnp.float32)
        return lax.scan(add_row, acc, (jnp.moveaxis(x, -1, 0), w))[0]

    def sigmoid(self, a):
        return fx.sigmoid_f32(a)

    def tanh(self, a):
        return fx.tanh_f32(a)

    def spike(self, v, threshold, scale=1.0):
        return spike(v, threshold, self.surrogate, scale, self.strict_threshold)

    def reset_subtract(self, v, z, threshold):
        return jnp.where(z > 0, v - threshold, v)

    def reset_to(self, v, z, v_reset):
        return jnp.where(z > 0, v_reset, v)


# --- the fixed-point profile -----------------------------------------------------------------------


def _sat16(x):
    return fx.saturate(jnp.asarray(x).astype(jnp.int32), -32768, 32767)


def _int32(x):
    return jnp.asarray(x).astype(jnp.int32)


@dataclass(frozen=True)
class ChipFixed:
    """The chip's integer profile.

    Neurons: int32 state in s(31-v).v with ``v = v_frac_bits``, decays unsigned 0.``decay_frac_bits``
    (``decay_rounding``), saturating adds; float parameters reach the grid with ``param_rounding``.
    EGRU: values int16 Q(15-F).F with ``F = egru_frac_bits``, sums int32; ``requant_rounding`` for
    the weight exponent shift, ``product_rounding`` for products; activations from tables of
    ``sigmoid_entries`` / ``tanh_entries`` bins over ``lut_range``. MAC-array layers:
    ``mla_shift_rounding`` for their requantization shift. Integer arithmetic has no gradient; QAT
    pairs it with a float shadow (``s2jax.quant``).
    """

    v_frac_bits: int = 15
    decay_frac_bits: int = 16
    decay_rounding: Rounding = Rounding.HALF_UP
    strict_threshold: bool = True
    param_rounding: Rounding = Rounding.HALF_EVEN  # float parameters onto the fixed-point grid
    egru_frac_bits: int = 12
    requant_rounding: Rounding = Rounding.HALF_UP
    product_rounding: Rounding = Rounding.HALF_UP
    sigmoid_entries: int = 4096
    tanh_entries: int = 4096
    lut_range: tuple[float, float] = (-8.0, 8.0)
    mla_shift_rounding: Rounding = Rounding.FLOOR
    name: ClassVar[str] = "fixed"

    @property
    def frac_bits(self) -> int:
        """Earlier name (``EGRUInt.frac_bits``) of :attr:`egru_frac_bits`."""
        return self.egru_frac_bits
    state_dtype: ClassVar[Any] = jnp.int32

    # --- neurons ---

    def input(self, i_syn):
        return fx.shift_left_saturate(i_syn.astype(jnp.int32), self.v_frac_bits)

    def decay(self, alpha_q, x):
        return fx.mul_shift(x, alpha_q, self.decay_frac_bits, self.decay_rounding)

    def add(self, a, b):
        return fx.add_saturate(a, b)

    def sub(self, a, b):
        return fx.sub_saturate(a, b)

    def spike(self, v, threshold, scale=1.0):
        hit = v > threshold if self.strict_threshold else v >= threshold
        return hit.astype(jnp.float32)

    def reset_subtract(self, v, z, threshold):
        return jnp.where(z > 0, fx.sub_saturate(v, threshold), v)

    def reset_to(self, v, z, v_reset):
        return jnp.where(z > 0, v_reset, v)

    # --- the EGRU ---

    def linear(self, x, w, e):
        x = _int32(x)
        acc = lax.dot_general(x, _int32(w), (((x.ndim - 1,), (0,)), ((), ())), preferred_element_type=jnp.int32)
        return fx.shift_right(acc, jnp.broadcast_to(_int32(e), acc.shape), self.requant_rounding)

    def mul(self, a, b):
        return fx.shift_right(_sat16(a) * _sat16(b), self.egru_frac_bits, self.product_rounding)

    def one_minus(self, z):
        return jnp.int32(1 << self.egru_frac_bits) - _int32(z)

    def _lookup(self, kind, entries, a):
        lo, hi = self.lut_range
        lo_q = int(lo * 2**self.egru_frac_bits)
        shift = int((hi - lo) * 2**self.egru_frac_bits // entries).bit_length() - 1
        idx = fx.shift_right(_sat16(a) - jnp.int32(lo_q), shift, Rounding.FLOOR)
        idx = jnp.clip(idx, 0, entries - 1)
        return jnp.take(jnp.asarray(fx.lut(kind, entries, lo, hi, self.egru_frac_bits)), idx)

    def sigmoid(self, a):
        return self._lookup("sigmoid", self.sigmoid_entries, a)

    def tanh(self, a):
        return self._lookup("tanh", self.tanh_entries, a)

    def narrow(self, v):
        return _sat16(v).astype(jnp.int16)

    def event(self, c, theta):
        return _int32(c) > _int32(theta)

    def select(self, o, a, b):
        return jnp.where(o, _int32(a), _int32(b))


# --- profiles --------------------------------------------------------------------------------------

#: The profile names every layer, chip model and entry point takes: "float" (float training, not
#: chip-faithful), "float32" (the chip's float32 code) and "fixed" (the chip's integer arithmetic:
#: s16.15 neurons, Q3.12 EGRU).
PROFILES = ("float", "float32", "fixed")
#: Earlier names, still accepted: "int" was the EGRU functions' name for "fixed".
PROFILE_ALIASES = {"int": "fixed"}


def profile_name(profile, allowed=PROFILES) -> str:
    """The canonical name of ``profile`` (an alias of :data:`PROFILE_ALIASES` becomes its name), or a
    ``ValueError`` listing the ``allowed`` names."""
    name = PROFILE_ALIASES.get(profile, profile) if isinstance(profile, str) else profile
    if name not in allowed:
        raise ValueError(f"profile must be one of {list(allowed)}, got {profile!r}")
    return name


def numerics_for(profile: str, spec: ChipSpec = SPINNAKER2, surrogate=None, gamma: float = 0.7,
                 slope: float = 1.0) -> FloatNumerics | ChipFloat32 | ChipFixed:
    """The numerics of a profile name (:data:`PROFILES`, or an alias) under ``spec``: the chip's
    formats from the spec, ``surrogate`` (default :class:`~s2jax.surrogates.FastSigmoid`) for spikes,
    ``gamma`` and ``slope`` for the EGRU's pseudo-derivative."""
    profile = profile_name(profile)
    surrogate = surrogate or FastSigmoid()
    if profile == "float":
        return FloatNumerics(surrogate=surrogate, gamma=gamma, slope=slope)
    if profile == "float32":
        return ChipFloat32(strict_threshold=spec.threshold_strict, surrogate=surrogate, gamma=gamma, slope=slope)
    return ChipFixed(
        v_frac_bits=spec.fixed_v_frac_bits,
        decay_frac_bits=spec.fixed_decay_frac_bits,
        decay_rounding=spec.fixed_decay_rounding,
        strict_threshold=spec.threshold_strict,
        param_rounding=spec.fixed_param_rounding,
        egru_frac_bits=spec.egru_frac_bits,
        requant_rounding=spec.egru_requant_rounding,
        product_rounding=spec.egru_product_rounding,
        sigmoid_entries=spec.egru_sigmoid_lut_entries,
        tanh_entries=spec.egru_tanh_lut_entries,
        lut_range=tuple(spec.egru_lut_input_range),
        mla_shift_rounding=spec.mla_shift_rounding,
    )
