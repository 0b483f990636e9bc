"""NIR import / export: exact round trips, py-spinnaker2's conversion formulas, clear errors."""

import dataclasses
import math

import h5py
import jax
import jax.numpy as jnp
import nir
import numpy as np
import pytest
from flax import nnx

from s2jax import Rounding, hwmodel, quant
from s2jax import layers as L
from s2jax import qnet as snn
from s2jax.export.nir import SUPPORTED_NODES, NIRFileError, from_nir, to_nir
from s2jax.surrogates import Arctan

F32 = np.float32


def dense(net, pre="input", post=None):
    """The integer ``(n_pre, n_post)`` weight matrix of the projection ``pre -> post``."""
    proj = next(p for p in net.projections if p.pre.name == pre and (post is None or p.post.name == post))
    w = np.zeros((proj.pre.size, proj.post.size), np.int64)
    np.add.at(w, (proj.pre_idx, proj.post_idx), proj.weights)  # duplicate synapses add up
    return w


def arr(*v):
    return np.array(v, np.float64)


# ---------------------------------------------------------------------------------------------
# one small graph per supported node type (NIR test_readwrite style), found by introspection
# ---------------------------------------------------------------------------------------------

W32 = np.array([[0.5, -0.25], [0.1, 0.3], [-0.2, 0.05]])  # (out=3, in=2), max |w| = 0.5


def lif(n, **kw):
    p = dict(tau=np.full(n, 0.01), r=np.full(n, 2.0), v_leak=np.zeros(n), v_threshold=np.full(n, 1.5))
    p.update(kw)
    return nir.LIF(**p)


def chain(*nodes, shape=(2,)):
    """Input -> nodes... -> Output, edges in order; built without NIR's type inference, as a reader
    with ``type_check=False`` sees a file."""
    names = ["input"] + [f"n{i}_{type(n).__name__.lower()}" for i, n in enumerate(nodes)] + ["output"]
    last = nodes[-1]
    out = last.v_threshold.shape if hasattr(last, "v_threshold") else last.r.shape
    g = dict(zip(names, [nir.Input(input_type={"input": np.array(shape)}), *nodes,
                         nir.Output(output_type={"output": np.array(out)})]))
    return nir.NIRGraph(nodes=g, edges=list(zip(names[:-1], names[1:])), type_check=False)


def conv_weight(c_out, c_in, k, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (c_out, c_in, k, k))


def two_inputs():
    """Two Input nodes into one population: one weight scale over both weight nodes."""
    return nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "aux": nir.Input(np.array([4])),
                               "w": nir.Linear(weight=W32), "w_aux": nir.Linear(weight=np.full((3, 4), 0.25)),
                               "pop": lif(3), "output": nir.Output(np.array([3]))},
                        edges=[("input", "w"), ("aux", "w_aux"), ("w", "pop"), ("w_aux", "pop"), ("pop", "output")])


def two_outputs():
    """A hidden population that is also a graph output, then a readout into a second Output."""
    return nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "w": nir.Linear(weight=W32), "hid": lif(3),
                               "w2": nir.Linear(weight=np.ones((2, 3))),
                               "ro": nir.LI(tau=np.full(2, 0.02), r=np.ones(2), v_leak=np.zeros(2)),
                               "out_hid": nir.Output(np.array([3])), "out_ro": nir.Output(np.array([2]))},
                        edges=[("input", "w"), ("w", "hid"), ("hid", "out_hid"), ("hid", "w2"), ("w2", "ro"),
                               ("ro", "out_ro")])


