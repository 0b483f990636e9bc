"""Flax NNX layers whose forward pass is the chip's arithmetic after ``s2jax.quant.qat``."""

from s2jax import surrogates
from s2jax.layers import encoders, losses
from s2jax.layers.kind_neuron import Neuron
from s2jax.layers.neurons import LI, LIF, CubaLIF
from s2jax.layers.snn import SNN, SNNOutput
from s2jax.layers.synapses import Conv, Linear

__all__ = ["LIF", "LI", "CubaLIF", "Neuron", "Linear", "Conv", "SNN", "SNNOutput", "surrogates", "encoders", "losses"]

from s2jax.layers.egru import EGRU, EGRUStack  # noqa: E402

__all__ += ["EGRU", "EGRUStack"]
