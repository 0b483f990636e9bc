"""The registry of neuron kinds: one place that says what each ``neuron_model`` is.

Every module that needs to know a kind (the hand-off format's checks, the chip model, the design
rules, the mapper) asks this registry instead of listing model names. The stock kinds register on
import: the projection kinds :mod:`~s2jax.kinds.projections` (``dense``: ``qnet.Projection``;
``conv2d``: ``qnet.Conv2DProjection``), the neuron kinds :mod:`~s2jax.kinds.spike_list`,
:mod:`~s2jax.kinds.lif`, :mod:`~s2jax.kinds.cuba` (``qnet.Population``; each names the projection
kinds that may target it) and the layer kinds :mod:`~s2jax.kinds.egru`, :mod:`~s2jax.kinds.mla`,
:mod:`~s2jax.kinds.pool`
(``qnet.Layer``).
"""

from s2jax.kinds.base import (PARAM_CLASSES, Block, LayerKind, NeuronKind, ProjectionKind, block, blocks, get,
                              get_layer, get_projection, input_names, layer_names, names, neuron_names,
                              projection_names, projection_targets, register, unregister)
# the stock kinds register themselves, projection kinds first (neuron kinds name them)
from s2jax.kinds import projections, spike_list, lif, cuba, egru, mla, pool  # noqa: E402,F401
from s2jax.kinds.projections import mac_target  # noqa: E402

__all__ = ["Block", "NeuronKind", "LayerKind", "ProjectionKind", "PARAM_CLASSES", "register", "unregister", "get",
           "get_layer", "get_projection", "names", "neuron_names", "input_names", "layer_names", "projection_names",
           "projection_targets", "mac_target", "block", "blocks"]
