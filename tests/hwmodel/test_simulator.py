"""The py-spinnaker2 front door: Simulator / SpiNNaker2Chip fill get_spikes() and get_voltages()."""

import numpy as np
import pytest

from s2jax import hwmodel as hardware
from s2jax import qnet as snn
from tests.reference.oracle import simulate


def readme_network():
    stim = snn.Population(size=2, neuron_model="spike_list", params={0: [1, 4], 1: [2]}, name="in")
    pop = snn.Population(size=3, neuron_model="lif",
                         params={"threshold": 10.0, "alpha_decay": 0.9, "reset": "reset_by_subtraction"},
                         name="lif", record=["spikes", "v"])
    proj = snn.Projection(pre=stim, post=pop, connections=[[0, 0, 12, 0], [1, 2, -3, 5]])
    return snn.Network("demo").add(stim, pop, proj), pop


@pytest.mark.parametrize("profile", ["float32", "fixed"])
def test_front_door_matches_reference(profile):
    net, pop = readme_network()
    hardware.SpiNNaker2Chip(eth_ip="192.168.1.2", profile=profile).run(net, 20)
    x = np.zeros((20, 2), bool)
    x[[1, 4], 0] = True
    x[2, 1] = True
    spikes, volts, _ = simulate(net, {"in": x}, 20, profile)
    assert pop.get_spikes() == {0: [2, 5]}
    assert pop.get_spikes() == {i: np.nonzero(spikes["lif"][:, i])[0].tolist() for i in range(3)
                                if spikes["lif"][:, i].any()}
    v = pop.get_voltages()
    if profile == "float32":
        np.testing.assert_array_equal(np.stack([v[i] for i in range(3)], 1), volts["lif"])
    else:
        np.testing.assert_array_equal(np.stack([v[i] for i in range(3)], 1), volts["lif"] / 2.0**15)
    assert v[2][8] == -3.0  # the delay-5 spike of tick 2 arrives at tick 8


def test_spike_list_ticks_beyond_the_run_are_not_reached():
    net, pop = readme_network()
    hardware.Simulator().run(net, 3)
    assert pop.get_spikes() == {0: [2]}
    with pytest.raises(ValueError, match="timesteps must be a positive integer"):
        hardware.Simulator().run(net, 0)
