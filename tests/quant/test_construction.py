"""QAT by construction: layers take the chip spec and the numerics they compute with, and ``qat`` passes
its config's; no layer reads the global spec when one was given."""

import dataclasses

import jax.numpy as jnp
import numpy as np
from flax import nnx

from s2jax import SPINNAKER2, quant
from s2jax.layers import LI, LIF, CubaLIF, Linear, Neuron
from s2jax.layers.snn import SNN
from s2jax.numerics import ChipFloat32, numerics_for

CUSTOM = dataclasses.replace(SPINNAKER2, readout_threshold=1.0e30, cuba_current_order="previous")


def test_layers_take_the_spec_they_are_given():
    for layer in (LIF(3, spec=CUSTOM), CubaLIF(3, spec=CUSTOM), LI(3, spec=CUSTOM), Neuron("lif", 3, spec=CUSTOM),
                  Neuron("lif_curr_exp", 3, spec=CUSTOM)):
        assert layer.readout_threshold == CUSTOM.readout_threshold
        assert layer.current_order == "previous"
    assert float(LI(2, spec=CUSTOM).threshold[...][0]) == np.float32(1.0e30)
    assert LIF(3).readout_threshold == SPINNAKER2.readout_threshold  # the default chip when none is given


def test_layers_take_the_numerics_they_are_given():
    num = numerics_for("float32", CUSTOM)
    cell = LIF(2, alpha=0.5, threshold=1.0, numerics=num)
    assert cell.numerics is num and isinstance(cell.numerics, ChipFloat32)
    _, z = cell(cell.initialize_carry((1, 2)), jnp.array([[1.0, 2.0]]))
    assert z.tolist() == [[0.0, 1.0]]  # strict threshold: v == 1.0 does not spike


def test_qat_passes_its_config_spec_to_every_neuron():
    model = SNN([(Linear(4, 3, rngs=nnx.Rngs(0)), CubaLIF(3)), (Linear(3, 2, rngs=nnx.Rngs(1)), LI(2))])
    q = quant.qat(model, quant.QuantConfig(spec=CUSTOM))
    assert [n.readout_threshold for n in q.neurons] == [CUSTOM.readout_threshold] * 2
    assert q.neurons[0].current_order == "previous"
    assert model.neurons[0].current_order == SPINNAKER2.cuba_current_order  # the float model is not touched
