"""Board image: the round trip is exact on the chip model, and every corruption is a clear error."""

import dataclasses
import os
import struct
import zlib

import jax
import numpy as np
import pytest

from s2jax import SPINNAKER2, hwmodel
from s2jax import qnet as snn
from s2jax.export.image import (
    ENTRY,
    HEADER,
    MAGIC,
    ImageError,
    decode_words,
    encode_words,
    load_image,
    save_image,
    spec_hash,
    spec_json,
)
from s2jax.hwmodel import compile_network, run

T = 25


def lif_net():
    """lif with delays 0..7, negative / zero / duplicate weights, per-neuron arrays, both reset modes,
    a recurrent projection, multi-PE populations and a never-firing readout."""
    stim = snn.Population(6, "spike_list", {0: [0, 3, 9], 1: [1], 2: [2, 4, 6, 8], 4: [5], 5: []}, name="stim")
    stim.set_max_atoms_per_core(4)
    hid = snn.Population(7, "lif", {"threshold": [3.0, 4.5, 5.0, 6.0, 2.0, 7.25, 3.5],
                                    "alpha_decay": [0.9, 0.8, 1.0, 0.95, 0.7, 0.85, 0.99],
                                    "i_offset": 0.125, "v_init": [0.0, 1.0, -1.0, 0.5, 0.0, 2.0, 0.0]},
                         name="hid", record=["spikes", "v"])
    hid.set_max_atoms_per_core(3)
    hid2 = snn.Population(3, "lif", {"threshold": 4.0, "alpha_decay": 0.9, "reset": "reset_to_v_reset",
                                     "v_reset": -1.5}, name="hid2", record=["spikes", "v"])
    out = snn.Population(2, "lif_no_delay", {"threshold": SPINNAKER2.readout_threshold, "alpha_decay": 0.75},
                         name="out", record=["v"])
    rng = np.random.default_rng(0)
    conns = [[i, j, int(rng.integers(-15, 16)), int(rng.integers(0, 8))] for i in range(6) for j in range(7)
             if rng.random() < 0.6]
    conns += [[0, 0, 15, 7], [0, 0, 15, 7], [1, 1, 0, 0], [2, 6, -15, 0]]
    return snn.Network("lif").add(
        stim, hid, hid2, out,
        snn.Projection(stim, hid, conns),
        snn.Projection(hid, hid, [[0, 1, 4, 2], [1, 0, -3, 0], [6, 6, 2, 5]]),
        snn.Projection(hid, hid2, [[i, i % 3, 9 - i, i] for i in range(7)]),
        snn.Projection(stim, hid2, []),
        snn.Projection(hid2, out, [[0, 0, 127, 0], [1, 0, -128 + 1, 0], [2, 1, 60, 0]]),
    )


def cuba_net():
    """lif_curr_exp with per-neuron t_refrac and delays, lif_curr_exp_no_delay with scalar t_refrac."""
    stim = snn.Population(5, "spike_list", {i: list(range(i, 20, 3)) for i in range(5)}, name="in")
    c1 = snn.Population(4, "lif_curr_exp", {"threshold": 3.0, "alpha_decay": 0.9, "exc_decay": 0.5,
                                            "inh_decay": [0.7, 0.6, 0.0, 1.0], "t_refrac": [0, 1, 3, 2],
                                            "reset": "reset_to_v_reset", "v_reset": -0.5},
                        name="c1", record=["spikes", "v"])
    c1.set_max_atoms_per_core(2)
    c2 = snn.Population(3, "lif_curr_exp_no_delay", {"threshold": [20.0, 30.0, 40.0], "exc_decay": 0.25,
                                                     "inh_decay": 0.5, "t_refrac": 2, "i_offset": -0.25},
                        name="c2", record=["spikes", "v"])
    return snn.Network("cuba").add(
        stim, c1, c2,
        snn.Projection(stim, c1, [[i, j, (-1) ** (i + j) * (3 + i + j), (i * j) % 8]
                                  for i in range(5) for j in range(4)]),
        snn.Projection(c1, c2, [[i, j, (-1) ** i * (50 + 10 * j), 0] for i in range(4) for j in range(3)]),
        snn.Projection(stim, c2, [[4, 2, 127, 0], [3, 1, -127, 0]]),
    )


