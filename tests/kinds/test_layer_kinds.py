"""Layer kinds (EGRU, MAC-array layers) as nodes of the hand-off format, read from the registry.

Every registered layer kind needs an oracle and an example network in
``tests/reference/layer_oracles.py``: a kind without them fails :func:`test_every_layer_kind_is_covered`.
For each, the chip model (``hwmodel.run``) equals the oracle exactly, the design rules, mapping and
cost read the kind's declarations, and every exporter refuses it by name (no layer kind has a
file-format codec yet).
"""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest
from flax import nnx

from s2jax import SPINNAKER2, export, hwmodel, kinds, qnet, quant
from s2jax.quant.egru import quantize_inputs
from tests.reference.layer_oracles import LAYER_ORACLES, egru_example, egru_model, mla_dense_example


CASES = {k: (o.example, o.profiles) for k, o in LAYER_ORACLES.items()}
PARAMS = [(k, p) for k in kinds.layer_names() for p in CASES.get(k, (None, ("fixed",)))[1]]


def test_every_layer_kind_is_covered():
    missing = [k for k in kinds.layer_names() if k not in LAYER_ORACLES]
    assert not missing, f"layer kinds without an oracle and an example (tests/reference/layer_oracles.py): {missing}"


def _bits(a):
    a = np.asarray(a)
    return a.view(np.int32) if a.dtype == np.float32 else a.astype(np.int64)


@pytest.mark.parametrize("kind,profile", PARAMS)
def test_chip_model_equals_oracle(kind, profile):
    net, x = CASES[kind][0](np.random.default_rng(3), profile)
    outputs, trace = jax.jit(lambda x: hwmodel.run(net, x))(x)
    values = {}
    for layer in net.layers:
        src = x if layer.pre is None else values[layer.pre.name]
        values[layer.name] = LAYER_ORACLES[layer.kind.name].run(layer, src, SPINNAKER2)
        np.testing.assert_array_equal(_bits(trace.values[layer.name]), _bits(values[layer.name]), err_msg=layer.name)
        np.testing.assert_array_equal(np.asarray(trace.spikes[layer.name]),
                                      np.asarray(layer.kind.events(values[layer.name])))
        assert trace.values[layer.name].dtype == layer.output_dtype
        src = trace.values[layer.name]  # the next layer reads the chip model's own output dtype
        values[layer.name] = np.asarray(src)
    assert set(outputs) == {net.layers[-1].name}
    assert trace.names == tuple(layer.name for layer in net.layers)
    assert trace.synaptic_events.shape == (*x.shape[:2], len(net.layers))


@pytest.mark.parametrize("kind,profile", PARAMS)
def test_rules_mapping_cost_and_exporters(kind, profile, tmp_path):
    net, x = CASES[kind][0](np.random.default_rng(4), profile)
    assert export.check(net) == []
    mapping = hwmodel.map_to_cores(net)
    assert [name for name, _ in mapping.models] == [layer.name for layer in net.layers]
    assert kind in dict(mapping.models).values()
    worst = hwmodel.estimate_cost(net, mapping=mapping)
    _, trace = hwmodel.run(net, x)
    seen = hwmodel.estimate_cost(net, trace, mapping=mapping)
    assert seen.synaptic_events_per_tick <= worst.synaptic_events_per_tick
    assert worst.neuron_updates_per_tick == sum(layer.kind.updates(layer.arrays, layer.settings) for layer in net.layers)
    assert worst.macs_per_tick == sum(layer.kind.macs(layer.arrays, layer.settings) for layer in net.layers)
    name, first = net.layers[0].name, net.layers[0].kind.name
    for write in (lambda: export.to_nir(net), lambda: export.save_image(net, tmp_path / "x.s2img"),
                  lambda: export.to_pyspinnaker2(net, tmp_path / "bundle", timesteps=3)):
        with pytest.raises(ValueError, match=f"layer '{name}' is of kind '{first}': .* cannot hold layer kinds yet"):
            write()
    assert list(tmp_path.iterdir()) == []


