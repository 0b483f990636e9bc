"""The bit-exact, jittable SpiNNaker2 chip model, with core mapping and a cost model.

Imported as py-spinnaker2's ``hardware`` (``from s2jax import hwmodel as hardware``):
``SpiNNaker2Chip`` (1 chip) and ``SpiNNcloud48NodeBoard`` (48 chips) run a ``qnet.Network`` on
the model with py-spinnaker2's constructor and ``run`` arguments (see :class:`Simulator`).
"""

from s2jax.hwmodel import mla
from s2jax.hwmodel.cost import CostEstimate, estimate_cost
from s2jax.hwmodel.egru import EGRUTrace, egru_network, run_egru
from s2jax.hwmodel.layers import run_layers
from s2jax.hwmodel.scheduler import LayerSchedule, Schedule, schedule
from s2jax.hwmodel.mapping import Mapping, Placement, map_to_cores
from s2jax.hwmodel.program import ChipProgram, Layout, compile_network
from s2jax.hwmodel.hardware import (
    Simulator,
    SpikeTimes,
    SpiNNaker2Chip,
    SpiNNcloud48NodeBoard,
    time_done_estimates,
)
from s2jax.hwmodel.simulator import MAX_RUN_BYTES, Trace, check_run_size, run, spike_list_inputs, to_volts

__all__ = ["MAX_RUN_BYTES", "ChipProgram", "CostEstimate", "EGRUTrace", "Layout", "Mapping", "Placement", "Simulator", "SpikeTimes",
           "SpiNNaker2Chip", "SpiNNcloud48NodeBoard", "Trace", "check_run_size", "compile_network", "egru_network", "estimate_cost", "map_to_cores",
           "mla", "run", "run_egru", "run_layers", "schedule", "Schedule", "LayerSchedule", "spike_list_inputs", "time_done_estimates", "to_volts"]
