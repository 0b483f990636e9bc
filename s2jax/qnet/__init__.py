"""The integer hand-off format, with py-spinnaker2's front door.

An existing py-spinnaker2 script runs on the chip model by changing its imports::

    from s2jax import qnet as snn
    from s2jax import hwmodel as hardware

    stim = snn.Population(size=2, neuron_model="spike_list", params={0: [1, 4], 1: [2]}, name="in")
    pop = snn.Population(size=3, neuron_model="lif",
                         params={"threshold": 10.0, "alpha_decay": 0.9, "reset": "reset_by_subtraction"},
                         name="lif", record=["spikes", "v"])
    proj = snn.Projection(pre=stim, post=pop, connections=[[0, 0, 12, 0], [1, 2, -3, 5]])
    net = snn.Network("demo")
    net.add(stim, pop, proj)
    hardware.SpiNNaker2Chip().run(net, 20)
    pop.get_spikes(), pop.get_voltages()

Beside the spiking populations, a network holds :class:`Layer` nodes: EGRU layers and the MAC
array's int8 dense and conv layers (``Layer("egru", arrays)``), each of a kind of the registry
(:func:`s2jax.kinds.layer_names`).

Everything here is data plus validation: a bad weight, delay, index, name or shape raises a
``ValueError`` that names the population, the value and the limit, at construction time.
"""

from s2jax.qnet.checks import (
    CONV_KEYS,
    CUBA_DEFAULTS,
    DECAY_PARAMS,
    DECAY_RANGE,
    LIF_DEFAULTS,
    MAX_NAME_LENGTH,
    MAX_POPULATION_SIZE,
    MAX_SPIKES,
    MAX_SYNAPSES,
    MAX_TICK,
    RECORDABLE,
    RESET_MODES,
    decay_violations,
    parameter_error,
    population_size_error,
    spike_count_error,
    synapse_count_error,
)
from s2jax.qnet.layer import MAX_LAYER_VALUES, Layer, egru_network
from s2jax.qnet.network import Network
from s2jax.qnet.population import Population
from s2jax.qnet.projection import Conv2DProjection, Projection

__all__ = ["Population", "Projection", "Conv2DProjection", "Layer", "egru_network", "MAX_LAYER_VALUES", "Network", "LIF_DEFAULTS", "CUBA_DEFAULTS",
           "MAX_POPULATION_SIZE", "MAX_SYNAPSES", "MAX_SPIKES", "MAX_NAME_LENGTH", "MAX_TICK", "DECAY_PARAMS",
           "DECAY_RANGE", "decay_violations", "parameter_error", "population_size_error", "synapse_count_error",
           "spike_count_error", "CONV_KEYS", "RECORDABLE", "RESET_MODES"]