def test_egru_qat_forward_equals_chip_model_through_the_single_entry_points():
    model = egru_model(7)
    q = quant.qat(model, quant.QuantConfig(profile="fixed"))
    assert quant.is_quantized(q) and not quant.is_quantized(model)
    x = np.random.default_rng(0).normal(size=(3, 10, 4)).astype(np.float32)
    out = nnx.jit(lambda m, x: m(x))(q, x)
    net = quant.quantize(q)
    _, trace = hwmodel.run(net, np.asarray(quantize_inputs(x)))
    one = np.float32(2.0**SPINNAKER2.egru_frac_bits)
    for k, layer in enumerate(net.layers):
        np.testing.assert_array_equal((np.asarray(out.outputs[k]) * one).astype(np.int16), trace.values[layer.name])


def test_deprecated_egru_entry_points_warn_and_agree():
    model = egru_model(8)
    x = np.asarray(quantize_inputs(np.random.default_rng(1).normal(size=(2, 6, 4)).astype(np.float32)))
    with pytest.warns(DeprecationWarning, match="qat_egru"):
        old_q = quant.qat_egru(model, "fixed")
    with pytest.warns(DeprecationWarning, match="quantize_egru"):
        layers = quant.quantize_egru(old_q)
    with pytest.warns(DeprecationWarning, match="run_egru"):
        old = hwmodel.run_egru(layers, x, "fixed")
    net = quant.quantize(quant.qat(model, quant.QuantConfig(profile="fixed")))
    _, trace = hwmodel.run(net, x)
    for k, layer in enumerate(net.layers):
        np.testing.assert_array_equal(old.outputs[k], trace.values[layer.name])
        np.testing.assert_array_equal(old.events[k], trace.spikes[layer.name])
        np.testing.assert_array_equal(old.states[k].h, trace.states[layer.name].h)
        for key, a in layer.arrays.items():
            np.testing.assert_array_equal(a, getattr(layers[k], key))


def _egru_layer(**change):
    net, _ = egru_example(np.random.default_rng(5), "fixed")
    arrays = {**net.layers[0].arrays, **change}
    return qnet.Layer("egru", arrays, name="g")


@pytest.mark.parametrize("change,rule", [
    ({"w_in": np.full((4, 18), -128, np.int8)}, "egru_weight_range"),
    ({"e_in": np.full(18, 40, np.int8)}, "egru_exponent_range"),
    ({"theta": np.full(6, 5000, np.int16)}, "egru_threshold_range"),
])
def test_egru_design_rules(change, rule):
    violations = export.check(qnet.Network("n").add(_egru_layer(**change)))
    assert [v.rule for v in violations] == [rule] and "layer 'g'" in violations[0].message


def test_egru_accumulator_rule_and_mla_accumulator_rule():
    big = np.full((4000, 18), 127, np.int8)
    layer = qnet.Layer("egru", {**_egru_layer().arrays, "w_in": big}, name="g")
    assert [v.rule for v in export.check(qnet.Network("n").add(layer))] == ["egru_accumulator"]
    dense = qnet.Layer("mla_dense", {"w": np.full((2, 600), 127, np.int8)}, name="fc")
    v, = export.check(qnet.Network("n").add(dense))
    assert v.rule == "mac_accumulator" and v.value == 600 * 127 * 128 and v.limit == 2**23 - 1


@pytest.mark.parametrize("kind,arrays,settings,match", [
    ("egru", {"w_in": np.zeros((2, 3), np.int8)}, {}, "needs arrays"),
    ("mla_dense", {"w": np.zeros((2, 3), np.int16)}, {}, "'w' int8"),
    ("mla_dense", {"w": np.zeros((2, 3), np.int8)}, {"shift": 40}, "'shift' must be an integer in \\[0, 31\\]"),
    ("mla_dense", {"w": np.zeros((2, 3), np.int8)}, {"speed": 1}, "unknown settings"),
    ("mla_conv2d", {"w": np.zeros((2, 1, 3, 3), np.int8)}, {"in_shape": [1, 2, 2]}, "does not fit"),
    ("lif", {}, {}, "unknown layer kind"),
])
def test_bad_layers_are_refused_by_name(kind, arrays, settings, match):
    with pytest.raises(ValueError, match=match):
        qnet.Layer(kind, arrays, settings=settings, name="bad")


