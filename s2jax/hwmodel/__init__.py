"""The bit-exact, jittable SpiNNaker2 chip model, with core mapping and a cost model."""

from s2jax.hwmodel import mla
from s2jax.hwmodel.cost import CostEstimate, estimate_cost
from s2jax.hwmodel.egru import EGRUTrace, run_egru
from s2jax.hwmodel.mapping import Mapping, Placement, map_to_cores
from s2jax.hwmodel.program import ChipProgram, Layout, compile_network
from s2jax.hwmodel.simulator import Simulator, SpiNNaker2Chip, Trace, run, spike_list_inputs, to_volts

__all__ = ["ChipProgram", "CostEstimate", "EGRUTrace", "Layout", "Mapping", "Placement", "Simulator", "SpiNNaker2Chip",
           "Trace", "compile_network", "estimate_cost", "map_to_cores", "mla", "run", "run_egru", "spike_list_inputs",
           "to_volts"]
