"""The stock projection kinds: ``dense`` (:class:`s2jax.qnet.Projection`, synapse rows) and
``conv2d`` (:class:`s2jax.qnet.Conv2DProjection`, a kernel computed by the MAC array).

Per tick, with every synapse active::

    dense:   events = rows                      macs = 0
    conv2d:  events = 0                         macs = C_out * H_out * W_out * C_in * kH * kW

SRAM on the PEs of the post population (:func:`s2jax.hwmodel.map_to_cores`)::

    dense:   synapse_word_bytes with the post neuron of every row
    conv2d:  C_in * C_out * kH * kW (the int8 kernel) + CONV_PARAM_BYTES on every PE

A ``conv2d`` projection also has the design rule ``mac_accumulator``: its accumulator bound
(:func:`s2jax.kinds.mla.conv_accumulator_bound`) fits the signed ``spec.mla_accumulator_bits``.
A neuron kind says which projection kinds may target it (:attr:`NeuronKind.projections`).
"""

from __future__ import annotations

import numpy as np

from s2jax.kinds.base import NeuronKind, ProjectionKind, get, get_projection, projection_targets, register

__all__ = ["DENSE", "CONV2D", "mac_target", "targets_text"]

_NONE = np.zeros(0, np.int64)


def _dense_bytes(proj, spec):
    posts = np.asarray(proj.post_idx, np.int64)
    return posts, np.full(posts.shape, spec.synapse_word_bytes, np.int64), 0


def _conv_macs(proj) -> int:
    c_in, c_out, kh, kw = proj.weights.shape
    return int(c_out * proj.out_height * proj.out_width * c_in * kh * kw)


def _conv_bytes(proj, spec):
    from s2jax.hwmodel.mapping import CONV_PARAM_BYTES  # imported here, as the mapper imports the kinds

    return _NONE, _NONE, int(proj.weights.size) + CONV_PARAM_BYTES


def _conv_rules(proj, spec):
    from s2jax.kinds.mla import conv_accumulator_bound  # here: the layer kinds register after the neuron kinds

    limit = 2 ** (spec.mla_accumulator_bits - 1) - 1
    acc = conv_accumulator_bound(proj)
    if acc <= limit:
        return []
    where = f"conv projection {proj.pre.name!r} -> {proj.post.name!r}"
    return [("mac_accumulator", acc, limit, f"{where}: accumulator bound C_in*kH*kW*pool*max|w| = {acc:,} exceeds "
             f"the {spec.mla_accumulator_bits}-bit MAC accumulator ({limit:,})")]


DENSE = register(ProjectionKind("dense", "synapse rows [pre, post, weight, delay] (qnet.Projection)",
                                worst_events=lambda proj: len(proj.weights), macs=lambda proj: 0,
                                synapse_bytes=_dense_bytes))
CONV2D = register(ProjectionKind("conv2d", "a 2D convolution kernel on the MAC array (qnet.Conv2DProjection)",
                                 worst_events=lambda proj: 0, macs=_conv_macs, synapse_bytes=_conv_bytes,
                                 rules=_conv_rules, mac_array=True))


def mac_target(model: str | NeuronKind) -> bool:
    """Whether populations of neuron kind ``model`` are charged MAC-array work instead of synaptic
    events (the cost model): a projection kind computed by the MAC array may target them."""
    kind = model if isinstance(model, NeuronKind) else get(model)
    return any(get_projection(p).mac_array for p in kind.projections)


def targets_text(name: str) -> str:
    """The neuron kinds projections of kind ``name`` may target, for messages: ``'a' or 'b'``."""
    return " or ".join(repr(k) for k in projection_targets(name)) or "(no registered kind)"