def test_layer_networks_refuse_mismatched_inputs_and_mixing():
    net, x = mla_dense_example(np.random.default_rng(0), "fixed")
    with pytest.raises(TypeError, match="consumes int8 inputs, got int16"):
        hwmodel.run(net, x.astype(np.int16))
    with pytest.raises(ValueError, match="stored for the fixed profile"):
        hwmodel.run(net, x, profile="float32")
    net.add(qnet.Population(2, "spike_list", {0: [1]}, name="spikes"))
    with pytest.raises(ValueError, match="both populations and layers"):
        hwmodel.run(net, x)
    with pytest.raises(ValueError, match="population 'x'"):  # a layer kind is not a neuron model
        qnet.Population(3, "egru", name="x")
    with pytest.raises(ValueError, match="run it with hwmodel.run"):  # py-spinnaker2's front door drives spikes only
        hwmodel.SpiNNaker2Chip().run(mla_dense_example(np.random.default_rng(0), "fixed")[0], 5)


def test_registering_a_layer_kind_reaches_every_module():
    """A layer kind declared outside the package runs, is checked, mapped and costed with no other code."""
    base = kinds.get_layer("mla_dense")
    toy = kinds.LayerKind(
        name="sum_toy", doc="running sum of its inputs (tests only)", arrays={"gain": "int32 (n,)"},
        shape=lambda a, s: ((a["gain"].size,), (a["gain"].size,), "fixed"),
        input_dtype=lambda s, p: np.int32, output_dtype=lambda s, p: np.int32,
        init_state=lambda a, s, num: jax.numpy.zeros(a["gain"].shape, jax.numpy.int32),
        step=lambda a, s, state, x, num: ((state + x * a["gain"]),) * 2, events=lambda y: y != 0,
        updates=lambda a, s: int(a["gain"].size), unit_bytes=lambda a, s, spec: 8,
        rules=lambda layer, spec: [("toy_gain", 9, 8, "gain too big")] if layer.arrays["gain"].max() > 8 else [])
    kinds.register(toy)
    try:
        layer = qnet.Layer("sum_toy", {"gain": np.array([1, 2, 9], np.int32)}, name="t")
        net = qnet.Network("toy").add(layer)
        out, _ = hwmodel.run(net, np.ones((1, 3, 3), np.int32))
        np.testing.assert_array_equal(out["t"][0, -1], [3, 6, 27])
        assert [v.rule for v in export.check(net)] == ["toy_gain"]
        assert hwmodel.estimate_cost(net).neuron_updates_per_tick == 3
    finally:
        kinds.unregister("sum_toy")
    assert "sum_toy" not in kinds.layer_names() and base is kinds.get_layer("mla_dense")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="already registered as a layer"):
            kinds.register(kinds.NeuronKind(name="egru", doc="clash", is_input=True))


def test_mla_layers_round_with_the_spec_they_run_under():
    import dataclasses

    from s2jax import Rounding

    layer = qnet.Layer("mla_dense", {"w": np.array([[1, 0, 0]], np.int8)}, settings={"shift": 1}, name="fc")
    net, x = qnet.Network("n").add(layer), np.array([[[1, 0, 0]]], np.int8)  # accumulator 1, shifted by 1
    assert hwmodel.run(net, x)[0]["fc"].tolist() == [[[0]]]  # the chip's truncating shift
    half_up = dataclasses.replace(SPINNAKER2, mla_shift_rounding=Rounding.HALF_UP)
    assert hwmodel.run(net, x, spec=half_up)[0]["fc"].tolist() == [[[1]]]


