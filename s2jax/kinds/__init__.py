"""The registry of neuron kinds: one place that says what each ``neuron_model`` is.

Every module that needs to know a kind (the hand-off format's checks, the chip model, the design
rules, the mapper) asks this registry instead of listing model names. The stock kinds register on
import: :mod:`~s2jax.kinds.spike_list`, :mod:`~s2jax.kinds.lif`, :mod:`~s2jax.kinds.cuba`.
"""

from s2jax.kinds.base import (PARAM_CLASSES, Block, NeuronKind, block, blocks, get, input_names, names,
                              neuron_names, register, unregister)
from s2jax.kinds import spike_list, lif, cuba  # noqa: E402,F401  (the stock kinds register themselves)

__all__ = ["Block", "NeuronKind", "PARAM_CLASSES", "register", "unregister", "get", "names", "neuron_names",
           "input_names", "block", "blocks"]
