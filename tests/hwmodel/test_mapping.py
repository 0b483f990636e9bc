"""Mapping onto PEs: slicing, SRAM-driven shrinking, chips, routing entries, conv kernels, summary."""

import dataclasses
import re

import numpy as np
import pytest

from s2jax import SPINNAKER2
from s2jax import qnet as snn
from s2jax.hwmodel.mapping import CONV_PARAM_BYTES, Placement, Route, map_to_cores


def layout(mapping):
    return [(p.population, p.start, p.stop, p.chip, p.pe) for p in mapping.placements]


def test_default_slicing_per_model():
    stim = snn.Population(2000, "spike_list", {0: [1, 2, 3], 1500: [4]}, name="in")
    hid = snn.Population(600, "lif", name="hid")
    cuba = snn.Population(251, "lif_curr_exp", name="cuba")
    net = snn.Network().add(stim, hid, cuba)
    m = map_to_cores(net)
    assert layout(m) == [("in", 0, 1024, 0, 0), ("in", 1024, 2000, 0, 1),
                         ("hid", 0, 250, 0, 2), ("hid", 250, 500, 0, 3), ("hid", 500, 600, 0, 4),
                         ("cuba", 0, 250, 0, 5), ("cuba", 250, 251, 0, 6)]
    # spike_list: spike_time_bytes per (neuron, tick) entry; neurons: state bytes per neuron
    assert [p.neuron_bytes for p in m.of("in")] == [3 * 4, 1 * 4]
    assert [p.neuron_bytes for p in m.of("hid")] == [250 * 24, 250 * 24, 100 * 24]
    assert [p.neuron_bytes for p in m.of("cuba")] == [250 * 44, 44]
    assert all(p.synapse_bytes == 0 and p.sram_bytes == p.neuron_bytes for p in m.placements)
    assert m.pes == 7 and m.chips == 1 and m.routing_entries == (0,) and m.routes == ()
    assert m.of("hid")[2].size == 100
    assert m.spec is SPINNAKER2
    with pytest.raises(KeyError, match="no population 'nope'"):
        m.of("nope")


def test_user_max_atoms_per_core_wins_over_the_default():
    pop = snn.Population(20, "lif_no_delay", name="p")
    pop.set_max_atoms_per_core(7)
    m = map_to_cores(snn.Network().add(pop))
    assert [(p.start, p.stop) for p in m.placements] == [(0, 7), (7, 14), (14, 20)]
    assert [p.pe for p in m.placements] == [0, 1, 2]


def test_slices_shrink_until_sram_fits_but_never_below_one_neuron():
    spec = dataclasses.replace(SPINNAKER2, sram_data_bytes_per_pe=1000)
    pre = snn.Population(300, "spike_list", name="pre")
    post = snn.Population(6, "lif_no_delay", name="post")
    conns = [[j, 1, 1, 0] for j in range(100)] + [[j, 2, 1, 0] for j in range(300)]
    net = snn.Network().add(pre, post, snn.Projection(pre, post, conns))
    m = map_to_cores(net, spec)
    # bytes per post neuron: 24 + 4 * incoming words = 24, 424, 1224, 24, 24, 24
    got = [(p.start, p.stop, p.neuron_bytes, p.synapse_bytes) for p in m.of("post")]
    assert got == [(0, 2, 48, 400), (2, 3, 24, 1200), (3, 6, 72, 0)]
    assert m.of("post")[1].sram_bytes == 1224 > spec.sram_data_bytes_per_pe  # reported, not raised
    # default SRAM: everything fits one PE
    assert [(p.start, p.stop) for p in map_to_cores(net).of("post")] == [(0, 6)]


def test_a_network_bigger_than_one_chip_spills_onto_the_next():
    stim = snn.Population(100, "spike_list", name="in")
    stim.set_max_atoms_per_core(1)
    hid = snn.Population(60, "lif", name="hid")
    hid.set_max_atoms_per_core(1)
    net = snn.Network().add(stim, hid, snn.Projection(stim, hid, [[i, i, 1, 0] for i in range(60)]))
    m = map_to_cores(net)
    assert m.pes == 160 > SPINNAKER2.pes_per_chip and m.chips == 2
    assert layout(m)[151] == ("hid", 51, 52, 0, 151)
    assert layout(m)[152] == ("hid", 52, 53, 1, 0)
    assert layout(m)[-1] == ("hid", 59, 60, 1, 7)
    # in[i] -> hid[i]: i < 52 stays on chip 0 (one entry each); i >= 52 needs an entry on chip 1
    # plus a forwarding entry on chip 0
    assert m.routing_entries == (60, 8)
    assert Route(0, 59, ()) in m.routes and Route(1, 59, (159,)) in m.routes