def conv_net():
    """Two convs (pooling with dropped trailing rows, padding, stride), a dense projection into a conv
    population and a dense readout."""
    stim = snn.Population(2 * 7 * 6, "spike_list", {i: [i % 5, (i * 7) % 13] for i in range(0, 84, 2)}, name="in")
    stim.set_max_atoms_per_core(30)
    # pool 2x2: 7x6 -> 3x3; pad 1 all round -> 5x5; kernel 2x2, stride 1 -> 4x4
    c1 = snn.Population(3 * 4 * 4, "lif_conv2d", {"threshold": 2.0, "alpha_decay": 0.5}, name="c1",
                        record=["spikes", "v"])
    c1.set_max_atoms_per_core(20)
    k1 = np.random.default_rng(1).integers(-3, 5, size=(2, 3, 2, 2))
    k1[0, 0, 0, 0] = -128
    k1[1, 2, 1, 1] = 127
    # 4x4, pad bottom 1 / left 1 -> 5x5; kernel 3x3, stride 2 -> 2x2
    c2 = snn.Population(2 * 2 * 2, "lif_conv2d", {"threshold": [1.0 + i for i in range(8)]}, name="c2",
                        record=["spikes", "v"])
    k2 = np.random.default_rng(2).integers(-2, 4, size=(3, 2, 3, 3))
    out = snn.Population(2, "lif_no_delay", {"threshold": 5.0, "alpha_decay": 0.9}, name="out", record=["spikes", "v"])
    return snn.Network("conv").add(
        stim, c1, c2, out,
        snn.Conv2DProjection(stim, c1, k1, {"in_height": 7, "in_width": 6, "pool_x": 2, "pool_y": 2,
                                            "pad_top": 1, "pad_bottom": 1, "pad_left": 1, "pad_right": 1}),
        snn.Conv2DProjection(c1, c2, k2, {"in_height": 4, "in_width": 4, "stride_x": 2, "stride_y": 2,
                                          "pad_bottom": 1, "pad_left": 1}),
        snn.Projection(c2, out, [[i, i % 2, (-1 if i == 5 else 1) * (10 + 3 * i), 0] for i in range(8)]),
        snn.Projection(stim, c2, [[0, 7, 3, 0], [10, 0, -2, 0], [83, 7, 1, 0]]),  # dense and conv into c2
    )


NETWORKS = {"lif": lif_net, "cuba": cuba_net, "conv": conv_net}


def inputs_of(net, seed=0):
    """Batch of 2: sample 0 from the spike_list params, sample 1 random."""
    rng = np.random.default_rng(seed)
    own = hwmodel.spike_list_inputs(net, T)
    return {name: np.concatenate([x, rng.random(x.shape) < 0.3]) for name, x in own.items()}


_run = jax.jit(run)


def assert_same_structure(a, b):
    assert a.name == b.name
    assert [(p.name, p.neuron_model, p.size, p.record, p.max_atoms_per_core) for p in a.populations] == \
           [(p.name, p.neuron_model, p.size, p.record, p.max_atoms_per_core) for p in b.populations]
    for pa, pb in zip(a.populations, b.populations):
        if pa.neuron_model == "spike_list":
            assert {k: v for k, v in pa.params.items() if v} == pb.params
            continue
        assert set(pa.params) == set(pb.params) and pa.params["reset"] == pb.params["reset"]
        for k in pa.params:
            if k != "reset":
                np.testing.assert_array_equal(pa.param_array(k), pb.param_array(k))
    assert len(a.projections) == len(b.projections)
    for qa, qb in zip(a.projections, b.projections):
        assert type(qa) is type(qb) and (qa.pre.name, qa.post.name) == (qb.pre.name, qb.post.name)
        if isinstance(qa, snn.Conv2DProjection):
            np.testing.assert_array_equal(qa.weights, qb.weights)
            assert qa.conv_params == qb.conv_params
        else:  # the same synapses, as a multiset (the image groups them by PE and source neuron)
            rows = lambda q: sorted(map(tuple, q.connections.tolist()))  # noqa: E731
            assert rows(qa) == rows(qb)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_round_trip_is_exact_on_the_chip_model(name, profile, tmp_path):
    net = NETWORKS[name]()
    path = tmp_path / f"{name}.s2img"
    save_image(net, path)
    loaded = load_image(path)
    assert_same_structure(net, loaded)
    x = inputs_of(net)
    out_a, tr_a = _run(compile_network(net, profile, record="all"), x)
    out_b, tr_b = _run(compile_network(loaded, profile, record="all"), x)
    assert tr_a.names == tr_b.names and set(tr_a.spikes) == set(tr_b.spikes) == {p.name for p in net.populations}
    for k in tr_a.spikes:
        np.testing.assert_array_equal(tr_a.spikes[k], tr_b.spikes[k])
    for k in tr_a.voltages:
        np.testing.assert_array_equal(tr_a.voltages[k], tr_b.voltages[k])
    np.testing.assert_array_equal(tr_a.synaptic_events, tr_b.synaptic_events)
    assert any(np.asarray(s).any() for k, s in tr_a.spikes.items() if k not in x)  # the test exercises spikes
    # Writing the loaded network again gives the same bytes: the format has one encoding per network
    save_image(loaded, tmp_path / "again.s2img")
    assert (tmp_path / "again.s2img").read_bytes() == path.read_bytes()