CASES = {
    "Input": two_inputs,
    "Output": two_outputs,
    "Affine": lambda: chain(nir.Affine(weight=W32, bias=arr(0.01, 0.0, -0.02)), lif(3)),
    "Linear": lambda: chain(nir.Linear(weight=W32), lif(3)),
    "LIF": lambda: chain(nir.Linear(weight=W32), lif(3, v_leak=np.full(3, 0.1))),
    "IF": lambda: chain(nir.Affine(weight=W32, bias=arr(0.1, 0.0, 0.0)),
                        nir.IF(r=np.full(3, 2.0), v_threshold=np.full(3, 1.5))),
    "CubaLIF": lambda: chain(nir.Linear(weight=W32), nir.CubaLIF(
        tau_syn=np.full(3, 0.005), tau_mem=np.full(3, 0.01), r=np.full(3, 2.0), v_leak=np.zeros(3),
        v_threshold=np.full(3, 1.5), w_in=np.ones(3))),
    "LI": lambda: chain(nir.Linear(weight=W32), nir.LI(tau=np.full(3, 0.02), r=np.ones(3), v_leak=np.zeros(3))),
    "Conv2d": lambda: chain(nir.Conv2d(input_shape=(4, 4), weight=conv_weight(3, 2, 3), stride=1, padding=1,
                                       dilation=1, groups=1, bias=np.zeros(3)), lif((3, 4, 4)), shape=(2, 4, 4)),
    "SumPool2d": lambda: chain(nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                             padding=np.array([0, 0])),
                               nir.Conv2d(input_shape=(3, 3), weight=conv_weight(2, 2, 2), stride=1, padding=0,
                                          dilation=1, groups=1, bias=arr(0.1, -0.1)), lif((2, 2, 2)),
                               shape=(2, 6, 7)),
    "Flatten": lambda: chain(nir.Conv2d(input_shape=(3, 3), weight=conv_weight(2, 1, 2), stride=1, padding=0,
                                        dilation=1, groups=1, bias=np.zeros(2)), lif((2, 2, 2)),
                             nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0),
                             nir.Linear(weight=np.random.default_rng(1).uniform(-1, 1, (3, 8))), lif(3),
                             shape=(1, 3, 3)),
}


def test_every_supported_node_type_has_a_round_trip_case():
    assert sorted(CASES) == sorted(c.__name__ for c in SUPPORTED_NODES)


def assert_same_graph(a: nir.NIRGraph, b: nir.NIRGraph):
    assert sorted(a.nodes) == sorted(b.nodes)
    assert sorted(a.edges) == sorted(b.edges)
    for name, node in a.nodes.items():
        other = b.nodes[name]
        assert type(node) is type(other), name
        for f in dataclasses.fields(node):
            if f.name in ("input_type", "output_type", "metadata"):
                continue
            x, y = getattr(node, f.name), getattr(other, f.name)
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f"{name}.{f.name}")


def assert_same_network(a: snn.Network, b: snn.Network):
    assert [(p.name, p.neuron_model, p.size, p.record) for p in a.populations] == \
           [(p.name, p.neuron_model, p.size, p.record) for p in b.populations]
    for p, q in zip(a.populations, b.populations):
        if p.neuron_model == "spike_list":
            assert p.params == q.params
            continue
        assert p.params["reset"] == q.params["reset"]
        for key in p.params:
            if key != "reset":
                np.testing.assert_array_equal(p.param_array(key), q.param_array(key), err_msg=f"{p.name}.{key}")
    assert len(a.projections) == len(b.projections)
    for p, q in zip(a.projections, b.projections):
        assert (type(p), p.pre.name, p.post.name) == (type(q), q.pre.name, q.post.name)
        if isinstance(p, snn.Conv2DProjection):
            np.testing.assert_array_equal(p.weights, q.weights)
            assert p.conv_params == q.conv_params
        else:
            np.testing.assert_array_equal(p.connections, q.connections)


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_per_node_type(case, tmp_path):
    """graph -> file -> graph is lossless, memory and file convert alike, qnet -> NIR -> qnet is exact."""
    g = CASES[case]()
    assert any(type(node).__name__ == case for node in g.nodes.values())
    path = tmp_path / f"{case}.nir"
    nir.write(path, g)
    g2 = nir.read(path, type_check=False)
    assert_same_graph(g, g2)
    net = from_nir(g)
    assert_same_network(net, from_nir(str(path)))
    back = to_nir(net)
    nir.write(path, back)
    assert_same_network(net, from_nir(path))


# ---------------------------------------------------------------------------------------------
# qnet -> NIR -> qnet, exact on the chip model
# ---------------------------------------------------------------------------------------------


