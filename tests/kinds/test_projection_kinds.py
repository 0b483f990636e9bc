"""Projection kinds (``dense``, ``conv2d``) in the registry, and neuron kinds that declare which of
them may target their populations.

Every registered projection kind needs a hand-computed case here (``CASES``): a kind without one
fails :func:`test_every_projection_kind_is_covered`. For each, its numbers (worst-case events, MACs,
SRAM bytes, design rules) equal the hand-computed ones, and the cost model, the mapper and the
design rules read them from the kind.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from flax import nnx

from s2jax import SPINNAKER2, export, hwmodel, kinds, quant
from s2jax import qnet as snn
from s2jax.layers.synapses import Conv


def _dense_case():
    pre = snn.Population(4, "spike_list", name="pre")
    post = snn.Population(3, "lif", name="post")
    proj = snn.Projection(pre, post, [[0, 0, 1, 0], [1, 0, 2, 3], [2, 2, -3, 0], [3, 2, 0, 0]])
    # 4 rows: 4 events per tick at worst, no MACs; one 4-byte word with post neurons 0, 0, 2, 2
    return snn.Network("dense").add(pre, post, proj), dict(
        events=4, macs=0, posts=[0, 0, 2, 2], nbytes=[4, 4, 4, 4], fixed=0,
        rules={SPINNAKER2: []}, neuron_bytes={"post": [3 * 24 + 16]})


def _conv2d_case():
    pre = snn.Population(1 * 4 * 4, "spike_list", name="img")
    post = snn.Population(2 * 2 * 2, "lif_conv2d", name="conv")
    kernel = np.full((1, 2, 3, 3), 100)  # C_in 1, C_out 2, 3x3 on 4x4: 2x2 outputs
    proj = snn.Conv2DProjection(pre, post, kernel, {"in_height": 4, "in_width": 4})
    small = dataclasses.replace(SPINNAKER2, mla_accumulator_bits=10)
    # MACs: C_out * H_out * W_out * C_in * kH * kW = 2 * 2 * 2 * 1 * 3 * 3 = 72; no events.
    # SRAM: the 18-byte kernel and 14 words of parameters (C_in, C_out, kH, kW and ten conv_params).
    # Accumulator: C_in * kH * kW * pool * max|w| = 1 * 9 * 1 * 100 = 900 > 2^9 - 1 = 511 on 10 bits.
    return snn.Network("conv").add(pre, post, proj), dict(
        events=0, macs=72, posts=[], nbytes=[], fixed=18 + 56,
        rules={SPINNAKER2: [], small: [("mac_accumulator", 900, 511)]}, neuron_bytes={"conv": [8 * 24 + 18 + 56]})


CASES = {"dense": _dense_case, "conv2d": _conv2d_case}


def test_every_projection_kind_is_covered():
    assert {"dense", "conv2d"} <= set(kinds.projection_names())
    missing = [name for name in kinds.projection_names() if name not in CASES]
    assert not missing, f"projection kinds without a hand-computed case in CASES: {missing}"


@pytest.mark.parametrize("name", kinds.projection_names())
def test_the_numbers_of_each_projection_kind(name):
    net, want = CASES[name]()
    (proj,) = net.projections
    kind = proj.kind
    assert kind is kinds.get_projection(name) and kind.name == name and kind.doc
    assert kind.worst_events(proj) == want["events"]
    assert kind.macs(proj) == want["macs"]
    posts, nbytes, fixed = kind.synapse_bytes(proj, SPINNAKER2)
    assert np.asarray(posts).tolist() == want["posts"] and np.asarray(nbytes).tolist() == want["nbytes"]
    assert fixed == want["fixed"]
    for spec, violations in want["rules"].items():
        assert [(r, v, lim) for r, v, lim, _ in kind.rules(proj, spec)] == violations
        found = [(v.rule, v.value, v.limit) for v in export.rules.mac_accumulator(net, spec)]
        assert found == violations  # the design rules read the kind's rules


@pytest.mark.parametrize("name", kinds.projection_names())
def test_cost_and_mapping_read_the_projection_kind(name):
    net, want = CASES[name]()
    post = net.projections[0].post
    cost = hwmodel.estimate_cost(net)
    assert cost.per_population[post.name]["events"] == want["events"]
    assert cost.per_population[post.name]["macs"] == want["macs"]
    mapping = hwmodel.map_to_cores(net)
    assert [p.sram_bytes for p in mapping.of(post.name)] == want["neuron_bytes"][post.name]


def test_stock_neuron_kinds_declare_their_projection_kinds():
    assert kinds.get("spike_list").projections == ()
    assert set(kinds.get("lif_conv2d").projections) == {"conv2d", "dense"}  # synapse rows into it are accepted
    for name in ("lif", "lif_no_delay", "lif_curr_exp", "lif_curr_exp_no_delay"):
        assert kinds.get(name).projections == ("dense",)
    assert kinds.projection_targets("conv2d") == ("lif_conv2d",)
    assert [m for m in kinds.neuron_names() if kinds.mac_target(m)] == ["lif_conv2d"]


def test_projection_kind_names_are_unique_across_the_registry():
    with pytest.raises(ValueError, match="already registered as a neuron kind"):
        kinds.register(dataclasses.replace(kinds.get_projection("dense"), name="lif"))
    with pytest.raises(ValueError, match="already registered as a projection kind"):
        kinds.register(dataclasses.replace(kinds.get("lif"), name="dense"))
    with pytest.raises(ValueError, match="a projection kind named 'dense' is already registered"):
        kinds.register(kinds.get_projection("dense"))
    with pytest.raises(ValueError, match=r"unknown projection kind\(s\) \['sparse'\]"):
        kinds.register(dataclasses.replace(kinds.get("lif"), name="lif_sparse", projections=("sparse",)))
    with pytest.raises(ValueError, match="unknown projection kind 'sparse'; known projection kinds"):
        kinds.get_projection("sparse")
    with pytest.raises(ValueError, match="an input kind receives no projections"):
        dataclasses.replace(kinds.get("spike_list"), projections=("dense",))


@pytest.fixture
def temporary_kind():
    """Registers a copy of ``lif_conv2d`` under another name with other projection kinds; removed after."""
    names = []

    def make(name, projections):
        names.append(name)
        return kinds.register(dataclasses.replace(kinds.get("lif_conv2d"), name=name, projections=projections))

    try:
        yield make
    finally:
        for name in names:
            if name in kinds.names():
                kinds.unregister(name)


def _conv_into(model: str):
    pre = snn.Population(16, "spike_list", {0: [1], 5: [0, 2]}, name="img")
    post = snn.Population(8, model, {"threshold": 5.0}, name="conv")
    return pre, post, (np.ones((1, 2, 3, 3)), {"in_height": 4, "in_width": 4})


def test_a_kind_that_declares_conv2d_is_a_conv_target_with_no_other_code(temporary_kind):
    temporary_kind("lif_conv2d_toy", ("conv2d",))
    pre, post, (kernel, cp) = _conv_into("lif_conv2d_toy")
    net = snn.Network("toy").add(pre, post, snn.Conv2DProjection(pre, post, kernel, cp))
    assert export.check(net) == []
    assert kinds.mac_target("lif_conv2d_toy")
    cost = hwmodel.estimate_cost(net)
    assert cost.per_population["conv"] == {"events": 0.0, "updates": 8, "macs": 2 * 2 * 2 * 9}
    # a conv-only kind takes no synapse rows; the message names the model and the kinds that would do
    with pytest.raises(ValueError, match=r"model 'lif_conv2d_toy' cannot receive synapses of a 'dense' projection "
                                         r"\(it takes 'conv2d'\); kinds that do: 'lif', .*'lif_conv2d'"):
        snn.Projection(pre, post, [[0, 0, 1, 0]])
    assert "lif_conv2d_toy" not in quant.quantizers.target_kinds()  # QuantConfig.target needs dense targets
    with pytest.raises(ValueError, match=r"target must be a registered .*'lif_conv2d'.*got 'lif_conv2d_toy'"):
        quant.QuantConfig(target="lif_conv2d_toy")
    conv = Conv(1, 2, 3, rngs=nnx.Rngs(0))  # quant: a Neuron of a kind that declares conv2d may follow a Conv
    assert quant.QuantConfig().chip_model(conv, SimpleNamespace(model="lif_conv2d_toy")) == "lif_conv2d_toy"
    # both conv targets are named when a conv projection is refused
    with pytest.raises(ValueError, match=r"must target a 'lif_conv2d' or 'lif_conv2d_toy' population"):
        snn.Conv2DProjection(pre, snn.Population(8, "lif", name="l"), kernel, cp)


def test_a_dense_only_kind_is_refused_as_a_conv_target(temporary_kind):
    temporary_kind("lif_dense_toy", ("dense",))
    pre, post, (kernel, cp) = _conv_into("lif_dense_toy")
    with pytest.raises(ValueError, match=r"must target a 'lif_conv2d' population .*got 'lif_dense_toy'"):
        snn.Conv2DProjection(pre, post, kernel, cp)
    assert not kinds.mac_target("lif_dense_toy")
    with pytest.raises(ValueError, match="a Conv layer maps to lif_conv2d .*kind 'lif_dense_toy' cannot follow one"):
        quant.QuantConfig().chip_model(Conv(1, 2, 3, rngs=nnx.Rngs(0)), SimpleNamespace(model="lif_dense_toy"))
    assert "lif_dense_toy" in quant.quantizers.target_kinds()
    assert quant.QuantConfig(target="lif_dense_toy").target == "lif_dense_toy"
    # a network edited after construction: the design rules name the kind and the accepted ones
    pre, conv, (kernel, cp) = _conv_into("lif_conv2d")
    net = snn.Network("edited").add(pre, conv, snn.Conv2DProjection(pre, conv, kernel, cp))
    conv.neuron_model = "lif_dense_toy"
    (v,) = [v for v in export.check(net) if v.rule == "conv_target"]
    assert (v.value, v.limit) == ("lif_dense_toy", "lif_conv2d")
    assert "'lif_dense_toy'" in v.message and "'lif_conv2d'" in v.message


def test_quant_target_accepts_registered_one_channel_dense_targets():
    stock = ("spike_list", "lif", "lif_no_delay", "lif_conv2d", "lif_curr_exp", "lif_curr_exp_no_delay")
    stock = [k for k in quant.quantizers.target_kinds() if k in stock]
    assert stock == ["lif", "lif_no_delay", "lif_conv2d"]  # not spike_list (input), not the two-channel cuba kinds
    for target in ("lif", "lif_no_delay"):
        assert quant.QuantConfig(target=target).target == target
    for bad in ("spike_list", "lif_curr_exp", "nope"):
        with pytest.raises(ValueError,
                           match=rf"target must be .*\('lif', 'lif_no_delay', 'lif_conv2d'.*\), got '{bad}'"):
            quant.QuantConfig(target=bad)
