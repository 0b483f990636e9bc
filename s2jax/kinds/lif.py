"""The leaky integrate-and-fire kinds: ``lif`` (synaptic delays, 4-bit weights), ``lif_no_delay``
(8-bit weights) and ``lif_conv2d`` (the target of conv projections; it takes synapse rows too), all
stepped by :func:`s2jax.dynamics.lif_step` in one chip-model block::

    v = (decay(alpha_decay, v) + input(I)) + i_offset ;  z = v > threshold ;  reset on z
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from s2jax import dynamics
from s2jax.kinds.base import Block, NeuronKind, register
from s2jax.kinds.codecs import NIRCodec, NIRImport, decay_gain, flat_field, nonzero, per_neuron, positive, tau_of

DEFAULTS = {"threshold": 1.0, "alpha_decay": 1.0, "i_offset": 0.0, "v_init": 0.0, "v_reset": 0.0,
            "reset": "reset_by_subtraction"}
CLASSES = {"threshold": "value", "alpha_decay": "decay", "i_offset": "value", "v_init": "value",
           "v_reset": "value", "reset": "reset"}


def _params(v) -> dynamics.LIFParams:
    return dynamics.LIFParams(v["alpha_decay"], v["threshold"], v["i_offset"], v["v_reset"], v["reset"])


def _step(params, state, a, b, num, layout):
    return dynamics.lif_step(params, state, a, num)


# --- NIR codec: LIF, or LI for a readout; reads foreign LIF, IF and LI nodes -------------------------------------------------------------


def _lif_to_node(values, shape, dt: float, readout: bool):
    import nir

    tau = per_neuron(tau_of(values["alpha_decay"], dt), shape)
    r = tau / dt
    v_leak = per_neuron(values["i_offset"], shape) * r
    if readout:
        return nir.LI(tau=tau, r=r, v_leak=v_leak)
    return nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=per_neuron(values["threshold"], shape),
                   v_reset=per_neuron(values["v_reset"], shape))


def _lif_readout(values, spec) -> bool:
    return bool(np.all(np.asarray(values["threshold"], np.float64) >= spec.readout_threshold))


def _lif_model_of(node_type: str, conv: bool, where: str) -> str:
    return "lif_conv2d" if conv else "lif_no_delay"


def _lif_from_node(node, where: str, shape, bias, w_scale: float, s: NIRImport):
    reset = {"reset": s.reset}
    flat = lambda name: flat_field(node, name, shape)  # noqa: E731
    if type(node).__name__ == "IF":
        v_scale = 1.0 / nonzero(node, "r", shape, where) * w_scale
        return {"threshold": flat("v_threshold") * v_scale, "alpha_decay": 1.0, "i_offset": bias * w_scale,
                **reset}, v_scale
    alpha, gain = decay_gain(positive(node, "tau", shape, where), s.dt, s.integrator)
    scale = 1.0 / (gain * nonzero(node, "r", shape, where)) * w_scale
    i_offset = gain * flat("v_leak") * scale + bias * w_scale
    threshold = (np.full(math.prod(shape), s.readout_threshold) if type(node).__name__ == "LI"
                 else flat("v_threshold") * scale)
    return {"threshold": threshold, "alpha_decay": alpha, "i_offset": i_offset, **reset}, scale


LIF_NIR = NIRCodec(
    fields={"LIF": ("tau", "r", "v_leak", "v_threshold"), "IF": ("r", "v_threshold"), "LI": ("tau", "r", "v_leak")},
    optional={"LIF": ("v_reset",), "IF": ("v_reset",)},
    writes=("LIF", "LI"), to_node=_lif_to_node, readout=_lif_readout, bias="i_offset",
    reads=("LIF", "IF", "LI"), model_of=_lif_model_of, from_node=_lif_from_node)



BLOCK = Block("lif", ("alpha_decay", "threshold", "i_offset", "v_reset", "reset"), _params,
              lambda v0, dtype: dynamics.LIFState(jnp.asarray(v0, dtype)), _step)

LIF = register(NeuronKind("lif", "LIF with synaptic delays (0..7 ticks), weights in [-15, 15]", DEFAULTS, CLASSES,
                          block=BLOCK, weight_range=(-15, 15), delays=True,
                          codecs={"nir": LIF_NIR}))
LIF_NO_DELAY = register(NeuronKind("lif_no_delay", "LIF without delays, weights in [-127, 127]", DEFAULTS, CLASSES,
                                   block=BLOCK, weight_range=(-127, 127), codecs={"nir": LIF_NIR}))
LIF_CONV2D = register(NeuronKind("lif_conv2d", "LIF fed by Conv2DProjection kernels (int8)", DEFAULTS, CLASSES,
                                 block=BLOCK, weight_range=(-127, 127), atoms_per_core=1024,
                                 codecs={"nir": LIF_NIR}, projections=("conv2d", "dense")))