def test_multi_chip_placement_round_trips(tmp_path):
    spec = dataclasses.replace(SPINNAKER2, pes_per_chip=3)
    net = lif_net()
    save_image(net, tmp_path / "net.s2img", spec=spec)
    data = (tmp_path / "net.s2img").read_bytes()
    assert [(kind, ident) for kind, ident, *_ in sections(data)][2:-1] == [(3, i) for i in range(7)]
    loaded = load_image(tmp_path / "net.s2img", spec=spec)
    assert_same_structure(net, loaded)
    from s2jax.hwmodel.mapping import map_to_cores

    a, b = map_to_cores(net, spec), map_to_cores(loaded, spec)
    assert a.chips == 3 and a.placements == b.placements and a.routes == b.routes
    with pytest.raises(ImageError, match=r"ChipSpec hash mismatch.*pes_per_chip: image 3, expected 152"):
        load_image(tmp_path / "net.s2img")


def test_synapse_word_bits():
    words = encode_words([-1, 127, -128, 5], [0, 7, 3, 0], [0, 2**20 - 1, 1, 6])
    assert words.dtype == np.dtype("<u4")
    assert words.tolist() == [0xFF | 1 << 11, 0x7F | 7 << 8 | (2**20 - 1) << 12, 0x80 | 3 << 8 | 1 << 11 | 1 << 12,
                              5 | 6 << 12]
    w, d, t = decode_words(words)
    assert (w.tolist(), d.tolist(), t.tolist()) == ([-1, 127, -128, 5], [0, 7, 3, 0], [0, 2**20 - 1, 1, 6])
    with pytest.raises(ImageError, match=r"target 1048576 does not fit the 20-bit target field.*\[0, 1048575\]"):
        encode_words([1], [0], [2**20])
    with pytest.raises(ImageError, match=r"word 0 has weight 5 but inhibitory bit 1"):
        decode_words([5 | 1 << 11])


def test_spec_hash_is_sha256_of_canonical_json():
    import hashlib
    import json

    text = spec_json(SPINNAKER2)
    doc = json.loads(text)
    assert doc["pes_per_chip"] == 152 and doc["fixed_decay_rounding"] == "half_up"
    assert doc["synapse_word_layout"] == [["weight", 0, 8], ["delay", 8, 3], ["inhibitory", 11, 1], ["target", 12, 20]]
    assert list(doc) == sorted(doc) and b" " not in text
    assert spec_hash(SPINNAKER2) == hashlib.sha256(text).digest()
    assert spec_hash(dataclasses.replace(SPINNAKER2, max_delay=6)) != spec_hash(SPINNAKER2)


def small_net():
    stim = snn.Population(2, "spike_list", {0: [1, 4], 1: [2]}, name="in")
    pop = snn.Population(3, "lif", {"threshold": 10.0, "alpha_decay": 0.9}, name="lif")
    pop.set_max_atoms_per_core(2)
    return snn.Network("demo").add(stim, pop, snn.Projection(stim, pop, [[0, 0, 12, 0], [1, 2, -3, 5]]))


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "net.s2img"
    save_image(small_net(), path)
    return path


def sections(data):
    count = HEADER.unpack_from(data)[5]
    return [ENTRY.unpack_from(data, HEADER.size + i * ENTRY.size) for i in range(count)]


