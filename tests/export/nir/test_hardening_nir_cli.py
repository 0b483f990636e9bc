"""Hardening of the NIR import and the CLI (issue 11): every node of a graph is rebuilt or refused by
name, every size and value a file gives is checked before use, corrupt files are one clear error,
and the ``s2jax`` command answers bad input with exit status 2 and one line, never a traceback."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest

from s2jax import qnet as snn
from s2jax.cli import main
from s2jax.export import image, pyspinnaker2
from s2jax.export.nir import NIRFileError, WeightQuantization, format_weight_report, from_nir, to_nir
from s2jax.io import FileFormatError
from tests.export.nir.test_nir import CASES, W32, assert_same_network, float_model, rich_network

# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rich_graph():
    return to_nir(rich_network())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small network as a NIR file (s2jax-written), a foreign NIR file, an image and a bundle."""
    folder = tmp_path_factory.mktemp("files")
    net = snn.Network("cli").add(
        inp := snn.Population(3, "spike_list", {0: [0, 1, 2, 5], 2: [3, 4]}, name="in"),
        hid := snn.Population(4, "lif", {"threshold": 8.0, "alpha_decay": 0.9}, name="hid", record=["spikes", "v"]),
        snn.Projection(inp, hid, [[0, 0, 15, 0], [0, 1, 9, 2], [2, 3, 12, 1], [2, 2, -4, 0]]))
    nir.write(folder / "net.nir", to_nir(net))
    nir.write(folder / "foreign.nir", CASES["Linear"]())
    image.save_image(net, folder / "net.s2img")
    pyspinnaker2.to_pyspinnaker2(net, folder / "bundle", timesteps=8)
    return folder


def without_digest(graph):
    g = copy.deepcopy(graph)
    g.metadata.pop("s2jax_digest", None)
    return g


def refused(graph_or_path, *needles, **kwargs) -> str:
    """``from_nir`` raises a ValueError whose message holds every needle; returns the message."""
    with pytest.raises(ValueError) as info:
        from_nir(graph_or_path, **kwargs)
    msg = str(info.value)
    for needle in needles:
        assert str(needle) in msg, (needle, msg)
    return msg


# --- 1. every node is rebuilt or refused: metadata kinds ----------------------------------------

QNET_KINDED = ["stim", "conv", "hid", "cuba", "readout", "stim_to_conv", "conv_to_hid", "hid_to_cuba",
               "cuba_to_readout", "hid_to_hid"]


def test_the_kinded_nodes_are_the_ones_listed(rich_graph):
    assert sorted(n for n, v in rich_graph.nodes.items() if "s2jax_kind" in v.metadata) == sorted(QNET_KINDED)


@pytest.mark.parametrize("node", QNET_KINDED)
@pytest.mark.parametrize("kind", ["bogus", "projection", "population", 7, "synapse"])
def test_tampered_kind_is_refused_by_node_and_value(rich_graph, node, kind):
    g = without_digest(rich_graph)
    old = g.nodes[node].metadata["s2jax_kind"]
    if kind == old:
        kind = "population" if old == "projection" else "projection"
    g.nodes[node].metadata["s2jax_kind"] = kind
    refused(g, repr(node), repr(kind), "use_metadata=False")


@pytest.mark.parametrize("node", ["hid_to_cuba", "cuba"])
def test_missing_kind_is_refused(rich_graph, node):
    g = without_digest(rich_graph)
    del g.nodes[node].metadata["s2jax_kind"]
    refused(g, repr(node), "no s2jax_kind")


@pytest.mark.parametrize("node", ["output", "conv_flatten", "stim_to_conv_pool"])
def test_a_kind_on_a_shape_or_output_node_is_refused(rich_graph, node):
    g = without_digest(rich_graph)
    g.nodes[node].metadata = {"s2jax_kind": "projection"}
    refused(g, repr(node), "'projection'")


