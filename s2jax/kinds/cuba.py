"""The current-based kinds ``lif_curr_exp`` (delays, 4-bit weights) and ``lif_curr_exp_no_delay``
(8-bit weights), stepped by :func:`s2jax.dynamics.cuba_step` in one chip-model block. Two synaptic
channels: positive weights feed ``i_exc``, the magnitudes of negative weights ``i_inh``; a refractory counter
holds the membrane at ``v_reset`` for ``t_refrac`` ticks after a spike."""

from __future__ import annotations

import jax.numpy as jnp

from s2jax import dynamics
from s2jax.kinds.base import Block, NeuronKind, register
from s2jax.kinds.codecs import NIRCodec, NIRImport, decay_gain, flat_field, nonzero, per_neuron, positive, tau_of
from s2jax.kinds.lif import CLASSES as LIF_CLASSES
from s2jax.kinds.lif import DEFAULTS as LIF_DEFAULTS

DEFAULTS = {**LIF_DEFAULTS, "exc_decay": 0.0, "inh_decay": 0.0, "t_refrac": 0}
CLASSES = {**LIF_CLASSES, "exc_decay": "decay", "inh_decay": "decay", "t_refrac": "ticks"}
PARAMS = ("alpha_decay", "threshold", "i_offset", "v_reset", "reset", "exc_decay", "inh_decay", "t_refrac")


def _params(v) -> dynamics.CubaParams:
    return dynamics.CubaParams(*(v[k] for k in PARAMS))


def _state(v0, dtype) -> dynamics.CubaState:
    v0 = jnp.asarray(v0, dtype)
    zeros = jnp.zeros(v0.shape, dtype)
    return dynamics.CubaState(v0, zeros, zeros, jnp.zeros(v0.shape, jnp.int32))


def _step(params, state, a, b, num, layout):
    return dynamics.cuba_step(params, state, a, b, num, layout.cuba_order)


# --- NIR codec: CubaLIF both ways ---------------------------------------------------


def _cuba_to_node(values, shape, dt: float, readout: bool):
    import nir

    tau = per_neuron(tau_of(values["alpha_decay"], dt), shape)
    r = tau / dt
    tau_syn = per_neuron(tau_of(values["exc_decay"], dt), shape)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau, r=r, v_leak=per_neuron(values["i_offset"], shape) * r,
                       v_threshold=per_neuron(values["threshold"], shape), v_reset=per_neuron(values["v_reset"], shape),
                       w_in=tau_syn / dt)


def _cuba_model_of(node_type: str, conv: bool, where: str) -> str:
    if conv:
        raise ValueError(f"{where} is fed by a Conv2d; lif_conv2d has no current-based variant "
                         f"(py-spinnaker2 rejects it too)")
    return "lif_curr_exp_no_delay"


def _cuba_from_node(node, where: str, shape, bias, w_scale: float, s: NIRImport):
    alpha, g_mem = decay_gain(positive(node, "tau_mem", shape, where), s.dt, s.integrator)
    syn_decay, g_syn = decay_gain(positive(node, "tau_syn", shape, where), s.dt, s.integrator)
    r, w_in = nonzero(node, "r", shape, where), nonzero(node, "w_in", shape, where)
    v_scale, i_scale = 1.0 / (g_mem * r), 1.0 / (g_syn * w_in)
    scale = v_scale * i_scale * w_scale
    v_leak = flat_field(node, "v_leak", shape)
    return {"threshold": flat_field(node, "v_threshold", shape) * scale, "alpha_decay": alpha,
            "exc_decay": syn_decay, "inh_decay": syn_decay,
            "i_offset": g_mem * v_leak * scale + bias * w_in * i_scale * w_scale, "t_refrac": 0, "v_reset": 0.0,
            "reset": s.reset}, scale


CUBA_NIR = NIRCodec(
    fields={"CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "w_in")},
    optional={"CubaLIF": ("v_reset",)},
    writes=("CubaLIF",), to_node=_cuba_to_node, reads=("CubaLIF",), model_of=_cuba_model_of,
    from_node=_cuba_from_node)

BLOCK = Block("cuba", PARAMS, _params, _state, _step)

LIF_CURR_EXP = register(NeuronKind(
    "lif_curr_exp", "current-based LIF with synaptic delays, weights in [-15, 15]", DEFAULTS, CLASSES, channels=2,
    block=BLOCK, weight_range=(-15, 15), state_bytes=44, delays=True, codecs={"nir": CUBA_NIR}))
LIF_CURR_EXP_NO_DELAY = register(NeuronKind(
    "lif_curr_exp_no_delay", "current-based LIF without delays, weights in [-127, 127]", DEFAULTS, CLASSES,
    channels=2, block=BLOCK, weight_range=(-127, 127), state_bytes=44, codecs={"nir": CUBA_NIR}))
