"""Hardening of the files s2jax reads and writes (issue 11): py-spinnaker2 bundles, checkpoints, board
images and dataset caches.

Every malformed bundle or checkpoint gives one ``ValueError`` (a ``FileFormatError`` naming the file and
the key) and nothing else; a corrupt or altered checkpoint is named and retrained on resume; every file
is written through ``s2jax.io`` (temporary file, fsync, rename, nothing left behind on error).
"""

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from s2jax import io as fileio
from s2jax import qnet as snn
from s2jax.data import cache
from s2jax.export import load_image, pyspinnaker2, save_image
from s2jax.export.image import ImageError
from s2jax.export.pyspinnaker2 import ARRAYS_FILE, NETWORK_FILE, load_pyspinnaker2, load_results, to_pyspinnaker2
from s2jax.export.pyspinnaker2 import _format as _pyspinnaker2_format
from s2jax.io import FileFormatError
from s2jax.recipes import checkpoint, dqn, dqn_pipeline, dvs_pipeline
from s2jax.recipes.checkpoint import CheckpointError

SRC = Path(__file__).parent.parent / "s2jax"


# --- a small bundle -------------------------------------------------------------------------------


def small_network():
    """A spike source (3 x 3 image), a conv layer and a lif layer: every array kind a bundle holds."""
    img = snn.Population(9, "spike_list", {0: [1, 3], 4: [2], 8: [0, 5]}, name="img")
    conv = snn.Population(4, "lif_conv2d", {"threshold": 3.0, "alpha_decay": 0.5, "reset": "reset_to_v_reset"},
                          name="conv", record=["spikes"])
    hid = snn.Population(3, "lif_curr_exp", {"threshold": np.array([2.0, 3.0, 4.5]), "alpha_decay": 0.9, "t_refrac": 2},
                         name="hid", record=["spikes", "v"])
    hid.set_max_atoms_per_core(2)
    projs = [snn.Conv2DProjection(img, conv, [[[[1, 2], [-3, 4]]]], {"in_height": 3, "in_width": 3}),
             snn.Projection(img, hid, [[0, 0, 5, 1], [4, 1, -2, 0], [8, 2, 7, 3], [1, 0, 1, 0]]),
             snn.Projection(conv, hid, [[0, 2, 3, 0], [3, 1, 4, 2]])]
    return snn.Network("small").add(img, conv, hid, *projs)


