"""The DNN scheduler model: tiling, traffic, time and utilization by the formulas of its module doc."""

import dataclasses

import numpy as np
import pytest

from s2jax import SPINNAKER2, hwmodel, qnet


def _fc(o, k, **settings):
    return qnet.Layer("mla_dense", {"w": np.ones((o, k), np.int8), "bias": np.zeros(o, np.int32)},
                      settings={"shift": 9, **settings}, name=f"fc{o}x{k}")


def test_a_dense_layer_by_hand():
    spec = SPINNAKER2
    plan = hwmodel.schedule(qnet.Network("n").add(_fc(10, 300)), batch=3)
    s, = plan.layers
    assert (s.tiles, s.workers, s.units_per_tile) == (10, 10, 1)  # spread over the workers, one unit each
    assert s.macs == 3 * 10 * 300
    assert s.dram_bytes == 10 * 300 + 10 * 4 + 3 * (300 * 10 + 10)  # weights, bias; per sample input per tile, output
    assert s.dram_s == pytest.approx(s.dram_bytes / spec.dram_bytes_per_s)
    assert s.compute_s == pytest.approx(3 * 300 / spec.macs_per_pe / spec.pe_clock_hz)
    assert s.latency_s == pytest.approx(spec.dnn_layer_overhead_s + max(s.compute_s, s.dram_s))
    assert s.mac_utilization == pytest.approx(s.macs / (10 * spec.macs_per_pe * spec.pe_clock_hz * s.latency_s))
    assert plan.latency_s == s.latency_s and "fc10x300" in plan.summary()


def test_tiles_follow_the_sram_and_the_workers():
    big = _fc(4000, 4000)  # 4,000 bytes of weights per unit: 23 units per 96 KiB PE
    s, = hwmodel.schedule(qnet.Network("n").add(big)).layers
    assert s.units_per_tile == (SPINNAKER2.sram_data_bytes_per_pe - 4000) // 4005
    assert s.workers == SPINNAKER2.pes_per_chip - SPINNAKER2.dnn_scheduler_pes
    assert s.sram_bytes_per_worker <= SPINNAKER2.sram_data_bytes_per_pe
    assert s.tiles == -(-4000 // s.units_per_tile)


def test_layers_run_in_sequence_and_batches_amortize_the_weights():
    a = _fc(64, 128, relu=True)
    b = qnet.Layer("mla_dense", {"w": np.ones((10, 64), np.int8)}, settings={"shift": 9}, pre=a, name="out")
    net = qnet.Network("mlp").add(a, b)
    one, many = hwmodel.schedule(net), hwmodel.schedule(net, batch=64)
    assert one.latency_s == pytest.approx(sum(s.latency_s for s in one.layers))
    assert all(m.mac_utilization > o.mac_utilization for o, m in zip(one.layers, many.layers))
    fast = dataclasses.replace(SPINNAKER2, dram_bytes_per_s=1e15)
    assert hwmodel.schedule(net, fast).latency_s < one.latency_s


def test_bad_requests_are_named():
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        hwmodel.schedule(qnet.Network("n").add(_fc(2, 2)), batch=0)
    with pytest.raises(ValueError, match="Network of layers"):
        hwmodel.schedule(qnet.Network("empty"))
