"""Oracle 2: the jitted chip model equals the independent scalar reference, bit for bit."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2jax import SPINNAKER2, hwmodel
from s2jax import qnet as snn
from s2jax.hwmodel import compile_network
from tests.reference.oracle import simulate

MODELS = ["lif", "lif_no_delay", "lif_curr_exp", "lif_curr_exp_no_delay"]
T = 24
RUN = jax.jit(hwmodel.run)  # a ChipProgram is a pytree: same shapes reuse one compilation


def assert_same(net, inputs, timesteps, profile, spec=SPINNAKER2):
    """Chip model (jitted) and oracle agree on every spike, voltage and event count."""
    prog = compile_network(net, profile, spec, record="all")
    batched = {k: v[None] for k, v in inputs.items()} or None
    if batched is None:
        _, tr = jax.jit(hwmodel.run, static_argnames="timesteps")(prog, None, timesteps=timesteps)
    else:
        _, tr = RUN(prog, batched)
    spikes, volts, events = simulate(net, inputs, timesteps, profile, spec)
    for pop in net.populations:
        np.testing.assert_array_equal(np.asarray(tr.spikes[pop.name][0]), spikes[pop.name],
                                      err_msg=f"spikes of {pop.name} ({profile})")
        if pop.neuron_model != "spike_list":
            got = np.asarray(tr.voltages[pop.name][0])
            want = volts[pop.name]
            if profile == "float32":
                np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32),
                                              err_msg=f"voltage bits of {pop.name}")
            else:
                np.testing.assert_array_equal(got.astype(np.int64), want, err_msg=f"voltages of {pop.name}")
    np.testing.assert_array_equal(np.asarray(tr.synaptic_events[0]), events, err_msg="synaptic events")
    return tr, spikes


def _weights(rng, n, lo, hi, edge_frac):
    w = rng.integers(lo, hi + 1, n)
    edge = rng.random(n) < edge_frac
    w[edge] = rng.choice([lo, hi, -1, 0, 1], edge.sum())
    return w


def _rows(rng, n_pre, n_post, model, density, edge_frac, spec=SPINNAKER2):
    lo, hi = spec.weight_range(model)
    pairs = [(i, j) for i in range(n_pre) for j in range(n_post) if rng.random() < density]
    if rng.random() < 0.5 and pairs:  # duplicate synapses between the same pair add up
        pairs += pairs[: max(1, len(pairs) // 4)]
    w = _weights(rng, len(pairs), lo, hi, edge_frac)
    max_d = spec.max_delay if spec.has_delays(model) else 0
    d = rng.integers(0, max_d + 1, len(pairs))
    return [[i, j, int(wi), int(di)] for (i, j), wi, di in zip(pairs, w, d)]


def _params(rng, model, size, readout=False):
    p = {
        "threshold": rng.choice([float(rng.integers(1, 40)), float(np.float32(rng.uniform(0.5, 60)))]),
        "alpha_decay": rng.choice([1.0, 0.0, 0.5, float(np.float32(rng.uniform(0, 1)))]),
        "i_offset": rng.choice([0.0, float(np.float32(rng.uniform(-1, 3)))]),
        "v_init": float(np.float32(rng.uniform(-5, 5))),
        "v_reset": rng.choice([0.0, float(np.float32(rng.uniform(-3, 1)))]),
        "reset": rng.choice(["reset_by_subtraction", "reset_to_v_reset"]),
    }
    if rng.random() < 0.5:  # per-neuron thresholds
        p["threshold"] = rng.uniform(1, 40, size).astype(np.float32)
    if readout:
        p["threshold"] = float(SPINNAKER2.readout_threshold)
    if model.startswith("lif_curr_exp"):
        p["exc_decay"] = float(np.float32(rng.uniform(0, 1)))
        p["inh_decay"] = rng.choice([0.0, 1.0, float(np.float32(rng.uniform(0, 1)))])
        p["t_refrac"] = int(rng.integers(0, 4))
    return p


def random_net(seed, m1, m2, recurrent, readout):
    rng = np.random.default_rng(seed)
    inp = snn.Population(5, "spike_list", name="in")
    a = snn.Population(6, m1, _params(rng, m1, 6), name="a")
    b = snn.Population(4, m2, _params(rng, m2, 4, readout), name="b")
    edge = rng.uniform(0, 0.6)
    projs = [snn.Projection(inp, a, _rows(rng, 5, 6, m1, 0.7, edge)),
             snn.Projection(a, b, _rows(rng, 6, 4, m2, 0.7, edge))]
    if recurrent:
        projs.append(snn.Projection(a, a, _rows(rng, 6, 6, m1, 0.3, edge)))
    net = snn.Network("random").add(inp, a, b, *projs)
    x = rng.random((T, 5)) < rng.uniform(0.05, 0.6)
    return net, {"in": x}


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), m1=st.sampled_from(MODELS), m2=st.sampled_from(MODELS),
       recurrent=st.booleans(), readout=st.booleans(), profile=st.sampled_from(["float32", "fixed"]),
       order=st.sampled_from(["current", "previous"]))
def test_random_networks_match_reference(seed, m1, m2, recurrent, readout, profile, order):
    net, inputs = random_net(seed, m1, m2, recurrent, readout)
    spec = dataclasses.replace(SPINNAKER2, cuba_current_order=order)
    assert_same(net, inputs, T, profile, spec)


def _single(model, params, rows, n_in=1, n=1, record=("spikes", "v")):
    inp = snn.Population(n_in, "spike_list", name="in")
    pop = snn.Population(n, model, params, name="p", record=list(record))
    return snn.Network("edge").add(inp, pop, snn.Projection(inp, pop, rows)), pop


def test_voltage_exactly_at_threshold_does_not_fire(profile):
    net, _ = _single("lif", {"threshold": 10.0, "alpha_decay": 1.0}, [[0, 0, 10, 0]])
    x = np.zeros((6, 1), bool)
    x[0, 0] = True  # arrives at tick 1: v == 10 == threshold
    tr, spikes = assert_same(net, {"in": x}, 6, profile)
    assert not spikes["p"].any()
    x[1, 0] = True  # a second input pushes v to 20 > 10: fires at tick 2
    tr, spikes = assert_same(net, {"in": x}, 6, profile)
    assert spikes["p"][:, 0].tolist() == [False, False, True, False, False, False]


def test_non_strict_threshold_fires_at_equality(profile):
    spec = dataclasses.replace(SPINNAKER2, threshold_strict=False)
    net, _ = _single("lif", {"threshold": 10.0}, [[0, 0, 10, 0]])
    x = np.zeros((4, 1), bool)
    x[0, 0] = True
    _, spikes = assert_same(net, {"in": x}, 4, profile, spec)
    assert spikes["p"][1, 0]


def test_no_input_only_decay(profile):
    net, _ = _single("lif_curr_exp", {"threshold": 5.0, "alpha_decay": 0.75, "v_init": 4.0, "exc_decay": 0.3},
                     [[0, 0, 3, 2]], n=2)
    tr, spikes = assert_same(net, {"in": np.zeros((30, 1), bool)}, 30, profile)
    assert not spikes["p"].any()
    assert not np.asarray(tr.synaptic_events).any()


def test_network_without_inputs_driven_by_i_offset(profile):
    pop = snn.Population(3, "lif", {"threshold": 4.0, "i_offset": [1.0, 1.5, 0.3], "alpha_decay": 0.9},
                         name="p", record=["spikes", "v"])
    net = snn.Network("bias").add(pop)
    _, spikes = assert_same(net, {}, 40, "float32")
    assert spikes["p"][:, 1].sum() > spikes["p"][:, 0].sum() > 0


def test_fixed_point_saturation_matches_reference():
    # v_init + i_offset = 90000 does not fit s16.15: the add saturates at INT32_MAX, which exceeds
    # the threshold 65535 * 2^15, so the neuron fires and subtracts from the saturated value.
    params = {"threshold": 65535.0, "alpha_decay": 1.0, "i_offset": 30000.0, "v_init": 60000.0}
    net, _ = _single("lif_no_delay", params, [[0, 0, 127, 0]])
    tr, spikes = assert_same(net, {"in": np.ones((8, 1), bool)}, 8, "fixed")
    v = np.asarray(tr.voltages["p"][0, :, 0]).astype(np.int64)
    assert v[0] == 2**31 - 1 - 65535 * 2**15 and spikes["p"][0, 0]
    # A readout (unreachable threshold) holds at INT32_MAX instead of wrapping to negative values.
    params["threshold"] = float(SPINNAKER2.readout_threshold)
    net, _ = _single("lif_no_delay", params, [[0, 0, 127, 0]])
    tr, spikes = assert_same(net, {"in": np.ones((8, 1), bool)}, 8, "fixed")
    assert np.asarray(tr.voltages["p"][0, :, 0]).tolist() == [2**31 - 1] * 8 and not spikes["p"].any()


def test_fixed_point_negative_saturation():
    params = {"threshold": 1000.0, "alpha_decay": 1.0, "i_offset": -30000.0, "v_init": -60000.0,
              "exc_decay": 1.0, "inh_decay": 1.0}
    net, _ = _single("lif_curr_exp_no_delay", params, [[0, 0, -127, 0]])
    tr, _ = assert_same(net, {"in": np.ones((10, 1), bool)}, 10, "fixed")
    assert np.asarray(tr.voltages["p"]).min() == -(2**31)


def test_spike_in_last_tick_is_recorded(profile):
    net, _ = _single("lif", {"threshold": 1.0}, [[0, 0, 5, 0]])
    x = np.zeros((5, 1), bool)
    x[3, 0] = True  # arrives at tick 4, the last one
    _, spikes = assert_same(net, {"in": x}, 5, profile)
    assert spikes["p"][4, 0] and spikes["p"].sum() == 1
    x = np.zeros((5, 1), bool)
    x[4, 0] = True  # would arrive at tick 5: after the run
    _, spikes = assert_same(net, {"in": x}, 5, profile)
    assert not spikes["p"].any()


@pytest.mark.parametrize("d", range(8))
def test_every_delay_arrives_after_d_plus_one_ticks(d):
    net, _ = _single("lif", {"threshold": 0.5}, [[0, 0, 1, d]])
    x = np.zeros((12, 1), bool)
    x[1, 0] = True
    _, spikes = assert_same(net, {"in": x}, 12, "float32")
    assert np.nonzero(spikes["p"][:, 0])[0].tolist() == [1 + 1 + d]


def test_refractory_period_holds_v_reset(profile):
    params = {"threshold": 2.0, "t_refrac": 3, "v_reset": -1.0, "reset": "reset_to_v_reset", "exc_decay": 0.0}
    net, _ = _single("lif_curr_exp", params, [[0, 0, 15, 0]])
    _, spikes = assert_same(net, {"in": np.ones((20, 1), bool)}, 20, profile)
    ticks = np.nonzero(spikes["p"][:, 0])[0]
    assert np.all(np.diff(ticks) == 4)  # fire, 3 refractory ticks, fire


@pytest.mark.parametrize("order", ["current", "previous"])
def test_current_order_changes_timing(order):
    spec = dataclasses.replace(SPINNAKER2, cuba_current_order=order)
    net, _ = _single("lif_curr_exp", {"threshold": 4.0, "exc_decay": 0.5}, [[0, 0, 5, 0]])
    x = np.zeros((6, 1), bool)
    x[0, 0] = True
    _, spikes = assert_same(net, {"in": x}, 6, "float32", spec)
    assert np.nonzero(spikes["p"][:, 0])[0][0] == (1 if order == "current" else 2)


def _conv_net(pool, stride, pad, seed=0):
    rng = np.random.default_rng(seed)
    c_in, h, w, c_out, k = 2, 6, 6, 3, 3
    cp = {"in_height": h, "in_width": w, "pool_y": pool, "pool_x": pool, "stride_y": stride, "stride_x": stride,
          "pad_top": pad, "pad_bottom": pad, "pad_left": pad, "pad_right": pad}
    hp = h // pool
    ho = (hp + 2 * pad - k) // stride + 1
    inp = snn.Population(c_in * h * w, "spike_list", name="in")
    conv = snn.Population(c_out * ho * ho, "lif_conv2d", {"threshold": 60.0, "alpha_decay": 0.9}, name="conv",
                          record=["spikes", "v"])
    kernel = _weights(rng, c_in * c_out * k * k, -128, 127, 0.2).reshape(c_in, c_out, k, k)
    kernel[rng.random(kernel.shape) < 0.2] = 0
    out = snn.Population(2, "lif_no_delay", {"threshold": 100.0}, name="out", record=["spikes", "v"])
    rows = [[i, j, int(rng.integers(-127, 128)), 0] for i in range(conv.size) for j in range(2)]
    net = snn.Network("conv").add(inp, conv, out, snn.Conv2DProjection(inp, conv, kernel, cp),
                                  snn.Projection(conv, out, rows))
    return net, {"in": rng.random((10, inp.size)) < 0.3}


@pytest.mark.parametrize("pool,stride,pad", [(1, 1, 0), (2, 1, 1), (1, 2, 1), (3, 1, 1)])
def test_conv_with_pooling_stride_padding_matches_reference(pool, stride, pad, profile):
    net, inputs = _conv_net(pool, stride, pad)
    assert_same(net, inputs, 10, profile)


def test_jit_equals_no_jit_and_batch_equals_single_runs(profile):
    net, _ = random_net(7, "lif", "lif_curr_exp", True, False)
    rng = np.random.default_rng(3)
    x = rng.random((4, T, 5)) < 0.3
    prog = compile_network(net, profile, record="all")
    _, jitted = RUN(prog, {"in": x})
    _, eager = hwmodel.run(prog, {"in": x})
    for a, b in zip(jax.tree_util.tree_leaves(jitted), jax.tree_util.tree_leaves(eager)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for i in range(4):
        _, single = RUN(prog, {"in": x[i:i + 1]})
        for a, b in zip(jax.tree_util.tree_leaves(jitted), jax.tree_util.tree_leaves(single)):
            if np.ndim(a) >= 2:
                np.testing.assert_array_equal(np.asarray(a)[i], np.asarray(b)[0])


def test_outputs_are_sink_spikes():
    net, inputs = random_net(1, "lif", "lif_no_delay", False, False)
    outputs, trace = hwmodel.run(net, {"in": inputs["in"][None]})
    assert list(outputs) == ["b"]
    np.testing.assert_array_equal(outputs["b"], trace.spikes["b"])
    assert trace.names == ("in", "a", "b")
    assert trace.neuron_updates.tolist() == [0, 6, 4]


def test_bad_inputs_are_rejected():
    net, inputs = random_net(1, "lif", "lif", False, False)
    with pytest.raises(ValueError, match=r"shape \(batch, time, 5\)"):
        hwmodel.run(net, {"in": np.zeros((T, 5), bool)})
    with pytest.raises(ValueError, match="missing"):
        hwmodel.run(net, {"other": np.zeros((1, T, 5), bool)})
    with pytest.raises(ValueError, match="0 or 1"):
        hwmodel.run(net, {"in": np.full((1, T, 5), 2)})
    with pytest.raises(ValueError, match="profile"):
        hwmodel.run(net, {"in": np.zeros((1, T, 5), bool)}, profile="float16")


def test_fixed_profile_rejects_unrepresentable_parameters():
    pop = snn.Population(2, "lif", {"threshold": 1.0, "i_offset": 70000.0}, name="big")
    with pytest.raises(ValueError, match=r"'big'.*i_offset = 70000.*s16.15"):
        compile_network(snn.Network().add(pop), "fixed")
    pop = snn.Population(2, "lif", {"alpha_decay": 1.5}, name="leaky")
    with pytest.raises(ValueError, match=r"'leaky'.*alpha_decay = 1.5 outside \[0, 1\]"):
        compile_network(snn.Network().add(pop), "fixed")
    assert jnp.asarray(compile_network(snn.Network().add(pop), "float32").params_of("lif").alpha)[0] == 1.5


def test_grouped_projections_gather_and_strided_paths_agree_with_reference(profile):
    """Same-shape projections share one batched matmul; both read paths must stay exact."""
    rng = np.random.default_rng(11)
    in0, in1 = snn.Population(4, "spike_list", name="in0"), snn.Population(4, "spike_list", name="in1")
    x, y, z = (snn.Population(4, "lif", _params(rng, "lif", 4), name=n) for n in "xyz")
    projs = [snn.Projection(pre, post, _rows(rng, 4, 4, "lif", 0.8, 0.3))
             for pre, post in ((in0, x), (x, y), (y, z), (in1, z))]
    net = snn.Network("grouped").add(in0, in1, x, y, z, *projs)
    lay = compile_network(net, profile).layout
    assert any(g.count > 1 and g.pre_start < 0 for g in lay.dense)  # irregular: gather path
    assert not lay.identity_a
    inputs = {"in0": rng.random((T, 4)) < 0.5, "in1": rng.random((T, 4)) < 0.5}
    assert_same(net, inputs, T, profile)

    # one input per population, laid out evenly: strided reads and sums already in neuron order
    net = snn.Network("strided")
    for k in range(3):
        src = snn.Population(4, "spike_list", name=f"s{k}")
        dst = snn.Population(4, "lif_no_delay", _params(rng, "lif_no_delay", 4), name=f"d{k}")
        net.add(src, dst, snn.Projection(src, dst, _rows(rng, 4, 4, "lif_no_delay", 0.9, 0.3)))
    lay = compile_network(net, profile).layout
    assert [g.count for g in lay.dense] == [3] and lay.dense[0].pre_start == 0 and lay.identity_a
    assert_same(net, {f"s{k}": rng.random((T, 4)) < 0.4 for k in range(3)}, T, profile)


def structural_net(seed, profile):
    """Random structure: 1-2 inputs, 1-3 neuron populations of size 1-5 in any order, optional
    conv with asymmetric pooling / padding / stride, recurrent and empty projections, per-neuron
    parameters everywhere, 1-80 ticks."""
    rng = np.random.default_rng(seed)
    pops = [snn.Population(int(rng.integers(1, 5)), "spike_list", name=f"in{k}") for k in range(rng.integers(1, 3))]
    for k in range(int(rng.integers(1, 4))):
        model = str(rng.choice(MODELS))
        n = int(rng.integers(1, 6))
        p = _params(rng, model, n)
        for key in ("alpha_decay", "i_offset", "v_reset", "v_init"):
            if rng.random() < 0.4:
                low = (-0.5 if profile == "float32" else 0.0) if key == "alpha_decay" else -3.0
                p[key] = np.float32(rng.uniform(low, 1, n))
        if model.startswith("lif_curr_exp") and rng.random() < 0.5:
            p["t_refrac"] = rng.integers(0, 4, n)
        pops.append(snn.Population(n, model, p, name=f"n{k}"))
    projs = []
    if rng.random() < 0.5:
        pre = pops[int(rng.integers(len(pops)))]
        h, w = (2, pre.size // 2) if pre.size % 2 == 0 and rng.random() < 0.5 else (1, pre.size)
        py, px = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        pads = [int(rng.integers(0, 2)) for _ in range(4)]
        hp, wp = h // py + pads[0] + pads[1], w // px + pads[2] + pads[3]
        kh, kw = int(rng.integers(1, hp + 1)), int(rng.integers(1, wp + 1))
        sy, sx, c_out = (int(rng.integers(1, 3)) for _ in range(3))
        n_out = c_out * ((hp - kh) // sy + 1) * ((wp - kw) // sx + 1)
        conv = snn.Population(n_out, "lif_conv2d", _params(rng, "lif_conv2d", n_out), name="conv")
        kernel = _weights(rng, c_out * kh * kw, -128, 127, 0.3).reshape(1, c_out, kh, kw)
        projs.append(snn.Conv2DProjection(pre, conv, kernel, {
            "in_height": h, "in_width": w, "pool_y": py, "pool_x": px, "stride_y": sy, "stride_x": sx,
            "pad_top": pads[0], "pad_bottom": pads[1], "pad_left": pads[2], "pad_right": pads[3]}))
        pops.append(conv)
    neurons = [p for p in pops if p.neuron_model != "spike_list"]
    for _ in range(int(rng.integers(1, 6))):
        pre, post = pops[int(rng.integers(len(pops)))], neurons[int(rng.integers(len(neurons)))]
        rows = _rows(rng, pre.size, post.size, post.neuron_model, rng.uniform(0, 1), 0.4)
        projs.append(snn.Projection(pre, post, rows))
    order = list(pops)
    rng.shuffle(order)
    ticks = int(rng.integers(1, 81))
    inputs = {p.name: rng.random((ticks, p.size)) < rng.uniform(0.1, 0.9) for p in pops
              if p.neuron_model == "spike_list"}
    return snn.Network("structural").add(*order, *projs), inputs, ticks


@settings(max_examples=20)
@given(seed=st.integers(0, 2**32 - 1), profile=st.sampled_from(["float32", "fixed"]))
def test_random_structures_match_reference(seed, profile):
    net, inputs, ticks = structural_net(seed, profile)
    assert_same(net, inputs, ticks, profile)


def test_long_decay_through_the_subnormal_range_matches_reference():
    """XLA on CPU flushes float32 subnormals (ChipSpec.flush_subnormals); so does the oracle."""
    pop = snn.Population(2, "lif_no_delay", {"alpha_decay": [0.9, 0.5], "v_init": 1.0, "threshold": 5.0},
                         name="p", record=["spikes", "v"])
    tr, _ = assert_same(snn.Network("decay").add(pop), {}, 1000, "float32")
    v = np.asarray(tr.voltages["p"][0])
    assert v[-1, 0] == 0.0 and v[200, 1] == 0.0  # flushed to zero, not stuck in subnormals
    tiny = np.finfo(np.float32).tiny
    assert not np.any((v != 0) & (np.abs(v) < tiny))


def test_single_neuron_without_projections():
    for model in ("lif", "lif_curr_exp"):
        pop = snn.Population(1, model, {"i_offset": 0.3}, name="p", record=["spikes", "v"])
        _, spikes = assert_same(snn.Network("one").add(pop), {}, 12, "float32")
        assert spikes["p"].sum() == 3


def test_concrete_inputs_of_any_array_type_are_validated():
    net, _ = random_net(1, "lif", "lif", False, False)
    with pytest.raises(ValueError, match="0 or 1"):
        hwmodel.run(net, {"in": jnp.full((1, T, 5), 2)})
    with pytest.raises(ValueError, match="0 or 1"):
        hwmodel.run(net, {"in": [[[0.3] * 5] * T]})
    with pytest.raises(ValueError, match="disagrees"):
        hwmodel.run(net, {"in": np.zeros((1, T, 5), bool)}, timesteps=T + 1)