def rich_network():
    """Every feature the metadata must carry: delays, duplicates, recurrence, pooled conv, CUBA
    with inh_decay != exc_decay and t_refrac, reset to v_reset, v_init, a readout, spike times."""
    rng = np.random.default_rng(0)
    stim = snn.Population(2 * 6 * 6, "spike_list", {0: [1, 3], 5: [2]}, name="stim", record=["spikes"])
    conv = snn.Population(27, "lif_conv2d", {"threshold": 40.0, "alpha_decay": 0.9, "i_offset": 0.5},
                          name="conv", record=["spikes", "v"])
    hid = snn.Population(5, "lif", {"threshold": np.linspace(3, 9, 5), "alpha_decay": 0.8, "v_init": 0.25,
                                    "reset": "reset_to_v_reset", "v_reset": -1.0}, name="hid", record=["spikes", "v"])
    hid.set_max_atoms_per_core(3)
    cuba = snn.Population(4, "lif_curr_exp", {"threshold": 6.0, "alpha_decay": 0.95, "exc_decay": 0.7,
                                              "inh_decay": 0.5, "t_refrac": 2}, name="cuba", record=["spikes", "v"])
    out = snn.Population(3, "lif_no_delay", {"threshold": 3.4028234663852886e38, "alpha_decay": 0.9,
                                             "i_offset": 0.1}, name="readout", record=["v"])
    cp = {"in_height": 6, "in_width": 6, "pool_x": 2, "pool_y": 2, "pad_top": 1, "pad_bottom": 1,
          "pad_left": 1, "pad_right": 1}
    rows = [[i, j, int(rng.integers(-15, 16)), int(rng.integers(0, 8))] for i in range(27) for j in range(5)
            if rng.random() < 0.5] + [[0, 0, 7, 3], [0, 0, 2, 5]]
    return snn.Network("demo").add(
        stim, conv, hid, cuba, out,
        snn.Conv2DProjection(stim, conv, rng.integers(-30, 31, (2, 3, 3, 3)), cp),
        snn.Projection(conv, hid, rows),
        snn.Projection(hid, cuba, [[i, j, int(rng.integers(-15, 16)), int(rng.integers(0, 4))]
                                   for i in range(5) for j in range(4)]),
        snn.Projection(cuba, out, [[i, j, int(rng.integers(-127, 128)), 0] for i in range(4) for j in range(3)]),
        snn.Projection(hid, hid, [[0, 1, 5, 2], [1, 0, -5, 0]]))


def test_qnet_nir_qnet_is_exact_on_the_chip_model(tmp_path):
    net = rich_network()
    path = tmp_path / "net.nir"
    nir.write(path, to_nir(net))
    back = from_nir(path)
    assert back.name == "demo" and back.population("hid").max_atoms_per_core == 3
    assert_same_network(net, back)
    x = np.random.default_rng(1).random((2, 20, 72)) < 0.3
    fired = 0
    for profile in ("float32", "fixed"):
        _, a = hwmodel.run(net, {"stim": x}, profile=profile)
        _, b = hwmodel.run(back, {"stim": x}, profile=profile)
        assert a.names == b.names
        for k in a.spikes:
            np.testing.assert_array_equal(np.asarray(a.spikes[k]), np.asarray(b.spikes[k]), err_msg=k)
            fired += int(np.asarray(a.spikes[k]).sum()) if k != "stim" else 0
        for k in a.voltages:
            np.testing.assert_array_equal(np.asarray(a.voltages[k]), np.asarray(b.voltages[k]), err_msg=k)
    assert fired > 0, "a round trip of a silent network proves little"