def test_a_projection_whose_kind_was_changed_is_never_dropped(rich_graph, tmp_path):
    """The issue's case: a projection node relabelled used to vanish (fewer synapses on inspect)."""
    g = without_digest(rich_graph)
    g.nodes["conv_to_hid"].metadata["s2jax_kind"] = "projectionX"
    path = tmp_path / "tampered.nir"
    nir.write(path, g)
    refused(path, "'conv_to_hid'", "'projectionX'")
    # without s2jax metadata the NIR parameters are converted, and every projection is there
    assert len(from_nir(path, use_metadata=False).projections) == len(rich_network().projections)


MODEL_KINDED = ["layer0", "layer1", "layer2", "layer3", "conv0", "linear1", "linear2", "linear3"]


@pytest.mark.parametrize("node", MODEL_KINDED)
def test_tampered_model_kind_is_refused(node):
    g = without_digest(to_nir(float_model(), input_shape=(2, 6, 6)))
    assert "s2jax_kind" in g.nodes[node].metadata
    g.nodes[node].metadata["s2jax_kind"] = "population"
    refused(g, repr(node), "'population'", output="model")


@pytest.mark.parametrize("node, key, value, needle", [
    ("hid", "size", "5", "must be an integer"),
    ("hid", "size", 2.5, "must be an integer"),
    ("hid", "size", 10**12, "out of range"),
    ("hid", "size", 6, "metadata size 6"),
    ("hid", "index", 0, "repeats"),
    ("hid", "index", -1, "out of range"),
    ("hid", "param_threshold", np.array(["3", "4", "5", "6", "7"]), "real numbers"),
    ("hid", "param_alpha_decay", True, "real numbers"),
    ("hid", "param_alpha_decay", np.array([0.5, 0.5]), "shape (2,)"),
    ("hid", "reset", 3, "must be a text"),
    ("stim", "spike_tick", np.array([1.5, 2.0, 3.0]), "integers"),
    ("stim", "spike_neuron", np.array([0, 5]), "spike ticks"),
    ("stim", "neuron_model", "lif", "does not fit"),
    ("hid_to_cuba", "pre", "nobody", "not a population node"),
    ("hid_to_cuba", "post", "readout", "the graph's edges give"),
    ("hid_to_cuba", "connections", np.zeros((3, 3), np.int64), "(n, 4)"),
    ("hid_to_cuba", "connections", np.zeros((20, 4)), "integers"),
    ("stim_to_conv", "conv_pad_top", "1", "must be an integer"),
])
def test_malformed_metadata_values_are_refused(rich_graph, node, key, value, needle):
    g = without_digest(rich_graph)
    g.nodes[node].metadata["s2jax_" + key] = value
    refused(g, repr(node), needle)


def test_digest_refuses_an_edit_the_other_checks_cannot_see(rich_graph, tmp_path):
    g = copy.deepcopy(rich_graph)
    g.nodes["cuba"].metadata["s2jax_param_t_refrac"] = np.float64(3.0)  # valid, but not what was written
    refused(g, "content digest", "use_metadata=False")
    g.nodes["cuba"].metadata["s2jax_param_t_refrac"] = np.float64(2.0)
    assert_same_network(rich_network(), from_nir(g))  # the digest survives nir.write / nir.read:
    nir.write(tmp_path / "g.nir", rich_graph)
    assert_same_network(rich_network(), from_nir(tmp_path / "g.nir"))


# --- 2. shapes and values from the file, checked before allocation ----------------------------


def linear_graph(changes: dict):
    """The Linear case with ``{(node, field): value}`` set."""
    g = CASES["Linear"]()
    for (node, field), value in changes.items():
        setattr(g.nodes[node], field, value)
    return g


BAD_SHAPES = [np.array([0]), np.array([-4]), np.array([10**12]), np.array([2.5]), np.array([[2]]),
              np.array([]), np.array([1, 1, 1, 1]), np.array(["2"]), np.array([2**13, 2**12]), np.array([np.nan])]


@pytest.mark.parametrize("shape", BAD_SHAPES, ids=repr)
@pytest.mark.parametrize("node, field, key", [("input", "input_type", "input"), ("output", "output_type", "output")])
def test_bad_input_and_output_shapes_are_refused(shape, node, field, key):
    g = linear_graph({(node, field): {key: shape}})
    refused(g, repr(node))


def test_output_shape_must_match_what_reaches_it():
    refused(linear_graph({("output", "output_type"): {"output": np.array([7])}}), "'output'", "(7,)", "(3,)")


