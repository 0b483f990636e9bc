"""Neuron parameters in the chip's storage formats, for the chip model (:mod:`s2jax.hwmodel.program`).

Each parameter is converted by its class (:data:`s2jax.kinds.PARAM_CLASSES`): "value" parameters are
float32 (subnormals flushed, as the chip) or s16.15 integers; "decay" parameters float32 or unsigned
0.16; "ticks" int32; "reset" a flag (True: reset by subtraction). The host-side rounding onto the
fixed-point grid is the spec's ``fixed_param_rounding``, through :func:`s2jax.fixedpoint.to_fixed`
(the conversion the QAT layers use).
"""

from __future__ import annotations

import numpy as np

from s2jax import kinds
from s2jax.fixedpoint import INT32_MAX, INT32_MIN, to_fixed
from s2jax.qnet import Population, decay_violations
from s2jax.spec import ChipSpec

__all__ = ["flush_subnormals", "param_values", "block_params"]


def _to_fixed(pop: Population, key: str, spec: ChipSpec) -> np.ndarray:
    """A float parameter on the s16.15 grid (host rounding named by the spec)."""
    values = pop.param_array(key)
    q = to_fixed(np.where(np.isfinite(values), values, 0.0), spec.fixed_v_frac_bits, spec.fixed_param_rounding)
    bad = ~np.isfinite(values) | (q < INT32_MIN) | (q > INT32_MAX)
    if key == "threshold":
        # A threshold above the int32 range can never be crossed: keep it unreachable.
        unreachable = values.astype(np.float64) * 2.0**spec.fixed_v_frac_bits >= INT32_MAX
        q = np.where(unreachable, INT32_MAX, q)
        bad = bad & ~unreachable
    if np.any(bad):
        value = pop.param_array(key)[np.argmax(bad)]
        limit = 2.0 ** (31 - spec.fixed_v_frac_bits)
        raise ValueError(
            f"population {pop.name!r}: {key} = {value} does not fit the fixed-point profile's "
            f"s{31 - spec.fixed_v_frac_bits}.{spec.fixed_v_frac_bits} range [-{limit:g}, {limit:g})"
        )
    return q.astype(np.int32)


def _decay_fixed(pop: Population, key: str, spec: ChipSpec) -> np.ndarray:
    """A decay as unsigned 0.16 (``fixed_decay_frac_bits``). Values outside [0, 1] are refused by
    :func:`s2jax.qnet.decay_violations`, the same function the design rules report them with."""
    bad = [msg for k, _, msg in decay_violations(pop) if k == key]
    if bad:
        raise ValueError(f"{bad[0]}; the fixed-point profile stores decays as unsigned "
                         f"0.{spec.fixed_decay_frac_bits}")
    return to_fixed(pop.param_array(key), spec.fixed_decay_frac_bits, spec.fixed_param_rounding).astype(np.int32)


def flush_subnormals(x: np.ndarray) -> np.ndarray:
    """float32 values below 2^-126 in magnitude become signed zeros (ChipSpec.flush_subnormals)."""
    x = np.asarray(x, np.float32)
    tiny = np.finfo(np.float32).tiny
    return np.where(np.abs(x) < tiny, np.copysign(np.float32(0), x), x).astype(np.float32)


def param_values(pop: Population, key: str, profile: str, spec: ChipSpec) -> np.ndarray:
    """One parameter of ``pop``, one value per neuron, stored as its class says (kinds.PARAM_CLASSES)."""
    cls = kinds.get(pop.neuron_model).param_classes[key]
    if cls == "reset":
        return np.full(pop.size, pop.params[key] == "reset_by_subtraction")
    if cls == "ticks":
        return pop.param_array(key, np.float64).astype(np.int32)
    if profile == "float32":
        return flush_subnormals(pop.param_array(key))
    return _decay_fixed(pop, key, spec) if cls == "decay" else _to_fixed(pop, key, spec)


def block_params(block: kinds.Block, pops: list[Population], profile: str, spec: ChipSpec):
    """``(params pytree, v0)`` of one block: every population's parameters, concatenated."""
    def cat(key):
        return np.concatenate([param_values(p, key, profile, spec) for p in pops])

    return block.make_params({k: cat(k) for k in block.params}), cat("v_init")