def test_export_structure_and_metadata_survive_the_hdf5_writer(tmp_path):
    net = rich_network()
    g = to_nir(net, dt=2e-3)
    kinds = {n: type(v).__name__ for n, v in g.nodes.items()}
    assert kinds["stim"] == "Input" and kinds["conv"] == "LIF" and kinds["cuba"] == "CubaLIF"
    assert kinds["readout"] == "LI" and kinds["stim_to_conv_pool"] == "SumPool2d"
    assert kinds["stim_to_conv"] == "Conv2d" and kinds["conv_flatten"] == "Flatten"
    assert kinds["cuba_to_readout"] == "Affine"  # readout's i_offset travels as the bias
    assert ("readout", "output") in g.edges
    path = tmp_path / "g.nir"
    nir.write(path, g)
    g2 = nir.read(path)
    for name, node in g.nodes.items():
        md, md2 = node.metadata, g2.nodes[name].metadata
        assert sorted(md) == sorted(md2), name
        for key, value in md.items():
            got = md2[key]
            if isinstance(value, str):
                assert (got.decode() if isinstance(got, bytes) else got) == value, (name, key)
            else:
                np.testing.assert_array_equal(np.asarray(got), np.asarray(value), err_msg=f"{name}.{key}")
    assert g2.metadata["s2jax_dt"] == 2e-3 and g2.metadata["s2jax_layer_latency_ticks"] == 1
    np.testing.assert_array_equal(g2.nodes["hid_to_cuba"].metadata["s2jax_weight_range"], [-15, 15])
    md = g2.nodes["cuba"].metadata
    assert md["s2jax_neuron_model"] == "lif_curr_exp" and float(md["s2jax_param_inh_decay"]) == 0.5
    assert md["s2jax_record"] == "spikes,v" and md["s2jax_reset"] == "reset_by_subtraction"


def test_qnet_graph_without_metadata_gives_back_the_chip_values():
    """The NIR parameters alone (forward Euler, same dt, no scaling) invert the export convention."""
    net = rich_network()
    g = to_nir(net, dt=1e-3)
    back = from_nir(g, use_metadata=False, scale_weights=False, dt=1e-3)
    for name in ("conv", "hid", "cuba", "readout"):
        p, q = net.population(name), back.population(name)
        for key in ("alpha_decay", "threshold", "i_offset"):
            np.testing.assert_array_equal(p.param_array(key), q.param_array(key), err_msg=f"{name}.{key}")
    np.testing.assert_array_equal(back.population("cuba").param_array("exc_decay"), F32(0.7))
    assert back.population("hid").neuron_model == "lif_no_delay"  # NIR has no delay models
    for pre, post in (("conv", "hid"), ("hid", "cuba"), ("hid", "hid"), ("cuba", "readout")):
        np.testing.assert_array_equal(dense(back, pre, post), dense(net, pre, post), err_msg=f"{pre} -> {post}")


# ---------------------------------------------------------------------------------------------
# float model -> NIR -> float model
# ---------------------------------------------------------------------------------------------


def float_model():
    r = nnx.Rngs(0)
    m = L.SNN([(L.Conv(2, 3, 3, pool=2, padding=1, rngs=r), L.LIF((3, 3, 3), threshold=0.5, bias=True,
                                                                   surrogate=Arctan(3.0), detach_reset=True)),
               (L.Linear(27, 5, rngs=r), L.CubaLIF(5, alpha=0.9, exc_decay=0.7, inh_decay=0.5, t_refrac=1,
                                                   threshold=0.3, bias=True, learn_threshold=True)),
               (L.Linear(5, 4, rngs=r), L.LIF(4, alpha=0.8, threshold=0.2, bias=True, learn_alpha=True,
                                              reset="to_v_reset", v_reset=-0.1)),
               (L.Linear(4, 3, rngs=r), L.LI(3, alpha=0.8, bias=True))])
    for n in m.neurons:
        n.bias[...] = jnp.full(n.shape, 0.05, jnp.float32)
    return m


def test_float_model_nir_float_model_gives_equal_outputs(tmp_path):
    m = float_model()
    path = tmp_path / "m.nir"
    nir.write(path, to_nir(m, input_shape=(2, 6, 6)))
    m2 = from_nir(path, output="model")
    same = jax.tree_util.tree_map(lambda a, b: a.shape == b.shape, nnx.state(m, nnx.Param), nnx.state(m2, nnx.Param))
    assert all(jax.tree_util.tree_leaves(same))  # the same trainable parameters
    for a, b in zip(m.neurons, m2.neurons):
        assert (type(a), a.numerics, a.reset, a.readout) == (type(b), b.numerics, b.reset, b.readout)
    x = (jax.random.uniform(jax.random.key(1), (2, 10, 2, 6, 6)) < 0.4).astype(jnp.float32)
    a, b = m(x), m2(x)
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    assert float(a.spikes[0].sum()) > 0
    # the other kind converts the NIR parameters like any foreign graph
    assert [p.neuron_model for p in from_nir(path).populations] == [
        "spike_list", "lif_conv2d", "lif_curr_exp_no_delay", "lif_no_delay", "lif_no_delay"]


