"""NIR import and export: :func:`to_nir` and :func:`from_nir`.

**Export** (:func:`to_nir`) writes a ``qnet.Network`` (chip units: integer weights) or a float
``layers.SNN`` (float units) as a NIR graph. A population of ``alpha_decay = a``, threshold
``theta``, ``i_offset = c`` becomes, with the stored tick ``dt`` and forward Euler::

    LIF      tau = dt / (1 - a)   r = tau / dt   v_leak = c r   v_threshold = theta   v_reset
    LI       the same without threshold (a readout: threshold = ChipSpec.readout_threshold)
    CubaLIF  tau_mem, r as LIF;  tau_syn = dt / (1 - exc_decay),  w_in = tau_syn / dt

so that ``dt / tau * r = 1`` and ``dt / tau_syn * w_in = 1``: py-spinnaker2's forward-Euler import
(below, without weight scaling) gives back ``a``, ``theta`` and ``c`` up to float64 rounding.
``a = 1`` (no leak) is written as ``tau = 2^26 dt``, whose forward-Euler decay ``1 - 2^-26`` rounds
to exactly 1.0 in float32. When a LIF / LI population has one dense input and a non-zero
``i_offset``, the constant travels as the bias of an ``Affine`` node (``v_leak = 0``); otherwise
weights are ``Linear`` nodes. Convolutions are ``Conv2d`` (NIR layout ``(C_out, C_in, kH, kW)``,
symmetric padding only), preceded by a ``SumPool2d`` (kernel = stride) for the chip's fused
pooling; a ``Flatten`` precedes a dense layer fed by a ``(C, H, W)`` population. Every population
with no synapses into another population feeds an ``Output`` node.

Everything the NIR primitives cannot say travels in node ``metadata`` under ``s2jax_*`` keys
(flat; values are strings, numbers and NumPy arrays, all of which survive ``nir.write`` /
``nir.read``): the chip neuron model, reset mode, every parameter as the population holds it
(float64; the chip stores its float32 rounding: ``alpha_decay``, ``threshold``, ``i_offset``,
``v_init``, ``v_reset``, ``exc_decay``, ``inh_decay``, ``t_refrac``), the integer synapse rows
with their delays (NIR has no per-synapse delay) and the weight range of each projection, the
conv parameters, spike-source times, population names, order and recording, atoms per core;
and in the graph metadata the format, ``dt``, the integrator of the convention above, the
one-tick-per-layer latency and the integer formats. :func:`from_nir` uses that metadata, when the
graph carries it, to rebuild the network exactly (``use_metadata=False`` converts the NIR
parameters instead, like any foreign graph).

**Import** (:func:`from_nir`) reproduces py-spinnaker2's NIR conversion (``ConversionConfig``
settings under their own names). Per neuron node, with the one-tick decay and gain of a time
constant ``tau``::

    forward:      decay = 1 - dt/tau        gain = dt/tau
    exponential:  decay = exp(-dt/tau)      gain = 1 - exp(-dt/tau)

    w_scale = 127 / max|W_in|  (or / percentile(|W_in|, p)), over every weight node into the
              population (1 without scale_weights)
    LIF:     alpha_decay = decay;  scale = (1 / (gain r)) w_scale
             threshold = v_threshold scale;  i_offset = gain v_leak scale + bias w_scale
    IF:      alpha_decay = 1;  threshold = v_threshold ((1 / r) w_scale);  i_offset = bias w_scale
    CubaLIF: lif_curr_exp_no_delay;  exc_decay = inh_decay = decay(tau_syn);  alpha_decay = decay(tau_mem)
             scale = (1 / (gain_mem r)) (1 / (gain_syn w_in)) w_scale   (the input gains folded into
             the threshold);  threshold = v_threshold scale
             i_offset = gain_mem v_leak scale + bias w_in (1 / (gain_syn w_in)) w_scale;  t_refrac = 0
    LI (ours, a readout): as LIF with threshold = ChipSpec.readout_threshold, voltage recorded
    weights: W^T w_scale rounded to integers (``rounding``, default toward zero)

``bias`` sums the biases of the ``Affine`` / ``Conv2d`` nodes into the population (a conv bias is
per output channel). LIF and IF populations fed by a ``Conv2d`` become ``lif_conv2d``, the others
``lif_no_delay``. Reset "subtract" is ``reset_by_subtraction``, "zero" is ``reset_to_v_reset`` with
``v_reset = 0`` (NIR's ``v_reset`` is not used, as in py-spinnaker2).

Provenance. The formulas above, the choice of population model, the weight-scale rules, the
conv layout (``weight.swapaxes(0, 1)``, ``pad_top = pad_bottom = padding[0]``, pooling fused into
``Conv2DProjection`` only for kernel = stride and no padding), the rejection of two consecutive
weight nodes, of weightless edges into neurons and of CubaLIF after Conv2d, and the option names
were read in py-spinnaker2's NIR converter ``s2_nir`` (the package ``spinnaker2`` of
gitlab.com/spinnaker2/py-spinnaker2, whose NIR support NIR's SpiNNaker2 example places on the
branch ``py-spinnaker2_nir``), as stored in the public code index, which names no repository for
it: ``ConversionConfig``, ``IntegratorMethod``, ``ResetMethod``, ``convert_LIF``,
``convert_CubaLIF``, ``convert_IF``, ``create_populations``, ``get_conv2d_params``,
``create_sumpool2d_conv2d_projection``; and in a University of Manchester port of the same file
(package ``spinnirker``) that adds ``weight_scale_percentile`` (``get_percentile_abs_weight``:
``np.percentile`` of all incoming ``|W|``, used unless the percentile is 100). Our own choices,
where py-spinnaker2 differs or is silent: integer weights by a *named* rounding (py-spinnaker2
truncates conv kernels with ``astype(int8)`` and hands dense weights to ``Projection`` as floats);
percentile scaling saturates the outliers at +-127 on purpose (``astype(int8)`` would wrap them);
an all-zero input gets ``w_scale = 1`` (py-spinnaker2 divides by zero); zero weights make no
synapse (they only count as events); stride and pooling index 0 are the height (NIR / PyTorch
order; py-spinnaker2 names index 0 ``x``, the same for square windows); connection delay 0 (our
``*_no_delay`` models take none); ``LI`` readouts; and the defaults ``dt = 1e-3``,
``integrator = "forward"`` and ``scale_weights = True`` (py-spinnaker2: 1.0, exponential, False).
Not taken: ``conn_delay`` (from_nir emits only ``*_no_delay`` models, whose spikes arrive after one
tick; the keyword is rejected), and the ``AvgPool2d`` / ``Conv1d`` nodes of some py-spinnaker2
versions (a ``ValueError`` naming the node); a ``SumPool2d`` straight into a neuron node (which
py-spinnaker2 turns into weight-1 synapses) is rejected as a weightless edge.

Per kind. Everything above that depends on a population's kind is its NIR codec
(``kinds.get(model).codecs["nir"]``, a :class:`s2jax.kinds.codecs.NIRCodec`): the node it
becomes (the formulas above are those of the stock codecs ``s2jax.kinds.lif.LIF_NIR`` and ``s2jax.kinds.cuba.CUBA_NIR``), the
parameter that may travel as an ``Affine`` bias, and for import, which node types become which
kind. The exporter and importer know no kind by name: an input kind becomes an ``Input`` (a
foreign ``Input`` the first registered input kind, ``spike_list``), the metadata holds each
parameter of the kind's ``param_classes``, and a neuron kind without a NIR codec is refused by
:func:`to_nir`, naming the population and its kind.

Node types and limits: :func:`from_nir` maps :func:`supported_nodes` (``Input``, ``Output``, the
:data:`WEIGHT_NODES`, :data:`SHAPE_NODES` and the :func:`neuron_nodes` that the registered kinds'
codecs write or read; :data:`SUPPORTED_NODES` and :data:`NEURON_NODES` are those of the stock
kinds) and refuses any other node by name; a file may declare at most :data:`MAX_NIR_ARRAY_BYTES` of arrays, and one weight array or
dense weight matrix at most :data:`MAX_DENSE_WEIGHTS` entries.

Example::

    >>> import nir, numpy as np
    >>> g = nir.NIRGraph.from_list(nir.Linear(np.array([[0.5, -0.25]])),
    ...                            nir.LIF(tau=np.array([0.01]), r=np.array([1.0]),
    ...                                    v_leak=np.array([0.0]), v_threshold=np.array([1.0])))
    >>> net = from_nir(g)                      # w_scale = 127 / 0.5 = 254
    >>> net.population("lif").params["threshold"].tolist(), net.projections[0].weights.tolist()
    ([2540.0], [127, -63])
"""

from s2jax.export.nir._codecs import neuron_nodes
from s2jax.export.nir._common import (FORMAT_VERSION, INTEGRATORS, MAX_DENSE_WEIGHTS, NEURON_NODES, QNET_PARAMS, RESETS,
                                      SHAPE_NODES, SUPPORTED_NODES, WEIGHT_NODES, NIRFileError, graph_digest,
                                      supported_nodes)
from s2jax.export.nir._convert import WeightQuantization, format_weight_report
from s2jax.export.nir._export import NO_LEAK_TAU_TICKS, to_nir
from s2jax.export.nir._from_nir import from_nir
from s2jax.export.nir._read import MAX_NIR_ARRAY_BYTES

__all__ = ["to_nir", "from_nir", "NIRFileError", "FORMAT_VERSION", "WeightQuantization", "format_weight_report",
           "graph_digest", "SUPPORTED_NODES", "NEURON_NODES", "WEIGHT_NODES", "SHAPE_NODES", "INTEGRATORS", "RESETS",
           "QNET_PARAMS", "NO_LEAK_TAU_TICKS", "MAX_NIR_ARRAY_BYTES", "MAX_DENSE_WEIGHTS", "neuron_nodes",
           "supported_nodes"]