@pytest.mark.parametrize("shape", [np.array([0]), np.array([10**12]), np.array([3.5])], ids=repr)
def test_scalar_neuron_parameters_with_a_bad_input_type(shape):
    node = nir.LIF(tau=np.array(0.01), r=np.array(2.0), v_leak=np.array(0.0), v_threshold=np.array(1.5))
    node.input_type = {"input": shape}
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "w": nir.Linear(weight=W32), "lif": node,
                            "output": nir.Output(np.array([3]))},
                     edges=[("input", "w"), ("w", "lif"), ("lif", "output")], type_check=False)
    refused(g, "'lif'")


BAD_VALUES = {
    "complex": lambda a: a.astype(complex),
    "bool": lambda a: a > 0,
    "string": lambda a: a.astype(str),
    "object": lambda a: a.astype(object),
    "nan": lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, np.nan, a),
    "inf": lambda a: np.where(np.arange(a.size).reshape(a.shape) == 0, -np.inf, a),
}


@pytest.mark.parametrize("bad", list(BAD_VALUES))
@pytest.mark.parametrize("case, node, field", [("Linear", "n0_linear", "weight"), ("Affine", "n0_affine", "bias"),
                                               ("LIF", "n1_lif", "tau"), ("Conv2d", "n0_conv2d", "weight")])
def test_non_real_values_are_refused_by_node(bad, case, node, field):
    g = CASES[case]()
    setattr(g.nodes[node], field, BAD_VALUES[bad](np.asarray(getattr(g.nodes[node], field), np.float64)))
    refused(g, repr(node), field)


@pytest.mark.parametrize("field, value", [("stride", 0), ("stride", -1), ("padding", -2), ("groups", 1.5),
                                          ("dilation", "x")])
def test_bad_conv_geometry_is_refused(field, value):
    g = CASES["Conv2d"]()
    setattr(g.nodes["n0_conv2d"], field, value)
    refused(g, "'n0_conv2d'", field)


def test_complex_weights_no_longer_pass_with_a_warning(recwarn):
    refused(linear_graph({("n0_linear", "weight"): W32 + 0j}), "'n0_linear'", "complex")
    assert not [w for w in recwarn if "Complex" in type(w.message).__name__]


# --- 3. files: corrupt, truncated, oversized, not NIR -------------------------------------------


@pytest.fixture(scope="module")
def rich_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rich") / "rich.nir"
    nir.write(path, to_nir(rich_network()))
    return path


def mutate(data: bytes, case: int) -> bytes:
    rng = np.random.default_rng(1000 + case)
    b = bytearray(data)
    if case % 3 == 0:
        return bytes(b[:int(rng.integers(len(b)))])
    pos = int(rng.integers(len(b)))
    b[pos] = (b[pos] ^ (1 << int(rng.integers(8)))) if case % 3 == 1 else int(rng.integers(256))
    return bytes(b)


@pytest.mark.parametrize("case", range(36))
def test_damaged_nir_file_gives_the_same_network_or_one_clear_error(case, rich_file, tmp_path):
    path = tmp_path / "bad.nir"
    path.write_bytes(mutate(rich_file.read_bytes(), case))
    try:
        back = from_nir(path)
    except ValueError as e:  # NIRFileError is a FileFormatError is a ValueError
        assert str(e)
        if isinstance(e, NIRFileError):
            assert str(e).startswith(str(path))
        return
    assert_same_network(rich_network(), back)


@pytest.mark.parametrize("content, needle", [
    (b"", "not an HDF5 file"),
    (b"\x89HDF\r\n\x1a\n", "corrupt or truncated"),
    (bytes(range(256)) * 8, "not an HDF5 file"),
    (b'{"nodes": {}}', "not an HDF5 file"),
])
def test_not_nir_files_name_the_file(tmp_path, content, needle):
    path = tmp_path / "x.nir"
    path.write_bytes(content)
    with pytest.raises(NIRFileError, match=needle) as info:
        from_nir(path)
    assert str(info.value).startswith(str(path)) and isinstance(info.value, FileFormatError)