def test_model_from_a_foreign_graph_uses_the_formulas_and_goes_through_qat():
    g = CASES["Affine"]()
    m = from_nir(g, output="model")
    (syn, cell), = zip(m.synapses, m.neurons)
    np.testing.assert_array_equal(np.asarray(syn.kernel[...]), F32(W32.T))
    np.testing.assert_array_equal(np.asarray(cell.alpha[...]), F32([0.9] * 3))
    np.testing.assert_array_equal(np.asarray(cell.threshold[...]), F32([7.5] * 3))  # 1.5 / (0.1 * 2)
    np.testing.assert_array_equal(np.asarray(cell.bias[...]), F32([0.01, 0.0, -0.02]))
    net = quant.quantize(quant.qat(m))
    assert net.projections[0].weights.max() == 127


# ---------------------------------------------------------------------------------------------
# py-spinnaker2's conversion formulas, checked against values worked out by hand
# tau = 0.01 s, dt = 1 ms -> dt/tau = 0.1; r = 2; v_threshold = 1.5; max|W| = 0.5 -> w_scale = 254
# ---------------------------------------------------------------------------------------------


def test_lif_forward_euler_by_hand():
    net = from_nir(CASES["Affine"]())
    pop = net.population("n1_lif")
    assert pop.neuron_model == "lif_no_delay" and pop.params["reset"] == "reset_by_subtraction"
    assert pop.nir_w_scale == 254.0
    np.testing.assert_array_equal(pop.param_array("alpha_decay"), F32([0.9] * 3))
    np.testing.assert_array_equal(pop.param_array("threshold"), F32([1905.0] * 3))  # 1.5 * 254 / (0.1 * 2)
    np.testing.assert_array_equal(pop.param_array("i_offset"), F32([2.54, 0.0, -5.08]))  # bias * 254
    # W^T * 254 toward zero: 0.1 -> 25.4 -> 25, -0.25 -> -63.5 -> -63, 0.05 -> 12.7 -> 12
    np.testing.assert_array_equal(dense(net), [[127, 25, -50], [-63, 76, 12]])
    v_leak = from_nir(CASES["LIF"]()).population("n1_lif")
    np.testing.assert_array_equal(v_leak.param_array("i_offset"), F32([12.7] * 3))  # 0.1 * 0.1 * 1270


def test_lif_exponential_euler_by_hand():
    pop = from_nir(CASES["Affine"](), integrator="exponential").population("n1_lif")
    np.testing.assert_array_equal(pop.param_array("alpha_decay"), F32([math.exp(-0.1)] * 3))  # 0.904837
    np.testing.assert_allclose(pop.param_array("threshold"), 2001.8372, rtol=1e-6)  # 381 / (2 (1 - e^-0.1))


def test_cuba_if_li_and_conv_by_hand():
    cuba = from_nir(CASES["CubaLIF"]()).population("n1_cubalif")
    assert cuba.neuron_model == "lif_curr_exp_no_delay"
    np.testing.assert_array_equal(cuba.param_array("exc_decay"), F32([0.8] * 3))  # 1 - 0.001 / 0.005
    np.testing.assert_array_equal(cuba.param_array("inh_decay"), F32([0.8] * 3))
    np.testing.assert_array_equal(cuba.param_array("alpha_decay"), F32([0.9] * 3))
    np.testing.assert_array_equal(cuba.param_array("threshold"), F32([9525.0] * 3))  # 1.5 * 254 / (0.2 * 0.2)
    assert cuba.params["t_refrac"] == 0
    if_pop = from_nir(CASES["IF"]()).population("n1_if")
    np.testing.assert_array_equal(if_pop.param_array("alpha_decay"), F32([1.0] * 3))
    np.testing.assert_array_equal(if_pop.param_array("threshold"), F32([190.5] * 3))  # 1.5 * 254 / 2
    np.testing.assert_array_equal(if_pop.param_array("i_offset"), F32([25.4, 0.0, 0.0]))  # 0.1 * 254
    li = from_nir(CASES["LI"]()).population("n1_li")
    assert li.params["threshold"][0] == 3.4028234663852886e38 and li.record == ["spikes", "v"]
    np.testing.assert_array_equal(li.param_array("alpha_decay"), F32([0.95] * 3))  # 1 - 0.001 / 0.02
    net = from_nir(CASES["SumPool2d"]())
    pop, proj = net.population("n2_lif"), net.projections[0]
    assert pop.neuron_model == "lif_conv2d" and isinstance(proj, snn.Conv2DProjection)
    assert (proj.conv_params["pool_y"], proj.conv_params["in_width"]) == (2, 7)
    w = conv_weight(2, 2, 2)
    np.testing.assert_array_equal(proj.weights, np.trunc(np.swapaxes(w, 0, 1) * (127 / np.abs(w).max())))
    bias = np.repeat([0.1, -0.1], 4) * (127 / np.abs(w).max())  # conv bias per output channel
    np.testing.assert_array_equal(pop.param_array("i_offset"), F32(bias))