def test_layer_run_options_and_names():
    net, x = mla_dense_example(np.random.default_rng(0), "fixed")
    np.testing.assert_array_equal(hwmodel.run(net, x, profile="int")[0]["fc1"], hwmodel.run(net, x)[0]["fc1"])
    with pytest.raises(ValueError, match="timesteps=9 but the inputs have 4 ticks"):
        hwmodel.run(net, x, timesteps=9)
    named = qnet.Layer("mla_dense", {"w": np.ones((2, 3), np.int8)}, name="layer0")
    auto = qnet.Layer("mla_dense", {"w": np.ones((2, 3), np.int8)})
    assert qnet.Network("n").add(named, auto).layers[1].name == "layer1"
    taken = qnet.Network("m").add(qnet.Layer("mla_dense", {"w": np.ones((2, 3), np.int8)}, name="layer1"),
                                  qnet.Layer("mla_dense", {"w": np.ones((2, 3), np.int8)}, name="layer0"))
    third = qnet.Layer("mla_dense", {"w": np.ones((2, 3), np.int8)})
    assert taken.add(third).layers[-1].name not in ("layer0", "layer1")
    with pytest.raises(TypeError):
        named.arrays["w"] = np.zeros((2, 3), np.int8)  # read only: an edit would skip the checks
    with pytest.raises(ValueError, match="over the limit"):
        qnet.Layer("mla_dense", {"w": np.broadcast_to(np.int8(1), (5000, 5000))})
    with pytest.raises(ValueError, match="consumes int8 inputs, layer 'u' gives uint8"):
        u = qnet.Layer("mla_dense", {"w": np.ones((2, 3), np.int8)}, settings={"out_range": [0, 255]}, name="u")
        qnet.Layer("mla_dense", {"w": np.ones((2, 2), np.int8)}, pre=u)


def test_check_reports_networks_the_chip_model_refuses():
    net, _ = mla_dense_example(np.random.default_rng(0), "fixed")
    other = qnet.Layer("mla_dense", {"w": np.ones((2, 4), np.int8)}, name="second_input")
    net.add(other, qnet.Population(2, "spike_list", {0: [1]}, name="spikes"))
    rules = sorted(v.rule for v in export.check(net))
    assert rules == ["layer_network", "layer_network"]


def test_conv_layers_hold_their_kernel_once_per_pe():
    conv = qnet.Layer("mla_conv2d", {"w": np.ones((64, 64, 3, 3), np.int8)},
                      settings={"in_shape": [64, 128, 128], "padding": [[1, 1], [1, 1]]}, name="conv")
    mapping = hwmodel.map_to_cores(qnet.Network("n").add(conv))
    assert mapping.pes <= 20 and all(p.sram_bytes <= SPINNAKER2.sram_data_bytes_per_pe for p in mapping.placements)
    assert export.check(qnet.Network("n").add(conv)) == []


def test_registry_refuses_bad_kinds_and_removals():
    with pytest.raises(ValueError, match="takes a NeuronKind"):
        kinds.register("foo")
    with pytest.raises(ValueError, match="non-empty identifier"):
        kinds.register(dataclasses_replace(kinds.get_layer("mla_dense"), name=""))
    with pytest.raises(ValueError, match="no kind named 'nope'"):
        kinds.unregister("nope")
    with pytest.raises(ValueError, match="declared by neuron kinds"):
        kinds.unregister("dense")
    with pytest.raises(ValueError, match="JSON values"):
        dataclasses_replace(kinds.get_layer("mla_dense"), name="odd", settings={"f": object()})


def dataclasses_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_a_dense_layer_reads_a_conv_output_flattened():
    rng = np.random.default_rng(9)
    conv = qnet.Layer("mla_conv2d", {"w": rng.integers(-128, 128, (2, 1, 2, 2)).astype(np.int8)},
                      settings={"in_shape": [1, 4, 3], "shift": 6, "relu": True}, name="c")
    dense = qnet.Layer("mla_dense", {"w": rng.integers(-128, 128, (3, 12)).astype(np.int8)},
                       settings={"in_shape": [2, 3, 2], "shift": 7}, pre=conv, name="d")
    x = rng.integers(-128, 128, (2, 3, 1, 4, 3)).astype(np.int8)
    _, trace = hwmodel.run(qnet.Network("n").add(conv, dense), x)
    ref = LAYER_ORACLES["mla_dense"].run(dense, np.asarray(trace.values["c"]), SPINNAKER2)
    np.testing.assert_array_equal(trace.values["d"], ref)
    with pytest.raises(ValueError, match="holds 12 values, the weights take 11"):
        qnet.Layer("mla_dense", {"w": np.ones((3, 11), np.int8)}, settings={"in_shape": [2, 3, 2]})