def test_a_folder_is_not_a_nir_file(tmp_path):
    with pytest.raises(NIRFileError, match="is not a file"):
        from_nir(tmp_path)


def test_huge_declared_arrays_are_refused_before_reading(tmp_path):
    """A compressed dataset declaring 2^40 float32 values costs a few KiB on disk and nothing here."""
    path = tmp_path / "huge.nir"
    with h5py.File(path, "w") as f:
        node = f.create_group("node")
        node.create_dataset("type", data="NIRGraph", dtype=h5py.string_dtype())
        lin = node.create_group("nodes").create_group("w")
        lin.create_dataset("type", data="Linear", dtype=h5py.string_dtype())
        lin.create_dataset("weight", shape=(2**20, 2**20), dtype=np.float32, chunks=(64, 64), compression="gzip")
    assert path.stat().st_size < 1_000_000
    with pytest.raises(NIRFileError, match=r"'node/nodes/w/weight' declares shape \(1048576, 1048576\)"):
        from_nir(path)


# --- 4. names and the weight quantization report ------------------------------------------------


def test_imported_networks_are_named_after_the_file(tmp_path):
    nir.write(tmp_path / "my_model.nir", CASES["Linear"]())
    assert from_nir(tmp_path / "my_model.nir").name == "my_model"
    assert from_nir(CASES["Linear"]()).name is None
    nir.write(tmp_path / "other.nir", to_nir(rich_network()))
    assert from_nir(tmp_path / "other.nir").name == "demo"  # the name s2jax wrote wins


def test_weight_report_of_a_float_import():
    net = from_nir(CASES["Linear"]())
    (r,) = net.nir_weight_report
    assert isinstance(r, WeightQuantization)
    assert (r.weight_node, r.pre, r.post, r.scale, r.limit, r.weights, r.clipped) == \
           ("n0_linear", "input", "n1_lif", 254.0, 127, 6, 0)
    q = np.trunc(W32 * 254) / 254
    assert r.max_abs_error == pytest.approx(np.abs(q - W32).max())
    assert r.mean_abs_error == pytest.approx(np.abs(q - W32).mean())
    w = np.array([[1.0, 0.01], [0.02, 0.03], [0.04, 0.05]])
    (r,) = from_nir(linear_graph({("n0_linear", "weight"): w}), weight_scale_percentile=90).nir_weight_report
    assert r.clipped == 1 and r.scale == pytest.approx(127 / np.percentile(w, 90))  # 1.0 saturates at 127
    assert "clipped 1 of 6 weights" in format_weight_report((r,))
    assert from_nir(to_nir(rich_network())).nir_weight_report == ()
    assert "no float weights" in format_weight_report(())


# --- 5. the CLI: exit 2, one line, no traceback -------------------------------------------------


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"s2jax {command}: error: "), lines[0]
    return lines[0]


