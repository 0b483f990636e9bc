"""Design rules: each rule has a network that triggers it, and a clean network passes them all."""

import dataclasses

import numpy as np
import pytest

from s2jax import SPINNAKER2
from s2jax import qnet as snn
from s2jax.export import rules
from s2jax.hwmodel.cost import estimate_cost
from s2jax.hwmodel.mapping import map_to_cores


def clean():
    inp = snn.Population(4, "spike_list", {0: [0, 2], 3: [1]}, name="in")
    hid = snn.Population(5, "lif", {"threshold": 10.0, "alpha_decay": 0.9}, name="hid")
    out = snn.Population(2, "lif_no_delay", {"threshold": 5.0}, name="out")
    return snn.Network("clean").add(
        inp, hid, out,
        snn.Projection(inp, hid, [[0, 0, 15, 7], [3, 4, -15, 0], [1, 2, 3, 1]]),
        snn.Projection(hid, out, [[0, 0, 127, 0], [4, 1, -127, 0]]))


def conv_net(w_max=10, pool=1, c_in=1):
    inp = snn.Population(c_in * 4 * 4, "spike_list", name="img")
    out_hw = (4 // pool - 3) + 1
    conv = snn.Population(2 * out_hw * out_hw, "lif_conv2d", {"threshold": 5.0}, name="conv")
    w = np.full((c_in, 2, 3, 3), w_max)
    return snn.Network("conv").add(
        inp, conv, snn.Conv2DProjection(inp, conv, w, {"in_height": 4, "in_width": 4, "pool_x": pool, "pool_y": pool}))


def rule_names(violations):
    return sorted({v.rule for v in violations})


def test_a_clean_network_passes_every_rule():
    assert rules.check(clean()) == []
    assert rules.check(conv_net()) == []
    rules.require_deployable(clean())


def test_weight_range_and_integrality():
    net = clean()
    net.projections[0].weights[0] = 16  # edited after construction: lif takes [-15, 15]
    net.projections[1].weights = net.projections[1].weights.astype(np.float64)
    net.projections[1].weights[1] = 2.5
    v = rules.weight_range(net, SPINNAKER2)
    assert [x.value for x in v] == [16, 2.5]
    assert "weight 16 outside [-15, 15] of model 'lif'" in v[0].message and "'in' -> 'hid'" in v[0].message
    # a spec with a narrower range flags what the default accepts
    narrow = dataclasses.replace(SPINNAKER2, weight_ranges=(("lif", (-7, 7)), ("lif_no_delay", (-127, 127))))
    v = rules.weight_range(clean(), narrow)
    assert v[0].value == 15 and v[0].limit == (-7, 7)


def test_conv_kernel_range():
    net = conv_net()
    net.projections[0].weights[0, 0, 0, 0] = -129
    (v,) = rules.weight_range(net, SPINNAKER2)
    assert v.value == -129 and v.limit == (-128, 127) and "conv kernel" in v.message


def test_delays():
    net = clean()
    net.projections[0].delays[0] = 8
    net.projections[1].delays[0] = 2  # lif_no_delay has no delays
    v = rules.delays(net, SPINNAKER2)
    assert [(x.value, x.limit) for x in v] == [(8, (0, 7)), (2, 0)]
    assert "has no delays" in v[1].message


def test_exact_input_sum():
    inp = snn.Population(3000, "spike_list", name="in")
    out = snn.Population(2, "lif_no_delay", name="out")
    rows = [[i, 0, 127, 0] for i in range(3000)] + [[i, 1, -1, 0] for i in range(3000)]
    net = snn.Network().add(inp, out, snn.Projection(inp, out, rows))
    assert rules.exact_input_sum(net, SPINNAKER2) == []  # 381,000 < 2^24
    tight = dataclasses.replace(SPINNAKER2, exact_input_sum_bound=381_000)
    (v,) = rules.exact_input_sum(net, tight)
    assert v.value == 381_000 and v.where == "population 'out'"


def test_mac_accumulator_triggers():
    small = dataclasses.replace(SPINNAKER2, mla_accumulator_bits=10)
    (v,) = rules.mac_accumulator(conv_net(w_max=127), small)
    assert (v.value, v.limit) == (1143, 511) and "10-bit" in v.message
    assert rules.mac_accumulator(conv_net(w_max=127), SPINNAKER2) == []  # 24 bits hold it


def test_conv_target():
    net = conv_net()
    net.populations[1].neuron_model = "lif_no_delay"  # edited after construction
    v = rules.conv_target(net, SPINNAKER2)
    assert v[0].value == "lif_no_delay" and v[0].limit == "lif_conv2d"


def test_projection_endpoints():
    net = clean()
    net.projections[0].post_idx[0] = 5
    stray = snn.Population(3, "lif", name="stray")
    net.projections.append(snn.Projection(stray, net.populations[1], [[0, 0, 1, 0]]))
    v = rules.check(net)
    assert rule_names(v) == ["projection_endpoints"]
    assert {x.value for x in v} == {5, "stray"}


def test_atoms_per_core():
    net = clean()
    net.populations[1].set_max_atoms_per_core(251)
    (v,) = rules.atoms_per_core(net, SPINNAKER2)
    assert (v.value, v.limit) == (251, 250)


def test_sram_per_pe():
    inp = snn.Population(30_000, "spike_list", name="in")
    out = snn.Population(1, "lif_no_delay", name="out")
    rows = np.stack([np.arange(30_000), np.zeros(30_000, int), np.ones(30_000, int), np.zeros(30_000, int)], 1)
    net = snn.Network().add(inp, out, snn.Projection(inp, out, rows))
    (v,) = rules.check(net)
    assert v.rule == "sram_per_pe" and v.value == 30_000 * 4 + 24 and v.limit == 96 * 1024
    assert "population 'out'" in v.message


def test_chips_and_routing_entries():
    pops = [snn.Population(250, "lif_no_delay", name=f"p{i}") for i in range(153)]
    net = snn.Network().add(*pops)
    (v,) = rules.check(net)
    assert v.rule == "chips" and (v.value, v.limit) == (2, 1)
    assert rules.check(net, chips_available=2) == []
    net = clean()
    few = dataclasses.replace(SPINNAKER2, routing_entries_per_chip=1)
    (v,) = rules.routing_entries(net, few, map_to_cores(net, few))
    assert v.rule == "routing_entries" and v.value == 2 and v.limit == 1


def test_design_rule_error_lists_every_violation():
    net = clean()
    net.projections[0].weights[0] = 99
    net.projections[1].delays[0] = 1
    with pytest.raises(rules.DesignRuleError) as err:
        rules.require_deployable(net)
    assert len(err.value.violations) == 2
    assert "weight 99" in str(err.value) and "delay 1" in str(err.value)


def test_nir_graph_rules():
    nir = pytest.importorskip("nir")
    w = np.ones((2, 2), np.float32)
    lif = dict(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([2])), "a": nir.Linear(w), "b": nir.Affine(w, np.zeros(2)),
               "n1": nir.LIF(**lif), "n2": nir.LIF(**lif), "output": nir.Output(np.array([2]))},
        edges=[("input", "a"), ("a", "b"), ("b", "n1"), ("n1", "n2"), ("n2", "output")])
    v = rules.check(graph)
    assert rule_names(v) == ["nir_consecutive_weights", "nir_unweighted_edge"]
    assert v[0].where == "node 'b'" and v[1].where == "node 'n2'"
    with pytest.raises(TypeError, match="qnet.Network or a nir.NIRGraph"):
        rules.check(object())