def test_weight_scale_percentile_saturates_outliers():
    g = chain(nir.Linear(weight=np.array([[0.25, 0.5, 1.0, 2.0, 64.0]])), lif(1), shape=(5,))
    net = from_nir(g, weight_scale_percentile=50)  # median |W| = 1 -> w_scale = 127
    np.testing.assert_array_equal(dense(net)[:, 0], [31, 63, 127, 127, 127])  # 31.75, 63.5, 127, 254, 8128
    np.testing.assert_array_equal(net.population("n1_lif").param_array("threshold"), F32([952.5]))  # 1.5*127/0.2
    full = from_nir(g)  # max: w_scale = 127 / 64
    np.testing.assert_array_equal(dense(full)[:, 0], [0, 0, 1, 3, 127])


def test_settings_reset_rounding_and_unscaled_weights():
    g = CASES["Affine"]()
    assert from_nir(g, reset="zero").population("n1_lif").params["reset"] == "reset_to_v_reset"
    np.testing.assert_array_equal(dense(from_nir(g, rounding=Rounding.HALF_EVEN)),
                                  [[127, 25, -51], [-64, 76, 13]])
    g = chain(nir.Linear(weight=np.array([[3.0, -2.7]])), lif(1))
    np.testing.assert_array_equal(dense(from_nir(g, scale_weights=False))[:, 0], [3, -2])
    with pytest.raises(ValueError, match=r"'n0_linear'.*weight 300 .*outside \[-127, 127\].*scale_weights=True"):
        from_nir(chain(nir.Linear(weight=np.array([[300.0, 1.0]])), lif(1)), scale_weights=False)


def test_recurrent_projection_through_a_neuron_maps():
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}),
                            "w_in": nir.Linear(weight=W32), "pop": lif(3),
                            "w_rec": nir.Linear(weight=np.eye(3) * 0.5), "output": nir.Output(np.array([3]))},
                     edges=[("input", "w_in"), ("w_in", "pop"), ("pop", "w_rec"), ("w_rec", "pop"),
                            ("pop", "output")], type_check=False)
    net = from_nir(g)
    assert [(p.pre.name, p.post.name) for p in net.projections] == [("input", "pop"), ("pop", "pop")]
    assert_same_network(net, from_nir(to_nir(net)))
    with pytest.raises(ValueError, match=r"'pop' has 2 inputs or closes a loop"):
        from_nir(g, output="model")


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.mark.parametrize("node", [
    nir.Delay(delay=np.ones(2)), nir.Threshold(threshold=np.ones(2)), nir.I(r=np.ones(2)),
    nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
], ids=lambda n: type(n).__name__)
def test_unsupported_node_types(node):
    g = graph({"input": nir.Input(np.array([2])), "odd": node}, [("input", "odd")])
    with pytest.raises(ValueError, match=rf"node 'odd' is a NIR {type(node).__name__}.*supported node types: "
                                         rf"Input, Output, Affine"):
        from_nir(g)