def test_routing_entries_hand_worked():
    spec = dataclasses.replace(SPINNAKER2, pes_per_chip=2)
    stim = snn.Population(4, "spike_list", name="stim")
    stim.set_max_atoms_per_core(2)  # PE 0: stim[0:2], PE 1: stim[2:4]      (chip 0)
    hid = snn.Population(4, "lif", name="hid")
    hid.set_max_atoms_per_core(2)  # PE 2: hid[0:2], PE 3: hid[2:4]         (chip 1)
    out = snn.Population(2, "lif", name="out")  # PE 4: out[0:2]           (chip 2)
    net = snn.Network().add(stim, hid, out,
                            snn.Projection(stim, hid, [[0, 0, 1, 0], [1, 3, 1, 0], [3, 1, 1, 0]]),
                            snn.Projection(hid, out, [[0, 0, 1, 0], [1, 1, 0, 0]]),
                            snn.Projection(hid, hid, [[2, 3, -1, 0]]))
    m = map_to_cores(net, spec)
    assert [(p.chip, p.pe) for p in m.placements] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    # PE 0 -> PEs 2, 3 (chip 1): 1 entry on chip 1 + 1 forwarding entry on chip 0
    # PE 1 -> PE 2 (chip 1): 1 on chip 1 + 1 on chip 0
    # PE 2 -> PE 4 (chip 2): 1 on chip 2 + 1 on chip 1
    # PE 3 -> PE 3 (chip 1): 1 on chip 1, local, no extra entry
    # PE 4 sends nothing
    assert m.routes == (Route(0, 0, ()), Route(1, 0, (2, 3)), Route(0, 1, ()), Route(1, 1, (2,)),
                        Route(1, 2, ()), Route(2, 2, (4,)), Route(1, 3, (3,)))
    assert m.routing_entries == (2, 4, 1)
    assert m.chips == 3


def test_conv_kernel_bytes_on_every_post_pe_and_conv_routing():
    spec = dataclasses.replace(SPINNAKER2, pes_per_chip=2)
    pre = snn.Population(4, "spike_list", name="pre")  # 1 x 1 x 4 input
    pre.set_max_atoms_per_core(2)
    post = snn.Population(3, "lif_conv2d", name="conv")
    post.set_max_atoms_per_core(1)
    kernel = np.ones((1, 1, 1, 2))
    net = snn.Network().add(pre, post, snn.Conv2DProjection(pre, post, kernel, {"in_height": 1, "in_width": 4}))
    m = map_to_cores(net, spec)
    assert CONV_PARAM_BYTES == 56
    assert [p.synapse_bytes for p in m.of("conv")] == [2 + CONV_PARAM_BYTES] * 3
    assert [p.neuron_bytes for p in m.of("conv")] == [24] * 3
    # out[x] sees in[x], in[x+1]: pre PE 0 (in 0, 1) -> out 0, 1 (PEs 2, 3, chip 1);
    # pre PE 1 (in 2, 3) -> out 1, 2 (PE 3 on chip 1, PE 4 on chip 2)
    assert m.routes == (Route(0, 0, ()), Route(1, 0, (2, 3)), Route(0, 1, ()), Route(1, 1, (3,)),
                        Route(2, 1, (4,)))
    assert m.routing_entries == (2, 2, 1)


def test_conv_routing_follows_pooling_padding_and_stride():
    pre = snn.Population(2 * 5 * 5, "spike_list", name="pre")
    pre.set_max_atoms_per_core(1)
    post = snn.Population(3 * 2 * 2, "lif_conv2d", name="conv")
    post.set_max_atoms_per_core(1)
    # pool 2x2 of 5x5 -> 2x2 (row and column 4 dropped), pad bottom/right 1 -> 3x3, kernel 2x2 stride 1 -> 2x2
    cp = {"in_height": 5, "in_width": 5, "pool_x": 2, "pool_y": 2, "pad_bottom": 1, "pad_right": 1}
    net = snn.Network().add(pre, post, snn.Conv2DProjection(pre, post, np.ones((2, 3, 2, 2)), cp))
    m = map_to_cores(net)
    targets = {r.source: set(r.targets) for r in m.routes}
    first_post = 50

    def outs(oy_ox):
        return {first_post + c * 4 + p for c in range(3) for p in oy_ox}

    for c in range(2):
        assert targets[c * 25 + 0] == outs([0])  # pooled (0, 0) -> output (0, 0) only
        assert targets[c * 25 + 3 * 5 + 3] == outs([0, 1, 2, 3])  # pooled (1, 1) -> every output
        assert targets[c * 25 + 2] == outs([0, 1])  # pooled (0, 1) -> outputs (0, 0), (0, 1)
        for dropped in [4, 9, 20, 24]:  # last row / column do not fill a pooling window
            assert c * 25 + dropped not in targets
    assert m.routing_entries == (len(targets),)


def test_summary_text():
    stim = snn.Population(3, "spike_list", {0: [1]}, name="in")
    hid = snn.Population(5, "lif", name="hid")
    hid.set_max_atoms_per_core(2)
    net = snn.Network().add(stim, hid, snn.Projection(stim, hid, [[0, 4, 1, 0], [1, 4, 1, 0]]))
    text = map_to_cores(net).summary()
    lines = text.splitlines()
    assert re.fullmatch(r"population\s+model\s+neurons\s+PEs\s+max SRAM bytes/PE", lines[0])
    assert re.fullmatch(r"in\s+spike_list\s+3\s+1\s+4", lines[2])
    assert re.fullmatch(r"hid\s+lif\s+5\s+3\s+48", lines[3])  # slice [4, 5): 24 + 2 words * 4 = 32 < 48
    assert "total: 4 PEs on 1 chip(s)" in lines[-1] and "max 1 of 16384" in lines[-1]


def test_placement_properties_and_unknown_routing_rule():
    p = Placement("x", 3, 10, 0, 5, 100, 28)
    assert p.size == 7 and p.sram_bytes == 128
    net = snn.Network().add(snn.Population(2, "lif", name="a"))
    with pytest.raises(ValueError, match="routing_entry_rule 'per_pe' is not implemented"):
        map_to_cores(net, dataclasses.replace(SPINNAKER2, routing_entry_rule="per_pe"))


def test_docstring_example_runs():
    import doctest

    from s2jax.hwmodel import mapping

    assert doctest.testmod(mapping).failed == 0
