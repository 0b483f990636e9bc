"""The registry of neuron kinds: one place that says what each ``neuron_model`` is.

Every module that needs to know a kind (the hand-off format's checks, the chip model, the design
rules, the mapper) asks this registry instead of listing model names. The stock kinds register on
import: the neuron kinds :mod:`~s2jax.kinds.spike_list`, :mod:`~s2jax.kinds.lif`,
:mod:`~s2jax.kinds.cuba` (``qnet.Population``) and the layer kinds :mod:`~s2jax.kinds.egru`,
:mod:`~s2jax.kinds.mla` (``qnet.Layer``).
"""

from s2jax.kinds.base import (PARAM_CLASSES, Block, LayerKind, NeuronKind, block, blocks, get, get_layer,
                              input_names, layer_names, names, neuron_names, register, unregister)
from s2jax.kinds import spike_list, lif, cuba, egru, mla  # noqa: E402,F401  (the stock kinds register themselves)

__all__ = ["Block", "NeuronKind", "LayerKind", "PARAM_CLASSES", "register", "unregister", "get", "get_layer", "names",
           "neuron_names", "input_names", "layer_names", "block", "blocks"]