def test_structural_errors():
    inp = nir.Input(np.array([2]))
    with pytest.raises(ValueError, match=r"two consecutive weight nodes 'a' \(Linear\) and 'b' \(Linear\)"):
        from_nir(graph({"input": inp, "a": nir.Linear(weight=np.ones((2, 2))), "b": nir.Linear(weight=W32),
                        "lif": lif(3)}, [("input", "a"), ("a", "b"), ("b", "lif")]))
    with pytest.raises(ValueError, match=r"LIF node 'x' reaches LIF node 'y' without a weight node"):
        from_nir(graph({"input": inp, "w": nir.Linear(weight=np.ones((2, 2))), "x": lif(2), "y": lif(2)},
                       [("input", "w"), ("w", "x"), ("x", "y")]))
    with pytest.raises(ValueError, match=r"Input node 'input' reaches LIF node 'x' without a weight node"):
        from_nir(graph({"input": inp, "x": lif(2)}, [("input", "x")]))
    flat = nir.Flatten(input_type={"input": np.array([2])}, start_dim=0)
    with pytest.raises(ValueError, match=r"closes the cycle f -> g -> f without a neuron node"):
        from_nir(graph({"input": inp, "f": flat, "g": nir.Flatten(input_type={"input": np.array([2])}),
                        "w": nir.Linear(weight=W32), "lif": lif(3)},
                       [("input", "f"), ("f", "g"), ("g", "f"), ("g", "w"), ("w", "lif")]))
    with pytest.raises(ValueError, match=r"Linear node 'w': weight \(3, 2\) takes 2 inputs, gets 4"):
        from_nir(graph({"input": nir.Input(np.array([4])), "w": nir.Linear(weight=W32), "lif": lif(3)},
                       [("input", "w"), ("w", "lif")]))
    with pytest.raises(ValueError, match=r"'w' gives 3 outputs .* LIF node 'lif' has 5 neurons"):
        from_nir(graph({"input": inp, "w": nir.Linear(weight=W32), "lif": lif(5)}, [("input", "w"), ("w", "lif")]))
    with pytest.raises(ValueError, match=r"LI node 'ro' drives 'lif' through 'w2'; an LI is a non-spiking readout"):
        from_nir(graph({"input": inp, "w": nir.Linear(weight=W32), "ro": nir.LI(
            tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3)), "w2": nir.Linear(weight=np.ones((1, 3))),
            "lif": lif(1)}, [("input", "w"), ("w", "ro"), ("ro", "w2"), ("w2", "lif")]))
    with pytest.raises(ValueError, match=r"'w' reaches Output 'out' without a neuron node"):
        from_nir(graph({"input": inp, "w": nir.Linear(weight=W32), "out": nir.Output(np.array([3]))},
                       [("input", "w"), ("w", "out")]))
    with pytest.raises(ValueError, match=r"CubaLIF node 'c' is fed by a Conv2d"):
        g = CASES["Conv2d"]()
        from_nir(graph({**g.nodes, "c": nir.CubaLIF(tau_syn=np.ones((3, 4, 4)), tau_mem=np.ones((3, 4, 4)),
                                                    r=np.ones((3, 4, 4)), v_leak=np.zeros((3, 4, 4)),
                                                    v_threshold=np.ones((3, 4, 4)))},
                       [("input", "n0_conv2d"), ("n0_conv2d", "c")]))
    with pytest.raises(ValueError, match=r"LIF node 'lif': tau must be positive and finite, got -1"):
        from_nir(graph({"input": inp, "w": nir.Linear(weight=W32), "lif": lif(3, tau=np.full(3, -1.0))},
                       [("input", "w"), ("w", "lif")]))


def test_bad_settings():
    g = CASES["Linear"]()
    for kwargs, msg in [(dict(integrator="rk4"), "integrator must be one of"), (dict(reset="hold"), "reset must be"),
                        (dict(output="torch"), "output must be"), (dict(dt=0.0), "dt must be a positive"),
                        (dict(weight_scale_percentile=0), r"in \(0, 100\]"),
                        (dict(weight_scale_percentile=50, output="model"), "QuantConfig"),
                        (dict(output_record=["current"]), "not recordable")]:
        with pytest.raises(ValueError, match=msg):
            from_nir(g, **kwargs)


