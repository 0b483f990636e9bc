"""py-spinnaker2 bundles: a network as data plus a script that runs it on a SpiNNaker2 chip.

:func:`to_pyspinnaker2` writes a folder that needs only numpy and py-spinnaker2 on the machine
next to the board::

    bundle/
      network.json          structure: populations (name, size, neuron_model, string params,
                            record, max_atoms_per_core), projections (pre, post, kind, conv
                            params, synapse count), the total synapse count, timesteps, eth_ip,
                            sys_tick_in_s, format version, s2jax version
      arrays.npz            every number: per population ``pop<i>.<param>`` (float64 or int64,
                            shape () for a scalar or (size,) per neuron), spike_list sources as
                            ``pop<i>.spike_neurons`` (K,) int32 and ``pop<i>.spike_times`` (S, 2)
                            int32 rows (neuron, tick); per projection ``proj<j>.connections``
                            (M, 4) int32 rows [pre, post, weight, delay] or ``proj<j>.kernel``
                            int8 (C_in, C_out, kH, kW). Loads with ``allow_pickle=False``.
      run_on_spinnaker2.py  rebuilds the network with ``spinnaker2.snn``, runs it with
                            ``hardware.SpiNNaker2Chip`` and writes results.npz

Every neuron kind of the registry (:mod:`s2jax.kinds`) is written the same way, from what it
declares: each population lists every parameter of its kind, in the kind's order, reset modes
(class "reset") as strings in ``params``, every other class in the npz (class "ticks" as int64).
Reading checks that the parameters are exactly the kind's, each where its class belongs; a missing
one is an error, not a default, since the script hands py-spinnaker2 only what the bundle lists.

Kinds that are not stock py-spinnaker2 models (not in :data:`PYSPINNAKER2_MODELS`, e.g. a kind
registered by a user) still make a complete bundle: it loads back with :func:`load_pyspinnaker2`,
and :func:`compare` checks a chip run against the chip model. But the real py-spinnaker2 cannot run
them, so :func:`to_pyspinnaker2` warns (:class:`NonStockModelWarning`, naming the populations and
models), the script's docstring says so at the top, and the script exits with that message before
it touches the chip unless run with ``--allow-custom-models`` (for a py-spinnaker2 that implements
the model under the same name and parameters). Bundles of stock models are unchanged.

Numbers live only in the npz: float parameters keep every bit (the readout threshold
``float32 max``, or ``inf``, would not survive every JSON reader). Population ``i`` and projection
``j`` are positions in ``network.json``'s lists, the network's order. A projection's synapse count
is its number of connection rows (a conv projection's: its kernel's number of weights).

Reading (:func:`load_pyspinnaker2`, :func:`load_results`) trusts nothing: ``network.json`` must be
a JSON object of this format and version with every key present, of its type and within its
limits (sizes at most :data:`s2jax.qnet.MAX_POPULATION_SIZE`), checked before any array is read;
``arrays.npz`` must hold exactly the arrays ``network.json`` lists, of integer (spike lists,
connections, kernels) or integer/float (parameters) dtypes, of the stated shapes and synapse
counts. Anything else raises :class:`s2jax.io.FileFormatError` (a ``ValueError``) naming the
file and the key.

Example (``T = 20`` ticks)::

    folder = to_pyspinnaker2(net, "bundle", timesteps=20)
    # on the board's host:  python bundle/run_on_spinnaker2.py --eth-ip 192.168.1.17
    chip = load_results(folder, net)       # {name: {"spikes": (20, n) bool, "voltages": (20, n) float32}}
    compare(folder, net)                   # {name: None} when chip and chip model agree exactly

The file names are :data:`NETWORK_FILE`, :data:`ARRAYS_FILE`, :data:`SCRIPT_FILE` and, once the
script ran, :data:`RESULTS_FILE`; :data:`SCRIPT` is the script's template. Reading results refuses
recordings over :data:`MAX_RESULT_BYTES` per population before allocating them.
"""

from s2jax.export.pyspinnaker2._bundle import (Difference, NonStockModelWarning, compare, load_pyspinnaker2,
                                               load_results, to_pyspinnaker2)
from s2jax.export.pyspinnaker2._format import (ARRAYS_FILE, BUNDLE_FORMAT, BUNDLE_VERSION, MAX_RESULT_BYTES, NETWORK_FILE,
                                               PYSPINNAKER2_MODELS, RESULTS_FILE, SCRIPT_FILE)
from s2jax.export.pyspinnaker2._script import SCRIPT

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "Difference", "NonStockModelWarning", "PYSPINNAKER2_MODELS", "compare",
           "load_pyspinnaker2", "load_results", "to_pyspinnaker2", "NETWORK_FILE", "ARRAYS_FILE", "SCRIPT_FILE",
           "RESULTS_FILE", "SCRIPT", "MAX_RESULT_BYTES"]