def make_bad_input(kind: str, files: Path, tmp: Path) -> Path:
    """One malformed file or folder, by name."""
    rng = np.random.default_rng(abs(hash(kind)) % 2**32)
    if kind == "emptydir":
        (tmp / "emptydir").mkdir()
        return tmp / "emptydir"
    if kind.startswith("bundle:"):
        bundle = tmp / "bundle"
        shutil.copytree(files / "bundle", bundle)
        what, how = kind.split(":")[1:]
        target = bundle / what
        data = target.read_bytes()
        if how == "missing":
            target.unlink()
        elif how == "truncated":
            target.write_bytes(data[: len(data) // 2])
        elif how == "empty":
            target.write_bytes(b"")
        else:
            target.write_text(how)
        return bundle
    path = tmp / "input.bin"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(rng.integers(0, 256, 3000, np.uint8).tobytes())
    elif kind.startswith("json:"):
        path.write_text(kind[5:])
    elif kind.startswith("truncated:"):
        data = (files / kind.split(":")[1]).read_bytes()
        path.write_bytes(data[: int(len(data) * float(kind.split(":")[2]))])
    elif kind == "image-header-only":
        path.write_bytes((files / "net.s2img").read_bytes()[:16])
    elif kind == "hdf5-not-nir":
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=np.arange(3))
    elif kind == "nir-bad-kind":
        g = without_digest(to_nir(rich_network()))
        g.nodes["hid_to_cuba"].metadata["s2jax_kind"] = "nothing"
        nir.write(path, g)
    elif kind == "nir-huge-output":
        g = CASES["Linear"]()
        g.nodes["output"].output_type = {"output": np.array([10**12])}
        nir.write(path, g)
    elif kind == "nir-complex":
        g = CASES["Linear"]()
        g.nodes["n0_linear"].weight = W32 + 1j
        nir.write(path, g)
    else:
        raise AssertionError(kind)
    return path


BAD_INPUTS = [
    "emptydir", "empty", "random", "json:null", "json:[]", "json:{", "json:{\"format\": 1}",
    "truncated:net.s2img:0.5", "truncated:net.s2img:0.95", "truncated:net.nir:0.3", "truncated:net.nir:0.9",
    "truncated:foreign.nir:0.5", "image-header-only", "hdf5-not-nir", "nir-bad-kind", "nir-huge-output",
    "nir-complex",
    "bundle:network.json:missing", "bundle:network.json:null", "bundle:network.json:[]", "bundle:network.json:1",
    'bundle:network.json:"s"', "bundle:network.json:{", "bundle:network.json:empty",
    "bundle:arrays.npz:missing", "bundle:arrays.npz:truncated", "bundle:arrays.npz:empty",
]


@pytest.mark.parametrize("command", ["check", "inspect", "export", "simulate"])
@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_cli_bad_input_is_exit_2_and_one_line(kind, command, files, tmp_path, capsys):
    path = make_bad_input(kind, files, tmp_path)
    extra = {"export": ["--to", "image", "--out", str(tmp_path / "o.s2img")], "simulate": ["--timesteps", "5"]}
    assert main([command, str(path), *extra.get(command, [])]) == 2
    one_error_line(capsys, command)
    assert not (tmp_path / "o.s2img").exists()


def test_check_on_an_empty_folder_says_a_bundle_was_expected(tmp_path, capsys):
    assert main(["check", str(tmp_path)]) == 2
    line = one_error_line(capsys, "check")
    assert "py-spinnaker2 bundle folder was expected" in line and str(tmp_path / "network.json") in line


@pytest.mark.parametrize("argv", [
    ["export", "{net}", "--to", "image", "--out", "{tmp}/missing/o.s2img"],
    ["export", "{net}", "--to", "nir", "--out", "{tmp}/missing/o.nir"],
    ["export", "{net}", "--to", "pyspinnaker2", "--out", "{tmp}/missing/bundle"],
    ["simulate", "{net}", "--timesteps", "3", "--out", "{tmp}/missing/run"],
])
def test_writing_into_a_missing_folder_names_the_folder(argv, files, tmp_path, capsys):
    argv = [a.format(net=files / "net.s2img", tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    line = one_error_line(capsys, argv[0])
    assert f"the folder {tmp_path / 'missing'} does not exist" in line and ".tmp" not in line
    assert list(tmp_path.iterdir()) == []


def test_check_and_inspect_of_a_float_nir_file_name_it_and_report_quantization(files, capsys):
    assert main(["check", str(files / "foreign.nir")]) == 0
    out = capsys.readouterr().out
    assert "network 'foreign'" in out and "network None" not in out
    assert "input -> n1_lif (n0_linear): scale 254, max |error|" in out and "clipped 0 of 6 weights" in out
    assert main(["inspect", str(files / "foreign.nir")]) == 0
    assert "weights quantized from float" in capsys.readouterr().out
    assert main(["check", str(files / "net.nir")]) == 0
    out = capsys.readouterr().out
    assert "network 'cli'" in out and "no float weights were quantized" in out


def test_internal_errors_are_one_line_marked_as_bugs(files, capsys, monkeypatch):
    import s2jax.cli as cli

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand\nsecond line")

    monkeypatch.setattr(cli, "load_network", broken)
    assert main(["check", str(files / "net.nir")]) == 2
    line = one_error_line(capsys, "check")
    assert "internal error TypeError: unsupported operand" in line and "S2JAX_TRACEBACK=1" in line
    monkeypatch.setenv("S2JAX_TRACEBACK", "1")
    with pytest.raises(TypeError):
        main(["check", str(files / "net.nir")])


def test_memory_error_is_one_line(files, capsys, monkeypatch):
    import s2jax.cli as cli

    def hungry(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(cli, "load_network", hungry)
    assert main(["inspect", str(files / "net.nir")]) == 2
    assert "out of memory" in one_error_line(capsys, "inspect")


def test_simulate_refuses_a_run_too_large_before_allocating(files, capsys):
    assert main(["simulate", str(files / "net.s2img"), "--timesteps", "1000000000"]) == 2
    line = one_error_line(capsys, "simulate")
    assert "1000000000" in line.replace(",", "") or "1e9" in line


def test_a_pooled_dense_expansion_over_the_limit_is_refused_before_allocating(monkeypatch):
    from s2jax.export.nir import _common as nir_common

    monkeypatch.setattr(nir_common, "MAX_DENSE_WEIGHTS", 250)  # the (3, 72) weight itself fits
    g = CASES["Flatten"]()
    assert from_nir(g).projections  # 3 x 8 and 8 x 18 fit
    nodes = {"input": nir.Input(np.array([2, 12, 12])),
             "pool": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([2, 6, 6])}, start_dim=0),
             "w": nir.Linear(weight=np.ones((3, 72))),
             "lif": nir.LIF(tau=np.full(3, 0.01), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
             "output": nir.Output(np.array([3]))}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "pool"), ("pool", "flat"), ("flat", "w"), ("w", "lif"),
                                         ("lif", "output")], type_check=False)
    refused(g, "'w'", "288 x 3", "exceeds the limit of 250")