def test_malformed_files(tmp_path):
    with pytest.raises(NIRFileError, match=r"does not exist"):
        from_nir(tmp_path / "missing.nir")
    garbage = tmp_path / "garbage.nir"
    garbage.write_bytes(b"\x89HDF not really" * 10)
    with pytest.raises(NIRFileError, match=r"not an HDF5 file"):
        from_nir(garbage)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f.create_dataset("data", data=np.arange(3))
    with pytest.raises(NIRFileError, match=r"holds no NIR graph.*\['data'\]"):
        from_nir(plain)
    broken = tmp_path / "broken.nir"
    with h5py.File(broken, "w") as f:
        f.create_group("node").create_dataset("type", data="Bogus")
    with pytest.raises(NIRFileError, match=r"malformed NIR file"):
        from_nir(broken)
    assert issubclass(NIRFileError, ValueError)
    with pytest.raises(TypeError, match="nir.NIRGraph or a file path"):
        from_nir(42)


def test_edited_graph_is_caught_and_export_errors():
    net = rich_network()
    g = to_nir(net)
    g.nodes["cuba_to_readout"].weight[0, 0] += 1
    with pytest.raises(ValueError, match=r"'cuba_to_readout': its weights differ from the synapses .*use_metadata"):
        from_nir(g)
    with pytest.raises(ValueError, match=r"weight nodes \['conv_to_hid', 'hid_to_cuba', 'hid_to_hid'\] carry "
                                         r"synaptic delays"):
        from_nir(to_nir(net), output="model")
    lonely = snn.Network().add(snn.Population(2, "lif", name="alone"))
    with pytest.raises(ValueError, match=r"population 'alone' receives no projection"):
        to_nir(lonely)
    r = nnx.Rngs(0)
    conv_first = L.SNN([(L.Conv(1, 2, 3, padding=((1, 0), (1, 1)), rngs=r), L.LIF((2, 3, 4)))])
    with pytest.raises(ValueError, match=r"input_shape=\(C, H, W\)"):
        to_nir(conv_first)
    with pytest.raises(ValueError, match=r"padding \(\(1, 0\), \(1, 1\)\) is asymmetric"):
        to_nir(conv_first, input_shape=(1, 4, 4))
    m = L.SNN([(L.Linear(3, 2, rngs=r), L.LIF(2))])
    with pytest.raises(ValueError, match=r"layer 0 is quantized"):
        to_nir(quant.qat(m))
    with pytest.raises(TypeError, match="qnet.Network or a layers.SNN"):
        to_nir("net")


def test_flatten_into_output_is_accepted_and_conv_cuba_models_export():
    g = CASES["Conv2d"]()
    nodes = {**g.nodes, "flat": nir.Flatten(input_type={"input": np.array([3, 4, 4])}, start_dim=0),
             "output": nir.Output(np.array([48]))}
    net = from_nir(graph(nodes, [("input", "n0_conv2d"), ("n0_conv2d", "n1_lif"), ("n1_lif", "flat"),
                                 ("flat", "output")]))
    assert net.population("n1_lif").record == ["spikes"]  # feeds an Output (through the Flatten)
    r = nnx.Rngs(0)
    m = L.SNN([(L.Conv(1, 2, 3, padding=1, rngs=r), L.CubaLIF((2, 4, 4), exc_decay=0.5))])
    m2 = from_nir(to_nir(m, input_shape=(1, 4, 4)), output="model")
    assert isinstance(m2.neurons[0], L.CubaLIF) and isinstance(m2.synapses[0], L.Conv)
    with pytest.raises(ValueError, match=r"CubaLIF node 'layer0' is fed by a Conv2d"):
        from_nir(to_nir(m, input_shape=(1, 4, 4)))


def test_multiple_inputs_and_outputs():
    net = from_nir(two_inputs())
    assert [p.name for p in net.populations] == ["aux", "input", "pop"]  # Inputs first, by name
    pop = net.population("pop")
    assert pop.nir_w_scale == 254.0  # 127 / max(0.5, 0.25) over both weight nodes
    np.testing.assert_array_equal(dense(net, "aux")[:, 0], [63, 63, 63, 63])  # 0.25 * 254 = 63.5 -> 63
    net = from_nir(two_outputs(), output_record=["spikes", "v"])
    assert net.population("hid").record == ["spikes", "v"] and net.population("ro").record == ["spikes", "v"]
    assert from_nir(two_outputs()).population("ro").record == ["spikes", "v"]  # a readout always records v
