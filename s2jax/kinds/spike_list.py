"""``spike_list``: a spike source whose ``params`` are ``{neuron: [tick, ...]}`` (no state, no step)."""

from s2jax.kinds.base import NeuronKind, register

SPIKE_LIST = register(NeuronKind("spike_list", "spike source: {neuron: [tick, ...]}", is_input=True,
                                 atoms_per_core=1024, state_bytes=0))
