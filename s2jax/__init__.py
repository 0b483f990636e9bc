"""s2jax: train spiking networks against the exact arithmetic of SpiNNaker2, and deploy them."""

from s2jax import dynamics, fixedpoint, hwmodel, qnet
from s2jax.spec import SPINNAKER2, ChipSpec, Rounding

__version__ = "0.1.0"

__all__ = ["SPINNAKER2", "ChipSpec", "Rounding", "dynamics", "fixedpoint", "hwmodel", "qnet", "__version__"]