def fix_header_crc(data: bytearray):
    count = HEADER.unpack_from(data)[5]
    table = bytes(data[HEADER.size: HEADER.size + count * ENTRY.size])
    data[HEADER.size - 4: HEADER.size] = struct.pack("<I", zlib.crc32(bytes(data[: HEADER.size - 4]) + table))


def test_layout_of_the_file(image):
    data = image.read_bytes()
    magic, version, flags, digest, size, count, _ = HEADER.unpack_from(data)
    assert (magic, version, flags, digest, size) == (MAGIC, 1, 0, spec_hash(SPINNAKER2), len(data))
    kinds = [(kind, ident) for kind, ident, *_ in sections(data)]
    assert kinds == [(1, 0), (2, 0), (3, 0), (3, 1), (3, 2), (4, 0)]  # network, spec, 3 PEs, routing
    for _, _, offset, length, crc, _ in sections(data):
        assert offset % 8 == 0 and zlib.crc32(data[offset: offset + length]) == crc


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match=r"nope.s2img: no such board image file"):
        load_image(tmp_path / "nope.s2img")
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


def test_truncated_file(image):
    data = image.read_bytes()
    image.write_bytes(data[:-10])
    with pytest.raises(ImageError, match=rf"truncated: {len(data) - 10} bytes, but the header says {len(data)}"):
        load_image(image)
    image.write_bytes(data[:20])
    with pytest.raises(ImageError, match=rf"truncated: 20 bytes, but the header alone needs {HEADER.size}"):
        load_image(image)
    image.write_bytes(data + b"\0")
    with pytest.raises(ImageError, match=r"1 trailing bytes"):
        load_image(image)


def test_wrong_magic(image):
    data = bytearray(image.read_bytes())
    data[0:2] = b"PK"
    image.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"not a board image: magic bytes b'PKIMG.*expected b'S2IMG"):
        load_image(image)


def test_unsupported_version(image):
    data = bytearray(image.read_bytes())
    data[8:12] = struct.pack("<I", 2)
    image.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"unsupported image format version 2; this s2jax reads version 1"):
        load_image(image)


def test_chip_spec_hash_mismatch(image):
    other = dataclasses.replace(SPINNAKER2, max_delay=6, pe_clock_hz=150e6)
    with pytest.raises(ImageError, match=r"ChipSpec hash mismatch.*max_delay: image 7, expected 6; "
                                         r"pe_clock_hz: image 200000000.0, expected 150000000.0"):
        load_image(image, spec=other)


def test_crc_mismatch_names_the_section(image):
    data = bytearray(image.read_bytes())
    _, _, offset, length, _, _ = sections(data)[3]  # PE 1
    data[offset + length // 2] ^= 0x01
    image.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"section 3 \(PE 1\) CRC32 mismatch: stored 0x[0-9a-f]{8}, computed"):
        load_image(image)


def test_header_crc_mismatch(image):
    data = bytearray(image.read_bytes())
    data[HEADER.size + 1] ^= 0x01  # inside the section table
    image.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="header CRC32 mismatch"):
        load_image(image)


def test_section_pointing_outside_the_file(image):
    data = bytearray(image.read_bytes())
    kind, ident, offset, length, crc, _ = sections(data)[-1]
    pos = HEADER.size + (len(sections(data)) - 1) * ENTRY.size
    data[pos: pos + ENTRY.size] = ENTRY.pack(kind, ident, len(data) - 4, length, crc, 0)
    fix_header_crc(data)
    image.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=rf"section 5 \(routing 0\) points outside the file: bytes "
                                         rf"\[{len(data) - 4}, {len(data) - 4 + length}\), expected within"):
        load_image(image)


def test_tampered_content_with_valid_crcs_is_still_rejected(image):
    """Bit flips that keep the CRCs right (a buggy writer) still fail on the content checks."""
    data = bytearray(image.read_bytes())
    _, _, offset, length, _, _ = sections(data)[2]  # PE 0: the spike_list slice
    body = bytes(data[offset: offset + length])
    at = body.index(b"spikes") + 16 + 12  # first (neuron, tick) pair: neuron index
    body = body[:at] + struct.pack("<I", 7) + body[at + 4:]
    data[offset: offset + length] = body
    entry = HEADER.size + 2 * ENTRY.size
    kind, ident, off, ln, _, _ = ENTRY.unpack_from(data, entry)
    data[entry: entry + ENTRY.size] = ENTRY.pack(kind, ident, off, ln, zlib.crc32(body), 0)
    fix_header_crc(data)
    image.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"spike_list neuron 7; expected < 2"):
        load_image(image)