def signature(net: snn.Network):
    """Everything that defines a network, as comparable Python values."""
    pops = []
    for p in net.populations:
        params = {k: v if isinstance(v, (str, list)) else np.asarray(v, np.float64).tolist()
                  for k, v in p.params.items()}
        pops.append((p.name, p.size, p.neuron_model, list(p.record), p.max_atoms_per_core, params))
    projs = [(type(c).__name__, c.pre.name, c.post.name, c.weights.tolist(), getattr(c, "conv_params", None),
              c.connections.tolist() if isinstance(c, snn.Projection) else None) for c in net.projections]
    return net.name, pops, projs


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """``(net, folder, meta, arrays)`` of the small network's bundle (do not modify: copy)."""
    net = small_network()
    folder = to_pyspinnaker2(net, tmp_path_factory.mktemp("bundle") / "b", timesteps=8)
    meta = json.loads((folder / NETWORK_FILE).read_text())
    with np.load(folder / ARRAYS_FILE, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    return net, folder, meta, arrays


KEEP = object()


def copy_bundle(folder: Path, target: Path, meta=KEEP, arrays=None, raw=None) -> Path:
    """A copy of ``folder`` with network.json replaced by ``meta`` (a JSON value) or ``raw`` text,
    and arrays.npz by ``arrays``."""
    shutil.copytree(folder, target)
    if meta is not KEEP:
        (target / NETWORK_FILE).write_text(json.dumps(meta))
    if raw is not None:
        (target / NETWORK_FILE).write_text(raw)
    if arrays is not None:
        with open(target / ARRAYS_FILE, "wb") as f:
            np.savez(f, **arrays)
    return target


def test_the_bundle_round_trips_and_states_its_synapse_counts(bundle):
    net, folder, meta, _ = bundle
    assert signature(load_pyspinnaker2(folder)) == signature(net)
    assert meta["format_version"] == pyspinnaker2.BUNDLE_VERSION == 2
    assert [c["synapses"] for c in meta["projections"]] == [4, 4, 2] and meta["synapses"] == 10


def _set(path, value):
    """A change to network.json: set (or with ``...`` delete) the key at ``path`` (a tuple)."""

    def change(meta):
        obj = meta
        for key in path[:-1]:
            obj = obj[key]
        if value is ...:
            del obj[path[-1]]
        else:
            obj[path[-1]] = value
        return meta

    return change


BIG = 2**32 - 1
JSON_CASES = {  # name: (change of network.json, what the error says)
    "null": (lambda m: None, r"must hold a JSON object, got null"),
    "list": (lambda m: [], r"must hold a JSON object, got array"),
    "number": (lambda m: 1, r"must hold a JSON object, got number"),
    "string": (lambda m: "s", r"must hold a JSON object, got string"),
    "no format": (_set(("format",), ...), r"not a s2jax-pyspinnaker2-bundle"),
    "old version": (_set(("format_version",), 1), r"version 1; this s2jax reads version 2 only"),
    "no populations": (_set(("populations",), ...), r"\(KeyError: 'populations'\)"),
    "no projections": (_set(("projections",), ...), r"\(KeyError: 'projections'\)"),
    "no synapse total": (_set(("synapses",), ...), r"\(KeyError: 'synapses'\)"),
    "projections {}": (_set(("projections",), {}), r"\['projections'\] must be a list, got \{\}"),
    "populations {}": (_set(("populations",), {}), r"\['populations'\] must be a list"),
    "population null": (_set(("populations", 0), None), r"populations\[0\] must be an object"),
    "projection list": (_set(("projections", 1), [1, 2]), r"projections\[1\] must be an object"),
    "no size": (_set(("populations", 1, "size"), ...), r"\(KeyError: 'size'\): populations\[1\]"),
    "no neuron_model": (_set(("populations", 0, "neuron_model"), ...), r"KeyError: 'neuron_model'"),
    "no record": (_set(("populations", 2, "record"), ...), r"KeyError: 'record'"),
    "no params": (_set(("populations", 2, "params"), ...), r"KeyError: 'params'"),
    "no array_params": (_set(("populations", 2, "array_params"), ...), r"KeyError: 'array_params'"),
    "no pre": (_set(("projections", 0, "pre"), ...), r"KeyError: 'pre'"),
    "no kind": (_set(("projections", 0, "kind"), ...), r"KeyError: 'kind'"),
    "no kernel_shape": (_set(("projections", 0, "kernel_shape"), ...), r"KeyError: 'kernel_shape'"),
    "name list": (_set(("network",), ["a"]), r"\['network'\] must be a string or null, got \['a'\]"),
    "name dict": (_set(("network",), {"a": 1}), r"\['network'\] must be a string or null"),
    "population name number": (_set(("populations", 0, "name"), 7), r"populations\[0\]\['name'\] must be a string"),
    "duplicate names": (_set(("populations", 1, "name"), "img"), r"two populations are named 'img'"),
    "size string": (_set(("populations", 1, "size"), "4"), r"\['size'\] must be an integer in \[1, 16,777,216\]"),
    "size bool": (_set(("populations", 1, "size"), True), r"\['size'\] must be an integer"),
    "size float": (_set(("populations", 1, "size"), 4.0), r"\['size'\] must be an integer"),
    "size zero": (_set(("populations", 1, "size"), 0), r"\['size'\] must be an integer in \[1, "),
    "size negative": (_set(("populations", 0, "size"), -9), r"\['size'\] must be an integer in \[1, "),
    "size 2^32-1": (_set(("populations", 0, "size"), BIG), r"got 4294967295"),
    "size 10^11": (_set(("populations", 2, "size"), 10**11), r"MAX_POPULATION_SIZE"),
    "size 2^24+1": (_set(("populations", 0, "size"), 2**24 + 1), r"MAX_POPULATION_SIZE"),
    "atoms per core huge": (_set(("populations", 2, "max_atoms_per_core"), 2**40), r"max_atoms_per_core"),
    "atoms per core zero": (_set(("populations", 2, "max_atoms_per_core"), 0), r"max_atoms_per_core"),
    "neuron_model list": (_set(("populations", 1, "neuron_model"), ["lif"]), r"neuron_model'\] must be a string"),
    "unknown model": (_set(("populations", 1, "neuron_model"), "izhikevich"), r"unknown neuron model 'izhikevich'"),
    "record string": (_set(("populations", 2, "record"), "spikes"), r"record'\] must be a list of strings"),
    "record numbers": (_set(("populations", 2, "record"), [1]), r"record'\] must be a list of strings"),
    "params list": (_set(("populations", 2, "params"), []), r"params'\] must be an object of string values"),
    "param number": (_set(("populations", 1, "params", "reset"), 1), r"params'\] must be an object of string"),
    "array_params kind": (_set(("populations", 2, "array_params", "threshold"), "vector"), r"array_params'\]"),
    "unknown population key": (_set(("populations", 0, "params"), {}), r"unexpected key\(s\) \['params'\]"),
    "unknown top key": (_set(("extra",), 1), r"unexpected key\(s\) \['extra'\]"),
    "pre unknown": (_set(("projections", 1, "pre"), "nope"), r"names population 'nope', which is not in"),
    "pre number": (_set(("projections", 1, "post"), 3), r"\['post'\] must be a string"),
    "kind dense": (_set(("projections", 1, "kind"), "dense"), r"\['kind'\] must be \"projection\" or \"conv2d\""),
    "synapses string": (_set(("projections", 1, "synapses"), "4"), r"\['synapses'\] must be an integer"),
    "synapses negative": (_set(("projections", 1, "synapses"), -1), r"\['synapses'\] must be an integer"),
    "synapse total +1": (_set(("synapses",), 11), r"'synapses' says 11 synapses but the projections list 10"),
    "synapse total huge": (_set(("synapses",), 2**70), r"'synapses'\] must be a non-negative integer"),
    "kernel shape 3 dims": (_set(("projections", 0, "kernel_shape"), [1, 2, 2]), r"a list of 4 positive integers"),
    "kernel shape huge": (_set(("projections", 0, "kernel_shape"), [BIG, 1, 2, 2]), r"4 positive integers"),
    "conv params string": (_set(("projections", 0, "conv_params", "in_height"), "3"), r"conv_params'\] must be"),
    "conv params unknown": (_set(("projections", 0, "conv_params", "dilation"), 2), r"unknown conv_params"),
    "timesteps zero": (_set(("timesteps",), 0), r"\['timesteps'\] must be an integer in \[1, "),
    "timesteps string": (_set(("timesteps",), "8"), r"\['timesteps'\] must be an integer"),
    "eth_ip number": (_set(("eth_ip",), 1), r"\['eth_ip'\] must be a non-empty string"),
    "sys tick negative": (_set(("sys_tick_in_s",), -1e-3), r"sys_tick_in_s'\] must be a positive number"),
    "s2jax_version null": (_set(("s2jax_version",), None), r"s2jax_version'\] must be a string"),
}


@pytest.mark.parametrize("case", list(JSON_CASES))
def test_a_malformed_network_json_is_one_clear_error(bundle, tmp_path, case):
    _, folder, meta, _ = bundle
    change, message = JSON_CASES[case]
    bad = copy_bundle(folder, tmp_path / "b", meta=change(json.loads(json.dumps(meta))))
    with pytest.raises(FileFormatError, match=message) as err:
        load_pyspinnaker2(bad)
    assert str(err.value).startswith(str(bad / NETWORK_FILE))


def _synapse_count_changes(meta):
    """Per projection and total synapse counts both raised by one: consistent JSON, wrong for the arrays."""
    meta["projections"][1]["synapses"] += 1
    meta["synapses"] += 1
    return meta


def _drop_projections(meta):
    meta["projections"], meta["synapses"] = [], 0
    return meta


def _conv_count(meta):
    meta["projections"][0]["synapses"] += 1
    meta["synapses"] += 1
    return meta


@pytest.mark.parametrize("change, message", [
    (_synapse_count_changes, r"arrays\.npz: proj1\.connections .* has shape \(4, 4\), network\.json says 5 synapses"),
    (_conv_count, r"network\.json: .*kernel_shape \[1, 1, 2, 2\] holds 4 weights but synapses says 5"),
    (_drop_projections, r"arrays\.npz: unexpected array 'proj\d\.\w+'"),
    (_set(("populations", 2, "array_params", "bogus"), "scalar"), r"arrays\.npz: array 'pop2\.bogus' is missing"),
    (_set(("populations", 2, "array_params", "threshold"), "scalar"), r"pop2\.threshold .* must have shape \(\)"),
    (_set(("projections", 0, "kernel_shape"), [1, 1, 1, 4]), r"proj0\.kernel .* has shape \(1, 1, 2, 2\), network"),
])
def test_network_json_that_disagrees_with_the_arrays_is_refused(bundle, tmp_path, change, message):
    _, folder, meta, _ = bundle
    bad = copy_bundle(folder, tmp_path / "b", meta=change(json.loads(json.dumps(meta))))
    with pytest.raises(FileFormatError, match=message):
        load_pyspinnaker2(bad)


def _replace(key, value):
    return lambda arrays: {**arrays, key: np.asarray(value)}


def _drop(key):
    return lambda arrays: {k: v for k, v in arrays.items() if k != key}


ARRAY_CASES = {
    "threshold as strings": (_replace("pop2.threshold", ["2.0", "3.0", "0.9000001"]),
                             r"'pop2\.threshold' must hold integer or float numbers, got dtype <U9"),
    "scalar as string": (_replace("pop2.alpha_decay", "0.9000001"), r"'pop2\.alpha_decay' must hold integer or float"),
    "scalar as bool": (_replace("pop2.alpha_decay", True), r"'pop2\.alpha_decay' .* got dtype bool"),
    "per-neuron bools": (_replace("pop2.threshold", [True, False, True]), r"got dtype bool"),
    "complex": (_replace("pop2.threshold", [1 + 1j, 2, 3]), r"got dtype complex128"),
    "bytes": (_replace("pop1.threshold", b"3.0"), r"got dtype \|S3"),
    "wrong length": (_replace("pop2.threshold", [1.0, 2.0]), r"pop2\.threshold .* must have shape \(3,\), got \(2,\)"),
    "spike times float": (_replace("pop0.spike_times", [[0.0, 1.0]]), r"'pop0\.spike_times' must hold integer"),
    "spike times strings": (_replace("pop0.spike_times", [["0", "1"]]), r"'pop0\.spike_times' must hold integer"),
    "spike times 1-D": (_replace("pop0.spike_times", [0, 1, 4]), r"must have shape \(S, 2\), got \(3,\)"),
    "spike neurons bool": (_replace("pop0.spike_neurons", [True, False]), r"'pop0\.spike_neurons' must hold integer"),
    "spike neurons twice": (_replace("pop0.spike_neurons", [0, 0, 4, 8]), r"must list distinct neurons"),
    "spike of unlisted neuron": (_replace("pop0.spike_times", [[5, 1]]), r"spike of neuron 5, which .* does not list"),
    "spike neuron out of range": (_replace("pop0.spike_neurons", [0, 4, 8, 9]), r"neuron index 9 outside \[0, 8\]"),
    "connections float": (_replace("proj1.connections", np.zeros((4, 4))), r"'proj1\.connections' must hold integer"),
    "connections short": (lambda a: {**a, "proj1.connections": a["proj1.connections"][:3]}, r"says 4 synapses"),
    "connections 3 columns": (lambda a: {**a, "proj1.connections": a["proj1.connections"][:, :3]}, r"shape \(4, 3\)"),
    "kernel float": (_replace("proj0.kernel", np.ones((1, 1, 2, 2))), r"'proj0\.kernel' must hold integer weights"),
    "kernel bool": (_replace("proj0.kernel", np.ones((1, 1, 2, 2), bool)), r"'proj0\.kernel' must hold integer"),
    "extra array": (lambda a: {**a, "junk": np.zeros(2)}, r"unexpected array 'junk'"),
    "extra projection": (lambda a: {**a, "proj3.connections": np.zeros((0, 4), np.int32)}, r"'proj3\.connections'"),
    "missing parameter": (_drop("pop2.threshold"), r"'pop2\.threshold' is missing \(network\.json needs it\)"),
    "missing projection": (_drop("proj2.connections"), r"'proj2\.connections' is missing"),
    "objects": (_replace("pop2.threshold", np.array([1.0, "a", None], dtype=object)), r"holds Python objects"),
    "weight too large": (_replace("proj1.connections", [[0, 0, 500, 0]] * 4), r"bundle's network is invalid: .*500"),
}


@pytest.mark.parametrize("case", list(ARRAY_CASES))
def test_a_malformed_arrays_npz_is_one_clear_error(bundle, tmp_path, case):
    _, folder, _, arrays = bundle
    change, message = ARRAY_CASES[case]
    bad = copy_bundle(folder, tmp_path / "b", arrays=change(dict(arrays)))
    with pytest.raises(FileFormatError, match=message):
        load_pyspinnaker2(bad)


@pytest.mark.parametrize("raw", ["", "   ", "{", "NaN", '{"format": NaN}', "\xff", "[" * 100_000])
def test_network_json_that_is_not_json_is_refused(bundle, tmp_path, raw):
    _, folder, _, _ = bundle
    bad = copy_bundle(folder, tmp_path / "b", raw=raw)
    with pytest.raises(FileFormatError, match=r"network\.json"):
        load_pyspinnaker2(bad)


def test_a_missing_file_or_folder_is_named(bundle, tmp_path):
    _, folder, _, _ = bundle
    with pytest.raises(FileFormatError, match=r"not a folder; a py-spinnaker2 bundle folder"):
        load_pyspinnaker2(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileFormatError, match=r"empty.network\.json: no such network\.json of a py-spinnaker2 bundle"):
        load_pyspinnaker2(tmp_path / "empty")
    bad = copy_bundle(folder, tmp_path / "b")
    (bad / ARRAYS_FILE).unlink()
    with pytest.raises(FileFormatError, match=r"arrays\.npz: no such arrays\.npz"):
        load_pyspinnaker2(bad)


def _npz_size(bundle):
    return (bundle[1] / ARRAYS_FILE).stat().st_size


FRACTIONS = [i / 24 for i in range(24)]


@pytest.mark.parametrize("cut", [0, 1, 4, 30, 100, 0.25, 0.5, 0.75, -200, -60, -22, -21, -1])
def test_a_truncated_arrays_npz_is_refused(bundle, tmp_path, cut):
    _, folder, _, _ = bundle
    data = (folder / ARRAYS_FILE).read_bytes()
    n = int(cut * len(data)) if isinstance(cut, float) else cut % len(data) if cut < 0 else cut
    bad = copy_bundle(folder, tmp_path / "b")
    (bad / ARRAYS_FILE).write_bytes(data[:n])
    with pytest.raises(FileFormatError, match=r"arrays\.npz: (empty|corrupt or truncated|no such)"):
        load_pyspinnaker2(bad)


@pytest.mark.parametrize("mask", [0xFF, 0x01, 0x80])
@pytest.mark.parametrize("where", FRACTIONS + [-k for k in range(1, 23)])
def test_a_flipped_byte_in_arrays_npz_loads_the_same_network_or_is_refused(bundle, tmp_path, where, mask):
    """Flips across the file (members and headers) and in the last 22 bytes (the zip's end record):
    the result is the identical network or a FileFormatError, never another exception."""
    net, folder, _, _ = bundle
    data = bytearray((folder / ARRAYS_FILE).read_bytes())
    offset = int(where * len(data)) if isinstance(where, float) else len(data) + where
    data[offset] ^= mask
    bad = copy_bundle(folder, tmp_path / "b")
    (bad / ARRAYS_FILE).write_bytes(bytes(data))
    try:
        loaded = load_pyspinnaker2(bad)
    except FileFormatError as err:
        assert str(bad) in str(err)
    else:
        assert signature(loaded) == signature(net)


def test_results_npz_is_checked_before_allocating(bundle, tmp_path, monkeypatch):
    net, folder, _, _ = bundle
    bad = copy_bundle(folder, tmp_path / "b")
    good = {"timesteps": np.asarray(8, np.int64), "sys_tick_in_s": np.asarray(1e-3),
            "pop0.spikes": np.zeros((0, 2), np.int64), "pop1.spikes": np.zeros((0, 2), np.int64),
            "pop2.spikes": np.asarray([[1, 3]], np.int64),
            "pop2.v_neurons": np.arange(3), "pop2.v": np.zeros((3, 8))}
    fileio.save_npz(bad / "results.npz", good)
    assert load_results(bad, net)["hid"]["spikes"][3, 1]
    for change, message in [
        ({"timesteps": np.asarray(BIG, np.int64)}, r"'timesteps' must be one integer in \[1, 2147483647\]"),
        ({"timesteps": np.asarray("8")}, r"'timesteps' must hold an integer"),
        ({"timesteps": np.asarray(2**31 - 1)}, r"spikes of population 'img' .* over the limit"),
        ({"pop2.spikes": np.asarray([[1.0, 3.0]])}, r"'pop2\.spikes' must hold integer"),
        ({"pop2.spikes": np.asarray([1, 3])}, r"pop2\.spikes must have shape \(S, 2\)"),
        ({"pop2.v": np.zeros((2, 8))}, r"pop2\.v must have one row per neuron"),
        ({"pop2.v": np.asarray([["a"] * 8] * 3)}, r"'pop2\.v' must hold numbers"),
    ]:
        fileio.save_npz(bad / "results.npz", {**good, **change})
        with pytest.raises(FileFormatError, match=message):
            load_results(bad, net)
    fileio.save_npz(bad / "results.npz", good)
    monkeypatch.setattr(_pyspinnaker2_format, "MAX_RESULT_BYTES", 90)  # 8 ticks x 3 voltages x 4 bytes = 96
    with pytest.raises(FileFormatError, match=r"voltages of population 'hid' \(8 ticks x 3 neurons\) would take 96 "):
        load_results(bad, net)
    monkeypatch.undo()
    missing = {k: v for k, v in good.items() if k != "pop2.v_neurons"}
    fileio.save_npz(bad / "results.npz", missing)
    with pytest.raises(FileFormatError, match=r"'pop2\.v_neurons' is missing"):
        load_results(bad, net)
    (bad / "results.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(FileFormatError, match=r"results\.npz: corrupt or truncated"):
        load_results(bad, net)


# --- checkpoints ----------------------------------------------------------------------------------


class Tiny(nnx.Module):
    def __init__(self, seed=0, width=3):
        self.a = nnx.Linear(2, width, rngs=nnx.Rngs(seed))
        self.b = nnx.Linear(width, 2, rngs=nnx.Rngs(seed + 1))


def weights(model):
    return {k: np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(model))}


def same_weights(a, b):
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


@pytest.fixture
def ckpt(tmp_path):
    model = Tiny(seed=3)
    path = checkpoint.save_model(tmp_path / "ck", model, {"stage": "float", "curve": [1.0, 2.0]})
    return model, path


def rewrite(path, change, *, digest=None):
    """Rewrite a checkpoint with valid zip CRCs: ``change(arrays)`` in place, the digest kept unless given."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    if digest is not None:
        arrays[checkpoint.DIGEST_KEY] = np.asarray(digest(arrays))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _weight_digest(arrays):
    return fileio.arrays_digest({k: v for k, v in arrays.items() if not k.startswith("__")})


def test_a_checkpoint_stores_and_checks_a_digest_of_its_weights(ckpt):
    model, path = ckpt
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["weights_sha256"] == checkpoint.weights_digest(model)
    assert checkpoint.read_meta(path) == {"stage": "float", "curve": [1.0, 2.0]}
    assert same_weights(checkpoint.load_model(path, Tiny(seed=9)), model)
    assert not hasattr(checkpoint, "atomic_write")  # one atomic writer: s2jax.io


def _first_kernel(arrays):
    return next(k for k in sorted(arrays) if k.endswith("kernel"))


@pytest.mark.parametrize("change, digest, message", [
    (lambda a: a[_first_kernel(a)].fill(np.nan), None, r"do not match their stored SHA-256 digest"),
    (lambda a: a.update({_first_kernel(a): a[_first_kernel(a)] * 1e6}), None, r"do not match their stored SHA-256"),
    (lambda a: a.update({_first_kernel(a): -a[_first_kernel(a)]}), None, r"do not match their stored SHA-256"),
    (lambda a: a[_first_kernel(a)].fill(np.nan), _weight_digest, r"weight '.*kernel' holds non-finite values"),
    (lambda a: a[_first_kernel(a)].fill(np.inf), _weight_digest, r"holds non-finite values"),
    (lambda a: a.pop(checkpoint.DIGEST_KEY), None, r"no valid SHA-256 digest of the weights"),
    (lambda a: a.update({checkpoint.DIGEST_KEY: np.asarray("0" * 63)}), None, r"no valid SHA-256 digest"),
    (lambda a: a.update({checkpoint.DIGEST_KEY: np.asarray([1, 2])}), None, r"must be a text scalar"),
    (lambda a: a.update({checkpoint.META_KEY: np.asarray("[1, 2]")}), None, r"metadata must be a JSON object"),
    (lambda a: a.update({checkpoint.META_KEY: np.asarray("{")}), None, r"metadata is not valid JSON"),
    (lambda a: a.update({"__extra__": np.zeros(2)}), None, r"do not match their stored SHA-256"),
])
def test_an_altered_checkpoint_is_refused(ckpt, change, digest, message):
    model, path = ckpt
    rewrite(path, change, digest=digest)
    with pytest.raises(CheckpointError, match=message) as err:
        checkpoint.load_model(path, target := Tiny(seed=9))
    assert str(err.value).startswith(str(path))
    assert same_weights(target, Tiny(seed=9))  # untouched
    with pytest.raises(CheckpointError, match=message):
        checkpoint.read_meta(path)


@pytest.mark.parametrize("cut", [0, 1, 10, 100, 0.3, 0.5, 0.9, -22, -1])
def test_a_truncated_checkpoint_is_a_checkpoint_error(ckpt, cut):
    _, path = ckpt
    data = path.read_bytes()
    n = int(cut * len(data)) if isinstance(cut, float) else cut % len(data) if cut < 0 else cut
    path.write_bytes(data[:n])
    for read in (checkpoint.read_meta, lambda p: checkpoint.load_model(p, Tiny())):
        with pytest.raises(CheckpointError, match=rf"^{path}: "):
            read(path)


@pytest.mark.parametrize("mask", [0xFF, 0x04])
@pytest.mark.parametrize("where", FRACTIONS + [-k for k in range(1, 23)])
def test_a_flipped_byte_in_a_checkpoint_loads_the_same_weights_or_is_refused(ckpt, where, mask):
    model, path = ckpt
    data = bytearray(path.read_bytes())
    offset = int(where * len(data)) if isinstance(where, float) else len(data) + where
    data[offset] ^= mask
    path.write_bytes(bytes(data))
    try:
        meta = checkpoint.read_meta(path)
        loaded = checkpoint.load_model(path, Tiny(seed=9))
    except CheckpointError as err:
        assert str(err).startswith(str(path))
    else:
        assert meta == {"stage": "float", "curve": [1.0, 2.0]} and same_weights(loaded, model)


def test_a_model_of_another_structure_is_refused_untouched(ckpt):
    _, path = ckpt
    other = Tiny(seed=1, width=4)
    with pytest.raises(ValueError, match="shape"):
        checkpoint.load_model(path, other)
    assert same_weights(other, Tiny(seed=1, width=4))


# --- resume with a corrupt checkpoint -------------------------------------------------------------


def _truncate(path):
    path.write_bytes(path.read_bytes()[:50])


def _nan_weights(path):
    rewrite(path, lambda a: a[_first_kernel(a)].fill(np.nan))


def _scaled_weights(path):
    rewrite(path, lambda a: a.update({_first_kernel(a): a[_first_kernel(a)] * 1e6}))


def _no_curve(path):
    rewrite(path, lambda a: a.update({checkpoint.META_KEY: np.asarray(json.dumps(
        {k: v for k, v in json.loads(str(a[checkpoint.META_KEY])).items() if k != "curve"}))}))


class FakeTrain:
    """Stands in for ``dqn.train``: counts calls, returns the model with new weights."""

    def __init__(self):
        self.calls = 0

    def __call__(self, config, model, q, progress=None, **kwargs):
        self.calls += 1
        fresh = Tiny(seed=100 + self.calls)
        nnx.update(model, nnx.state(fresh))
        return dqn.TrainResult(model, np.asarray([[10.0, 1.0, 2.0]]), 123.0, 0.5)


@pytest.mark.parametrize("damage", [_truncate, _nan_weights, _scaled_weights, _no_curve])
def test_dqn_resume_names_a_corrupt_checkpoint_and_trains_again(tmp_path, monkeypatch, capsys, damage):
    fake = FakeTrain()
    monkeypatch.setattr(dqn, "train", fake)
    config = dqn.DQNConfig(total_steps=1000)
    stage = lambda resume, quiet=False: dqn_pipeline._train_stage(  # noqa: E731
        "float", config, Tiny(), tmp_path, resume, quiet, {})
    model, _, rate, resumed, _ = stage(False)
    assert (fake.calls, resumed, rate) == (1, False, 123.0)
    again, curve, rate, resumed, _ = stage(True)
    assert (fake.calls, resumed, rate, curve.tolist()) == (1, True, 123.0, [[10.0, 1.0, 2.0]])
    assert same_weights(again, model)
    ck = tmp_path / "checkpoints" / "float.npz"
    damage(ck)
    capsys.readouterr()
    model2, _, _, resumed, _ = stage(True)
    err = capsys.readouterr().err
    assert (fake.calls, resumed) == (2, False)
    assert f"float stage: ignoring its checkpoint ({ck}" in err and "training the stage again" in err
    assert same_weights(checkpoint.load_model(ck, Tiny()), model2)  # replaced by the new weights
    damage(ck)
    stage(True, quiet=True)
    assert fake.calls == 3 and "ignoring" not in capsys.readouterr().err
    damage(ck)
    stage(False)  # without resume: trains and overwrites, says nothing
    assert fake.calls == 4 and "ignoring" not in capsys.readouterr().err
    assert checkpoint.read_meta(ck)["stage"] == "float"


def test_dvs_resume_names_a_corrupt_checkpoint_and_trains_again(tmp_path, capsys):
    fits = []

    def fit(model):
        fits.append(1)
        return [0.5]

    model, curve, resumed = dvs_pipeline._stage("qat", {"a": 1}, Tiny(), tmp_path, False, fit)
    assert (len(fits), resumed) == (1, False)
    assert dvs_pipeline._stage("qat", {"a": 1}, Tiny(seed=5), tmp_path, True, fit)[1:] == ([0.5], True)
    ck = tmp_path / "checkpoints" / "qat.npz"
    _nan_weights(ck)
    _, curve, resumed = dvs_pipeline._stage("qat", {"a": 1}, Tiny(), tmp_path, True, fit)
    assert (len(fits), resumed, curve) == (2, False, [0.5])
    assert f"qat stage: ignoring its checkpoint ({ck}: the weights do not match" in capsys.readouterr().err
    assert checkpoint.read_meta(ck) == {"stage": "qat", "config": {"a": 1}, "curve": [0.5]}


# --- atomic writes --------------------------------------------------------------------------------


@pytest.fixture
def fsyncs(monkeypatch):
    """Count os.fsync calls (still syncing)."""
    calls = []
    real = os.fsync

    def counting(fd):
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_every_writer_syncs_before_renaming(tmp_path, fsyncs):
    checkpoint.save_model(tmp_path / "ck", Tiny(), {"stage": "x"})
    assert len(fsyncs) >= 2  # the npz and the sidecar (plus their folder)
    fsyncs.clear()
    net = small_network()
    save_image(net, tmp_path / "net.s2img")
    assert len(fsyncs) >= 1 and load_image(tmp_path / "net.s2img").name == "small"
    fsyncs.clear()
    to_pyspinnaker2(net, tmp_path / "bundle", timesteps=4)
    assert len(fsyncs) >= 3  # network.json, arrays.npz, the script
    fsyncs.clear()
    key, doc = cache.cache_key("x", "train", {})
    cache.save_cached(tmp_path / "c.npz", np.ones((2, 1, 1, 2, 3), np.uint8), [0, 1], doc)
    assert len(fsyncs) >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "c.npz", "ck.json", "ck.npz", "net.s2img"]


def test_a_failed_write_leaves_no_temporary_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    model = Tiny()
    path = checkpoint.save_model(tmp_path / "ck", model, {"stage": "x"})
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_model(tmp_path / "ck", Tiny(seed=4), {"stage": "y"})
    with pytest.raises(OSError, match="disk full"):
        cache.save_cached(tmp_path / "c.npz", np.ones((1, 1, 1, 1, 1), np.uint8), [0], "doc")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.json", "ck.npz"]


def test_writing_into_a_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"the folder {tmp_path / 'nowhere'} does not exist"):
        save_image(small_network(), tmp_path / "nowhere" / "net.s2img")
    assert list(tmp_path.iterdir()) == []


def test_load_image_goes_through_fileio(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.s2img: no such board image file"):
        load_image(tmp_path / "nope.s2img")
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


def test_no_module_writes_files_behind_fileio():
    """Renames, temporary files and direct writes live only in s2jax/fileio.py (the generated board-side
    script, which needs only numpy, has its own)."""
    allowed = {SRC / "io.py", SRC / "export" / "pyspinnaker2" / "_script.py"}
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path in allowed:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if any(s in line for s in ("os.replace(", "os.rename(", "tempfile.", ".write_text(", ".write_bytes(",
                                       "mkstemp", "checkpoint.atomic_write")):
                found.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    # a bundle is assembled in a hidden folder, then the folder is renamed into place
    assert [f for f in found if not f.startswith("export/pyspinnaker2/_bundle.py")] == []


# --- dataset cache --------------------------------------------------------------------------------


@pytest.mark.parametrize("change", [
    lambda a: a.update(labels=np.asarray([True, False])),
    lambda a: a.update(shape=np.asarray([2, 1, 1, 2, -3])),
    lambda a: a.update(shape=np.asarray(["2", "1", "1", "2", "3"])),
    lambda a: a.update(spikes=a["spikes"].astype(np.int64)),
    lambda a: a.update(key=np.asarray(3)),
    lambda a: a.update(extra=np.zeros(1)),
])
def test_a_malformed_cache_file_is_rebuilt_with_a_warning(tmp_path, change):
    _, doc = cache.cache_key("x", "train", {})
    path = cache.save_cached(tmp_path / "c.npz", np.ones((2, 1, 1, 2, 3), np.uint8), [0, 1], doc)
    spikes, labels = cache.load_cached(path, doc)
    assert spikes.shape == (2, 1, 1, 2, 3) and labels.tolist() == [0, 1]
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.warns(UserWarning, match="ignoring the cache file"):
        assert cache.load_cached(path, doc) is None
    path.write_bytes(path.read_bytes()[:40])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cache.load_cached(path, doc) is None
    assert "corrupt or truncated" in str(caught[0].message)


# --- small compressed files that declare millions of rows (issue 11: no allocation beyond the limit) ---


def _measured(fn, seconds=5.0, megabytes=64):
    """The ValueError message of ``fn()``, raised quickly and with a small peak of traced allocations."""
    import time
    import tracemalloc

    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ValueError) as info:
            fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - t0 < seconds
    assert peak < megabytes * 2**20, f"peak {peak:,} bytes"
    return str(info.value)


def _compressed_bundle(bundle, target: Path, key: str, shape: tuple, meta=KEEP) -> Path:
    """A copy of the bundle whose arrays.npz (compressed, streamed: the test allocates nothing big)
    replaces ``key`` with int8 zeros of ``shape``."""
    import zipfile

    _, folder, _, arrays = bundle
    copy_bundle(folder, target, meta=meta)
    with zipfile.ZipFile(target / ARRAYS_FILE, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            if name != key:
                with zf.open(name + ".npy", "w") as f:
                    np.lib.format.write_array(f, arr, allow_pickle=False)
        with zf.open(key + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|i1", "fortran_order": False, "shape": shape})
            chunk, left = bytes(2**22), int(np.prod(shape))
            while left:
                f.write(chunk[:left])
                left -= min(left, len(chunk))
    assert (target / ARRAYS_FILE).stat().st_size < 2 * 2**20
    return target


def test_a_small_bundle_with_30m_spike_rows_is_refused_before_reading_them(bundle, tmp_path):
    folder = _compressed_bundle(bundle, tmp_path / "b", "pop0.spike_times", (30_000_000, 2))
    msg = _measured(lambda: load_pyspinnaker2(folder))
    assert ARRAYS_FILE in msg and "'pop0.spike_times'" in msg and "30,000,000 rows" in msg
    assert f"{snn.MAX_SPIKES:,} spike rows" in msg and "MAX_SPIKES" in msg


def test_a_small_bundle_with_more_connection_rows_than_stated_is_refused_before_reading(bundle, tmp_path):
    folder = _compressed_bundle(bundle, tmp_path / "b", "proj1.connections", (snn.MAX_SYNAPSES + 1, 4))
    msg = _measured(lambda: load_pyspinnaker2(folder))
    assert "'proj1.connections'" in msg and f"{snn.MAX_SYNAPSES + 1:,} rows" in msg and "4 rows" in msg


def test_a_bundle_stating_more_synapses_than_the_limit_is_refused_from_network_json(bundle, tmp_path):
    meta = json.loads(json.dumps(bundle[2]))
    meta["projections"][1]["synapses"] = 40_000_000
    meta["synapses"] += 40_000_000 - 4
    target = _compressed_bundle(bundle, tmp_path / "b", "proj1.connections", (40_000_000, 4), meta=meta)
    msg = _measured(lambda: load_pyspinnaker2(target))
    assert NETWORK_FILE in msg and "got 40000000" in msg and f"{snn.MAX_SYNAPSES:,}" in msg and "MAX_SYNAPSES" in msg


def test_a_bundle_with_many_spikes_rebuilds_them_without_a_loop_per_spike(tmp_path):
    rng = np.random.default_rng(0)
    ticks = {int(n): sorted(set(rng.integers(0, 10**6, 300).tolist())) for n in range(1000)}
    src = snn.Population(1000, "spike_list", ticks, name="src")
    net = snn.Network("many").add(src)
    folder = to_pyspinnaker2(net, tmp_path / "b", timesteps=8)
    import time

    t0 = time.perf_counter()
    back = load_pyspinnaker2(folder)
    assert time.perf_counter() - t0 < 5
    assert back.population("src").params == ticks and list(back.population("src").params) == list(ticks)


# --- board images: spike and synapse counts checked before the per-spike work ---------------------------


def _edit_image(path: Path, doc=None, spikes=None) -> Path:
    """Rewrite a board image (valid CRCs): the network section's JSON ``doc`` (a dict or raw bytes)
    and / or the spike pairs of PE 0."""
    from s2jax.export.image import _format as fmt

    _, sections = fmt._sections(path.read_bytes(), str(path))
    out = []
    for kind, ident, body, _ in sections:
        if kind == fmt.NETWORK and doc is not None:
            body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        if kind == fmt.PE and ident == 0 and spikes is not None:
            blocks = fmt._read_blocks(body, "pe")
            blocks["spikes"] = spikes
            body = b"".join(fmt._block(name, arr) for name, arr in blocks.items())
        out.append((kind, ident, body))
    path.write_bytes(fmt._pack(out, snn_spec()))
    return path


def snn_spec():
    from s2jax.spec import SPINNAKER2

    return SPINNAKER2


def _image_doc(path: Path) -> dict:
    from s2jax.export.image import _format as fmt

    _, sections = fmt._sections(path.read_bytes(), str(path))
    return json.loads(next(body for kind, _, body, _ in sections if kind == fmt.NETWORK))


def test_an_image_with_too_many_spike_pairs_is_refused_before_looping(tmp_path, monkeypatch):
    """One neuron with more spike pairs than MAX_SPIKES (lowered here to keep the file small)."""
    from s2jax.qnet import checks

    path = tmp_path / "s.s2img"
    save_image(small_network(), path)
    pairs = np.stack([np.zeros(5000, "<u4"), np.arange(5000, dtype="<u4")], 1)
    _edit_image(path, spikes=pairs)
    monkeypatch.setattr(checks, "MAX_SPIKES", 1000)
    with pytest.raises(ImageError, match=r"population 'img': 5,000 spike entries exceed the limit of 1,000 "
                                         r"per spike_list population \(MAX_SPIKES\)") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_an_image_with_many_spike_pairs_decodes_them_quickly(tmp_path):
    """400,000 pairs for one neuron (within MAX_SPIKES): grouped without a loop per spike, so the
    mapping check (this neuron needs a PE of its own) refuses the image quickly and in little memory."""
    path = tmp_path / "s.s2img"
    save_image(small_network(), path)
    n = 400_000
    pairs = np.stack([np.zeros(n, "<u4"), np.arange(n, dtype="<u4")], 1)
    _edit_image(path, spikes=pairs)
    msg = _measured(lambda: load_image(path), seconds=5.0, megabytes=64)
    assert msg.startswith(f"{path}: the PE sections hold slices")


def test_an_image_stating_more_synapses_than_the_limit_is_refused(tmp_path):
    path = tmp_path / "s.s2img"
    save_image(small_network(), path)
    doc = _image_doc(path)
    dense = next(jd for jd in doc["projections"] if jd["kind"] == "dense")
    dense["synapses"] = snn.MAX_SYNAPSES + 1
    _edit_image(path, doc=doc)
    with pytest.raises(ImageError, match=r"16,777,217 synapses; expected 0 to 16,777,216 \(MAX_SYNAPSES"):
        load_image(path)


def test_an_image_whose_network_json_is_nested_too_deeply_names_the_file(tmp_path):
    path = tmp_path / "s.s2img"
    save_image(small_network(), path)
    _edit_image(path, doc=b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(ImageError, match="nested too deeply") as info:
        load_image(path)
    assert str(info.value).startswith(f"{path}: network section")


@pytest.mark.parametrize("name", ["n" * 300, "bad\udc80name"], ids=["long", "surrogate"])
def test_an_image_or_bundle_with_an_unstorable_network_name_is_refused(bundle, tmp_path, name):
    path = tmp_path / "s.s2img"
    save_image(small_network(), path)
    doc = _image_doc(path)
    doc["name"] = name
    _edit_image(path, doc=doc)
    with pytest.raises(ImageError, match="MAX_NAME_LENGTH|UTF-8") as info:
        load_image(path)
    assert len(str(info.value)) < 1000
    _, folder, meta, _ = bundle
    target = copy_bundle(folder, tmp_path / "b", meta={**meta, "network": name})
    with pytest.raises(FileFormatError, match="MAX_NAME_LENGTH|UTF-8"):
        load_pyspinnaker2(target)


# --- special files (FIFOs): refused by name, never opened, never replaced -------------------------


def test_fileio_readers_refuse_a_fifo_by_name_without_opening_it(tmp_path):
    import threading

    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)

    def unblock():  # should a reader open the FIFO (a regression), end its read instead of hanging
        with open(fifo, "wb"):
            pass

    writer = threading.Thread(target=unblock, daemon=True)
    writer.start()
    try:
        for read in (fileio.read_bytes, fileio.load_json, fileio.load_npz):
            with pytest.raises(FileFormatError, match="is a named pipe \\(FIFO\\), not a regular file") as info:
                read(fifo)
            assert str(info.value).startswith(str(fifo))
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(5)


def test_atomic_write_never_replaces_a_fifo(tmp_path):
    import stat

    fifo = tmp_path / "out.bin"
    os.mkfifo(fifo)
    with pytest.raises(FileExistsError, match="is a named pipe \\(FIFO\\), not a regular file") as info:
        fileio.atomic_write_bytes(fifo, b"data")
    assert str(info.value).startswith(str(fifo))
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temporary file left
    assert fileio.special_file_kind(fifo) == "a named pipe (FIFO)"
    assert fileio.special_file_kind(tmp_path) is None and fileio.special_file_kind(tmp_path / "missing") is None
