"""EGRU quantization: ``qat_egru`` (inject the chip's numerics) and ``quantize_egru`` (the chip's data).

One source of truth: the integer parameters the QAT forward pass uses and those
:func:`quantize_egru` hands to the chip come from the same :meth:`EGRUQuantizer.params` applied to
the same :meth:`~s2jax.layers.egru.EGRU.float_params`, so ``run_egru(quantize_egru(model), ...)``
equals the QAT forward pass bit for bit.

Integer profile (``ChipSpec.egru_*``; :mod:`s2jax.egru` has the arithmetic):

- weights: per output unit ``o`` (one column of ``w_in`` / ``w_rec``, i.e. one row of the chip's
  weight matrix as its post neuron stores it) an exponent ``e[o]``, the largest in
  ``egru_weight_exponent_range`` with ``max_i |w[i, o]| * 2^e <= 127``; ``q = round(w * 2^e)``
  (``fixed_param_rounding``, half to even), int8. ``w * 2^e`` and ``q * 2^-e`` are exact in float32.
- biases, ``b_rg``, thresholds and inputs: ``sat16(round(v * 2^12))``, int16 Q3.12.
- straight-through: the float shadow sees the dequantized values and passes gradients unchanged.

Example::

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from s2jax.layers.egru import EGRUStack
    >>> model = qat_egru(EGRUStack(3, [4, 4], rngs=nnx.Rngs(0)), "fixed")
    >>> layers = quantize_egru(model)
    >>> [layer.w_in.dtype.name for layer in layers], layers[0].theta.tolist()
    (['int8', 'int8'], [819, 819, 819, 819])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from s2jax.dynamics import profile_name
from s2jax.egru import EGRULayer, EGRUParams, egru_numerics
from s2jax.fixedpoint import to_fixed
from s2jax.numerics import straight_through
from s2jax.kinds.egru import accumulator_violations
from s2jax.layers.egru import egru_cells
from s2jax.spec import SPINNAKER2, ChipSpec

__all__ = ["EGRUQuantizer", "weight_exponents", "quantize_weights", "quantize_inputs", "qat_egru_cells", "egru_layers",
           "qat_egru", "quantize_egru"]


def _pow2(e):
    """``2^e`` as float32 for int32 ``e`` in [-126, 127], built from its bits (exact)."""
    return lax.bitcast_convert_type(lax.shift_left(e.astype(jnp.int32) + 127, 23), jnp.float32)


def weight_exponents(w, spec: ChipSpec = SPINNAKER2):
    """Per column of ``w`` ``(n_in, n_out)``: the largest ``e`` in the spec's range with
    ``max|w| * 2^e <= 2^(bits-1) - 1``, int32 ``(n_out,)``; computed exactly (``frexp``)."""
    limit = 2 ** (spec.egru_weight_bits - 1) - 1
    lo, hi = spec.egru_weight_exponent_range
    m, k = jnp.frexp(jnp.max(jnp.abs(jnp.asarray(w, jnp.float32)), axis=0))  # max = m 2^k, m in [0.5, 1)
    top = limit.bit_length()  # m 2^top in [2^(top-1), 2^top): fits when <= limit, else m 2^(top-1) does
    e = jnp.where(m * jnp.float32(2.0**top) <= jnp.float32(limit), top, top - 1) - k
    return jnp.clip(e, lo, hi).astype(jnp.int32)


def quantize_weights(w, spec: ChipSpec = SPINNAKER2):
    """``(q int8, e int32, shadow float32)``: integer weights, their column exponents, and
    ``q * 2^-e`` with the gradient of ``w`` (straight-through)."""
    limit = 2 ** (spec.egru_weight_bits - 1) - 1
    e = lax.stop_gradient(weight_exponents(w, spec))
    q = to_fixed(lax.stop_gradient(w) * _pow2(e), 0, spec.fixed_param_rounding, -limit, limit)  # w 2^e is exact
    return q.astype(jnp.int8), e, straight_through(q * _pow2(-e), w)


@dataclass(frozen=True)
class EGRUQuantizer:
    """The integer profile's parameter and input quantization (straight-through), under ``spec``."""

    spec: ChipSpec = SPINNAKER2

    def fixed(self, v):
        """``(int16 Q3.12 of v, its float32 value with the gradient of v)``."""
        frac_bits = self.spec.egru_frac_bits
        v = jnp.asarray(v, jnp.float32)
        q = to_fixed(lax.stop_gradient(v), frac_bits, self.spec.fixed_param_rounding, -32768, 32767)
        return q.astype(jnp.int16), straight_through(q / jnp.float32(2.0**frac_bits), v)

    def dequantize(self, q):
        """float32 value of an int16 Q3.12 array (exact)."""
        return q.astype(jnp.float32) / jnp.float32(2.0**self.spec.egru_frac_bits)

    def params(self, p: EGRUParams) -> tuple[EGRUParams, EGRUParams]:
        """(integer params for the chip's step, float shadow params) of float params ``p``."""
        w_in, e_in, w_in_sh = quantize_weights(p.w_in, self.spec)
        w_rec, e_rec, w_rec_sh = quantize_weights(p.w_rec, self.spec)
        (bias, bias_sh), (b_rg, b_rg_sh), (theta, theta_sh) = (self.fixed(v) for v in (p.bias, p.b_rg, p.theta))
        return (EGRUParams(w_in, w_rec, e_in, e_rec, bias, b_rg, theta),
                EGRUParams(w_in_sh, w_rec_sh, None, None, bias_sh, b_rg_sh, theta_sh))


