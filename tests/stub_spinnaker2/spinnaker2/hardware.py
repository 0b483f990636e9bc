"""Stand-in for ``spinnaker2.hardware``: ``SpiNNaker2Chip.run`` simulates with s2jax's chip model."""

import os

import numpy as np

from spinnaker2 import CALLS, dump_calls, log, network_from_calls, new_id
from spinnaker2.snn import Network


class SpiNNaker2Chip:
    def __init__(self, eth_ip):
        self._stub_id = new_id()
        log("hardware.SpiNNaker2Chip", self, (), dict(eth_ip=eth_ip))
        if type(eth_ip) is not str:
            raise TypeError(f"eth_ip must be a str, got {eth_ip!r}")
        self.eth_ip = eth_ip

    def run(self, net, timesteps, debug=True, sys_tick_in_s=1e-3):
        log("SpiNNaker2Chip.run", self, (net, timesteps), dict(debug=debug, sys_tick_in_s=sys_tick_in_s))
        if not isinstance(net, Network):
            raise TypeError(f"net must be a Network, got {net!r}")
        if type(timesteps) is not int or timesteps < 1:
            raise TypeError(f"timesteps must be a positive int, got {timesteps!r}")
        if type(sys_tick_in_s) is not float or sys_tick_in_s <= 0:
            raise TypeError(f"sys_tick_in_s must be a positive float, got {sys_tick_in_s!r}")
        from s2jax import hwmodel

        model = network_from_calls(CALLS, net._stub_id)
        inputs = hwmodel.spike_list_inputs(model, timesteps)
        _, trace = hwmodel.run(model, inputs or None, timesteps=timesteps)
        for stub, pop in zip(net.populations, model.populations):
            if pop.name in trace.spikes:
                s = np.asarray(trace.spikes[pop.name][0])
                stub._spikes = {i: np.nonzero(s[:, i])[0].tolist() for i in range(pop.size) if s[:, i].any()}
            if pop.name in trace.voltages:
                v = np.asarray(trace.voltages[pop.name][0])
                stub._voltages = {i: v[:, i].tolist() for i in range(pop.size)}
        path = os.environ.get("SPINNAKER2_STUB_LOG")
        if path:
            dump_calls(path)
