"""The bit-exact, jittable SpiNNaker2 chip model."""

from s2jax.hwmodel import mla
from s2jax.hwmodel.program import ChipProgram, Layout, compile_network
from s2jax.hwmodel.simulator import Simulator, SpiNNaker2Chip, Trace, run, to_volts

__all__ = ["ChipProgram", "Layout", "Simulator", "SpiNNaker2Chip", "Trace", "compile_network", "mla", "run",
           "to_volts"]