def test_cost_estimate_worst_case_and_from_a_trace():
    from s2jax import hwmodel

    net = clean()
    worst = estimate_cost(net)
    assert worst.worst_case and worst.synaptic_events_per_tick == 5 and worst.neuron_updates_per_tick == 7
    spec = SPINNAKER2
    busiest = max(3 * spec.cycles_per_synaptic_event + 5 * spec.cycles_per_neuron_update,
                  2 * spec.cycles_per_synaptic_event + 2 * spec.cycles_per_neuron_update) / spec.pe_clock_hz
    assert worst.latency_per_tick_s == pytest.approx(busiest)
    energy = (5 * spec.energy_per_synaptic_event_j + 7 * spec.energy_per_neuron_update_j
              + 3 * spec.static_power_per_pe_w * spec.tick_s)
    assert worst.energy_per_tick_j == pytest.approx(energy)
    x = np.zeros((1, 10, 4), bool)
    x[0, [0, 2], 0] = x[0, 1, 3] = True
    _, trace = hwmodel.run(net, {"in": x})
    est = estimate_cost(net, trace)
    assert est.synaptic_events_per_tick == pytest.approx(float(np.asarray(trace.synaptic_events).sum()) / 10)
    assert est.real_time and "nJ per tick" in est.summary()
    conv = estimate_cost(conv_net())
    assert conv.macs_per_tick == 2 * 2 * 2 * 1 * 3 * 3


def test_nir_graph_rules_report_unsupported_nodes_and_unweighted_inputs():
    nir = pytest.importorskip("nir")
    lif = dict(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([2])), "n": nir.LIF(**lif),
               "thr": nir.Threshold(np.ones(2)), "output": nir.Output(np.array([2]))},
        edges=[("input", "n"), ("n", "thr"), ("thr", "output")])
    v = rules.check(graph)
    assert {(x.rule, x.where) for x in v} == {("nir_node_type", "node 'thr'"), ("nir_unweighted_edge", "node 'n'")}


def test_non_finite_weights_are_reported_not_crashed_on():
    net = clean()
    net.projections[1].weights = net.projections[1].weights.astype(np.float64)
    net.projections[1].weights[0] = np.inf
    v = rules.check(net)
    assert [x.rule for x in v] == ["weight_range"] and "not finite" in v[0].message