def quantize_inputs(x, spec: ChipSpec = SPINNAKER2):
    """Float inputs ``(B, T, I)`` as the chip's int16 Q3.12 (what an integer QAT cell does to them)."""
    return EGRUQuantizer(spec).fixed(x)[0]


def qat_egru_cells(model, profile: str = "fixed", spec: ChipSpec = SPINNAKER2):
    """A copy of ``model`` whose EGRU cells compute in the chip's ``profile`` ("fixed" or "float32";
    "int" is the earlier name of "fixed"); what :func:`s2jax.quant.qat` does to a model of EGRU cells.

    "fixed": integer forward pass with a float shadow for the gradient (``s2jax.layers.egru``);
    "float32": the chip's float32 arithmetic and accumulation order, differentiated directly
    (slow: the accumulation is a loop over input units). Parameters are unchanged.
    """
    profile = profile_name(profile, ("float32", "fixed"))
    q = nnx.clone(model)
    cells = egru_cells(q)
    if not cells:
        raise ValueError("qat found no EGRU cell in the model")
    for cell in cells:
        cell.numerics = egru_numerics(profile, spec, cell.gamma, cell.slope)
        cell.quantizer = EGRUQuantizer(spec) if profile == "fixed" else None
    return q


def qat_egru(model, profile: str = "fixed", spec: ChipSpec = SPINNAKER2):
    """Deprecated: ``quant.qat(model, QuantConfig(profile=profile, spec=spec))``, the same model."""
    warnings.warn("qat_egru is deprecated: use quant.qat(model, QuantConfig(profile=..., spec=...))",
                  DeprecationWarning, stacklevel=2)
    return qat_egru_cells(model, profile, spec)


def _profile_of(cell, profile):
    if cell.numerics.name in ("fixed", "float32"):
        return cell.numerics.name
    return profile_name(profile or "fixed", ("float32", "fixed"))


def _check_int_layer(k, p: EGRUParams, w_float: tuple, input_bound: int, spec: ChipSpec):
    """Reject clipped weights and sums that could overflow the int32 accumulator."""
    limit = 2 ** (spec.egru_weight_bits - 1) - 1
    event_bound = 2**spec.egru_frac_bits  # |y| <= 2^F (s2jax.egru module doc)
    hidden = p.theta.shape[-1]
    for name, w, e, wq, bound in (("input", w_float[0], p.e_in, p.w_in, input_bound if k == 0 else event_bound),
                                  ("recurrent", w_float[1], p.e_rec, p.w_rec, event_bound)):
        e = np.asarray(e, np.int64)
        scaled = np.abs(np.asarray(w, np.float64)).max(axis=0, initial=0.0) * 2.0**e
        if (scaled > limit).any():
            o = int(np.argmax(scaled > limit))
            raise ValueError(f"EGRU layer {k}: {name} weights of {_unit(o, hidden)} reach {scaled[o] / 2.0**e[o]:.4g}, "
                             f"beyond int{spec.egru_weight_bits} even at the smallest exponent {e[o]}")
        for o, worst in accumulator_violations(wq, bound, hidden)[:1]:  # the bound the design rule checks
            raise ValueError(f"EGRU layer {k}: {name} sum of {_unit(o, hidden)} can reach {worst} > 2^31 - 1 (inputs "
                             f"up to {bound} in Q units): prune or shrink that unit's weights")


def _unit(o: int, hidden: int) -> str:
    return f"gate {'zrg'[o // hidden]} of unit {o % hidden}"


def egru_layers(model, profile: str | None = None, *, spec: ChipSpec | None = None,
                input_bound: int = 32767) -> list[EGRULayer]:
    """The chip's data of every EGRU cell of ``model`` (order of ``egru_cells``), as NumPy arrays.

    The profile is the cells' QAT profile, else ``profile`` (default "fixed"). Integer layers are
    checked: no weight may clip, and no int32 accumulation may overflow for first-layer inputs up
    to ``input_bound`` (Q3.12 units) and events up to ``2^12``; a violation raises ``ValueError``
    naming the layer and the column.
    """
    layers = []
    for k, cell in enumerate(egru_cells(model)):
        fp = cell.float_params()
        if _profile_of(cell, profile) == "float32":
            layers.append(EGRULayer(*(None if a is None else np.asarray(a, np.float32) for a in fp)))
            continue
        quantizer = cell.quantizer or EGRUQuantizer(spec or SPINNAKER2)
        p, _ = quantizer.params(fp)
        _check_int_layer(k, p, (fp.w_in, fp.w_rec), input_bound, quantizer.spec)
        layers.append(EGRULayer(np.asarray(p.w_in, np.int8), np.asarray(p.w_rec, np.int8),
                                np.asarray(p.e_in, np.int8), np.asarray(p.e_rec, np.int8),
                                np.asarray(p.bias, np.int16), np.asarray(p.b_rg, np.int16),
                                np.asarray(p.theta, np.int16)))
    if not layers:
        raise ValueError("found no EGRU cell in the model")
    return layers


def quantize_egru(model, profile: str | None = None, *, spec: ChipSpec | None = None,
                  input_bound: int = 32767) -> list[EGRULayer]:
    """Deprecated: ``quant.quantize(model)`` gives the ``qnet.Network`` of these layers; this returns
    the layers' data (:func:`egru_layers`) as before."""
    warnings.warn("quantize_egru is deprecated: use quant.quantize(model), a qnet.Network of egru layers",
                  DeprecationWarning, stacklevel=2)
    return egru_layers(model, profile, spec=spec, input_bound=input_bound)