def no_files_but(folder, *names):
    return sorted(os.listdir(folder)) == sorted(names)


def test_weight_outside_the_word_layout_leaves_no_file(tmp_path):
    wide = dataclasses.replace(SPINNAKER2, weight_ranges=(("lif_no_delay", (-300, 300)),))
    pre = snn.Population(2, "spike_list", name="in")
    post = snn.Population(2, "lif_no_delay", name="out")
    net = snn.Network().add(pre, post, snn.Projection(pre, post, [[0, 0, 5, 0], [1, 1, 200, 0]], spec=wide))
    with pytest.raises(ImageError, match=r"population 'out', PE slice \[0, 2\): weight 200 does not fit the "
                                         r"8-bit two's-complement weight field.*expected a value in \[-128, 127\]"):
        save_image(net, tmp_path / "bad.s2img", spec=wide)
    assert no_files_but(tmp_path)


def test_delay_outside_the_word_layout(tmp_path):
    long = dataclasses.replace(SPINNAKER2, max_delay=9)
    pre = snn.Population(2, "spike_list", name="in")
    post = snn.Population(2, "lif", name="out")
    net = snn.Network().add(pre, post, snn.Projection(pre, post, [[0, 0, 5, 8]], spec=long))
    with pytest.raises(ImageError, match=r"delay 8 does not fit the 3-bit delay field.*\[0, 7\]"):
        save_image(net, tmp_path / "bad.s2img", spec=long)
    assert no_files_but(tmp_path)


def test_interrupted_write_leaves_the_old_file_and_no_temp_file(image, monkeypatch):
    before = image.read_bytes()
    net = small_net()
    net.population("lif").params["threshold"] = 11.0

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        save_image(net, image)
    monkeypatch.undo()
    assert image.read_bytes() == before and no_files_but(image.parent, image.name)
    save_image(net, image)  # and the same write succeeds once the disk is back
    assert image.read_bytes() != before and no_files_but(image.parent, image.name)
    assert load_image(image).population("lif").params["threshold"] == 11.0


def test_any_corruption_behind_valid_crcs_is_an_image_error(tmp_path):
    """Random byte flips inside sections, CRCs recomputed: every outcome is an ImageError naming the file,
    or a load of a network with the original's populations that the chip model compiles (a flipped
    value the format cannot tell from a real one). Flips in the spec and routing sections are always
    refused: the spec is hashed in the header, the routing table must be the one the network maps to."""
    path = tmp_path / "net.s2img"
    net = conv_net()
    save_image(net, path)
    clean = path.read_bytes()
    rng = np.random.default_rng(0)
    table = sections(clean)
    refused, loaded = {}, {}
    for _ in range(150):
        data = bytearray(clean)
        i = int(rng.integers(len(table)))
        kind, ident, offset, length, _, _ = table[i]
        at, bit = offset + int(rng.integers(length)), int(rng.integers(8))
        data[at] ^= 1 << bit
        body = bytes(data[offset: offset + length])
        pos = HEADER.size + i * ENTRY.size
        data[pos: pos + ENTRY.size] = ENTRY.pack(kind, ident, offset, length, zlib.crc32(body), 0)
        fix_header_crc(data)
        path.write_bytes(bytes(data))
        flip = f"bit {bit} of byte {at} (section {i}, kind {kind})"
        try:
            back = load_image(path)
        except ImageError as err:
            assert str(err).startswith(f"{path}: "), f"{flip}: the error does not name the file: {err}"
            refused[kind] = refused.get(kind, 0) + 1
            continue
        except Exception as err:  # any other exception is what this test looks for
            pytest.fail(f"{flip}: {type(err).__name__} instead of an ImageError: {err}")
        loaded[kind] = loaded.get(kind, 0) + 1
        populations = lambda n: [(p.name, p.neuron_model, p.size) for p in n.populations]  # noqa: E731
        assert populations(back) == populations(net), flip
        compile_network(back, "float32")
    assert set(refused) == {1, 2, 3, 4}, refused  # the flips reached every kind of section and were caught there
    assert 2 not in loaded and 4 not in loaded, loaded