# --- 6. limits on weights, near-linear ordering, special files, demo flags -----------------------


def dense_graph(n_in: int, n_out: int, weight=None) -> nir.NIRGraph:
    """Input -> Linear -> LIF -> Output with an ``(n_out, n_in)`` float32 weight (zeros by default)."""
    w = np.zeros((n_out, n_in), np.float32) if weight is None else weight
    nodes = {"input": nir.Input(np.array([n_in])), "w": nir.Linear(weight=w),
             "lif": nir.LIF(tau=np.full(n_out, 0.01), r=np.ones(n_out), v_leak=np.zeros(n_out),
                            v_threshold=np.ones(n_out)),
             "output": nir.Output(np.array([n_out]))}
    return nir.NIRGraph(nodes=nodes, edges=[("input", "w"), ("w", "lif"), ("lif", "output")], type_check=False)


def traced_peak(fn) -> int:
    """Peak bytes traced (NumPy arrays included) while ``fn()`` runs."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_compressed_file_of_zero_weights_over_the_limit_is_refused_from_its_header(tmp_path, monkeypatch, capsys):
    """A small gzip file declaring a big zero matrix (the 2 MB file of 20000 x 20000 zeros that
    made `s2jax check` peak at 14.7 GB) is refused before its weights are read."""
    from s2jax.export.nir import _common as nir_common

    path = tmp_path / "zeros.nir"
    nir.write(path, dense_graph(1000, 300))
    assert path.stat().st_size < 100_000
    from_nir(path)  # fits the real limit (and warms up the imports)
    monkeypatch.setattr(nir_common, "MAX_DENSE_WEIGHTS", 10_000)

    def load():
        with pytest.raises(NIRFileError, match=r"'node/nodes/w/weight' declares shape \(300, 1000\): 300,000 "
                                               r"weights, over the limit of 10,000"):
            from_nir(path)

    assert traced_peak(load) < 300_000 * 4  # less than the float32 matrix itself
    assert main(["check", str(path)]) == 2
    assert "limit of 10,000" in one_error_line(capsys, "check")


def test_a_weight_over_the_limit_in_memory_is_refused_before_any_conversion(monkeypatch):
    from s2jax.export.nir import _common as nir_common

    g = dense_graph(1000, 300)
    monkeypatch.setattr(nir_common, "MAX_DENSE_WEIGHTS", 10_000)
    peak = traced_peak(lambda: refused(g, "Linear node 'w'", "(300, 1000)", "300,000 entries", "limit of 10,000"))
    assert peak < 300_000 * 4


def test_the_import_makes_no_float64_copies_of_the_whole_matrix():
    """Quantizing an (n_out, n_in) float32 matrix needs one float64 array of it (the integers), not
    the four-plus the conversion used to allocate (max |W|, scaled, rounded, clipped count, errors)."""
    w = np.zeros((1000, 1000), np.float32)
    w[::7, ::13] = 0.5
    g = dense_graph(1000, 1000, w)
    from_nir(dense_graph(4, 4, np.ones((4, 4), np.float32)))  # warm up
    nets = []
    peak = traced_peak(lambda: nets.append(from_nir(g)))
    assert peak < 2 * 8 * w.size, f"{peak / (8 * w.size):.2f} float64 copies"
    (proj,) = nets[0].projections
    assert proj.weights.size == np.count_nonzero(w) and set(proj.weights.tolist()) == {127}
    (report,) = nets[0].nir_weight_report
    assert report.weights == w.size and report.max_abs_error == 0 and report.clipped == 0


def test_exporting_a_projection_whose_dense_matrix_is_over_the_limit_is_refused(monkeypatch):
    from s2jax.export.nir import _common as nir_common

    net = snn.Network("big").add(
        a := snn.Population(200, "spike_list", {0: [1]}, name="a"),
        b := snn.Population(100, "lif", {"threshold": 8.0}, name="b"),
        snn.Projection(a, b, [[0, 0, 5, 0]]))
    monkeypatch.setattr(nir_common, "MAX_DENSE_WEIGHTS", 10_000)
    with pytest.raises(ValueError, match=r"100 x 200 = 20,000 entries exceeds the limit of 10,000"):
        to_nir(net)


def chain_graph(layers: int) -> nir.NIRGraph:
    nodes, edges, prev = {"input": nir.Input(np.array([2]))}, [], "input"
    for k in range(layers):
        nodes[f"w{k}"] = nir.Linear(weight=np.ones((2, 2)))
        nodes[f"l{k}"] = nir.LIF(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
        edges += [(prev, f"w{k}"), (f"w{k}", f"l{k}")]
        prev = f"l{k}"
    nodes["output"] = nir.Output(np.array([2]))
    return nir.NIRGraph(nodes=nodes, edges=edges + [(prev, "output")], type_check=False)


def test_a_2000_layer_chain_orders_in_well_under_a_second():
    """The ordering used to rescan lists inside its loop (cubic: 191 s for 3000 layers)."""
    import time

    from s2jax.export.nir._read import _order, _trace

    g = chain_graph(2000)
    syns, _ = _trace(g)
    start = time.perf_counter()
    order = _order(g, syns)
    assert time.perf_counter() - start < 5
    assert order == ["input"] + [f"l{k}" for k in range(2000)]


def _order_by_definition(graph, syns) -> list:
    """The ordering rule spelled out (quadratic and more): inputs first, then repeatedly the smallest
    name whose sources are placed, or, in a cycle, the smallest name not yet placed."""
    names = sorted(graph.nodes)
    preds = {n: {s.source for s in syns if s.target == n and s.source != n} for n in names}
    out: list = []
    while len(out) < len(names):
        ready = [n for n in names if n not in out and preds[n] <= set(out)]
        out.append(ready[0] if ready else next(n for n in names if n not in out))
    inputs = [n for n in out if isinstance(graph.nodes[n], nir.Input)]
    return inputs + [n for n in out if n not in inputs]


@pytest.mark.parametrize("seed", range(40))
def test_the_fast_ordering_keeps_the_order_of_the_rule(seed):
    from types import SimpleNamespace

    from s2jax.export.nir._read import _order

    rng = np.random.default_rng(seed)
    lif = nir.LIF(tau=np.ones(1), r=np.ones(1), v_leak=np.zeros(1), v_threshold=np.ones(1))
    names = sorted({f"n{k}" for k in rng.integers(0, 20, size=rng.integers(2, 10))})
    nodes = {n: nir.Input(np.array([1])) if rng.random() < 0.3 else lif for n in names}
    targets = [n for n in names if nodes[n] is lif] or [names[0]]
    nodes[targets[0]] = lif
    syns = [SimpleNamespace(source=str(rng.choice(names)), target=str(rng.choice(targets)))
            for _ in range(rng.integers(0, 15))]
    graph = SimpleNamespace(nodes=nodes)
    assert _order(graph, syns) == _order_by_definition(graph, syns)


@pytest.fixture
def fifo(tmp_path):
    """A named pipe; should the code under test open it (a regression), a writer opens and closes
    its end, so the read ends instead of hanging the test suite."""
    import os
    import threading

    path = tmp_path / "p.nir"
    os.mkfifo(path)

    def unblock():
        with open(path, "wb"):
            pass

    writer = threading.Thread(target=unblock, daemon=True)
    writer.start()
    yield path
    os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))  # releases the writer if nobody read
    writer.join(5)


def test_cli_refuses_a_fifo_by_name_without_opening_it(fifo, capsys):
    for command in ("check", "inspect"):
        assert main([command, str(fifo)]) == 2
        line = one_error_line(capsys, command)
        assert str(fifo) in line and "named pipe (FIFO)" in line and "not a regular file" in line


def test_from_nir_refuses_a_fifo_by_name(fifo):
    with pytest.raises(NIRFileError, match="named pipe") as info:
        from_nir(fifo)
    assert str(info.value).startswith(str(fifo))


@pytest.mark.parametrize("to", ["image", "nir", "pyspinnaker2"])
def test_export_never_replaces_a_fifo(to, files, fifo, capsys):
    import stat

    assert main(["export", str(files / "net.s2img"), "--to", to, "--out", str(fifo)]) == 2
    line = one_error_line(capsys, "export")
    assert str(fifo) in line and "named pipe" in line
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.parametrize("argv, needle", [
    (["--steps", "1000000000000000"], "argument --steps: 1,000,000,000,000,000 exceeds the limit of 1,000,000,000"),
    (["--qat-steps", "1000000000000"], "argument --qat-steps: 1,000,000,000,000 exceeds the limit of 1,000,000,000"),
    (["--episodes", "100001"], "argument --episodes: 100,001 exceeds the limit of 100,000"),
    (["--steps", "0"], "expected a positive integer"),
])
def test_demo_counts_have_upper_bounds(argv, needle, capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_demo_limits_hold_for_the_python_api_too():
    from s2jax.recipes import dqn

    with pytest.raises(ValueError, match=r"total_steps 1,000,000,000,000 exceeds the limit of 1,000,000,000"):
        dqn.DQNConfig(total_steps=10**12)
    with pytest.raises(ValueError, match=r"eval_episodes 200,000 exceeds the limit of 100,000"):
        dqn.DQNConfig(eval_episodes=200_000)
    with pytest.raises(ValueError, match=r"steps 1,000,000,000,000 exceeds the limit"):
        dqn.chunk_plan(10**12, 16)
    assert dqn.chunk_plan(dqn.MAX_STEPS, 16)[0] >= 1


@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_demo_out_that_is_not_a_folder_is_one_clear_line(kind, tmp_path, capsys, request):
    out = request.getfixturevalue("fifo") if kind == "fifo" else tmp_path / "taken"
    if kind == "file":
        out.write_text("x")
    assert main(["demo", "--out", str(out), "--steps", "16", "--episodes", "1", "--qat-steps", "16"]) == 2
    line = one_error_line(capsys, "demo")
    assert str(out) in line and "is not a folder" in line


def test_to_nir_checks_names_edited_after_construction():
    from s2jax import qnet as snn
    from s2jax.export import nir as s2nir

    inp = snn.Population(2, "spike_list", {0: [1]}, name="in")
    out = snn.Population(2, "lif_no_delay", {"threshold": 5.0}, name="out")
    net = snn.Network("n").add(inp, out, snn.Projection(inp, out, [[0, 0, 6, 0]]))
    net.name = "bad\ud800"
    with pytest.raises(ValueError, match="network name .*UTF-8"):
        s2nir.to_nir(net)
    net.name, out.name = "n", "x" * 1000
    with pytest.raises(ValueError, match="population name"):
        s2nir.to_nir(net)
