"""Generated bad input across every door a user's file or value comes in by.

Each case is one mutation of a valid file (truncation, bit flip, byte overwrite, zero fill), one
malformed value for the qnet API, or one CLI call on such a file. For every case exactly one of
these holds, and anything else fails the test:

- the input is refused with a ``ValueError`` (``FileFormatError``, ``ImageError``, ``NIRFileError``
  and ``DesignRuleError`` are ValueErrors) whose message is not empty;
- it loads, and what loaded is a valid network (for images and checkpoints, whose content is
  covered by CRCs and digests: the very network that was written);

and the case allocates no more than :data:`ALLOC_LIMIT` bytes on the way (measured with
``tracemalloc``, which sees NumPy's buffers). CLI calls never let an exception escape: exit 0, 1
or 2, and a refusal is one line on stderr.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from s2jax import qnet as snn
from s2jax.cli import main
from s2jax.export import image, pyspinnaker2
from s2jax.export import nir as s2nir
from s2jax.export.rules import check

ALLOC_LIMIT = 256 * 1024**2
SEED = 20261130


def network():
    inp = snn.Population(4, "spike_list", {0: [0, 2, 5], 1: [1], 3: [3, 4]}, name="in")
    hid = snn.Population(6, "lif", {"threshold": [8.0, 9.0, 7.5, 8.0, 6.0, 10.0], "alpha_decay": 0.9},
                         name="hid", record=["spikes", "v"])
    cub = snn.Population(3, "lif_curr_exp", {"threshold": 5.0, "exc_decay": 0.5, "inh_decay": 0.25,
                                             "t_refrac": 2}, name="cub", record=["spikes"])
    out = snn.Population(2, "lif_no_delay", {"threshold": 5.0}, name="out", record=["spikes", "v"])
    return snn.Network("fuzz").add(
        inp, hid, cub, out,
        snn.Projection(inp, hid, [[0, 0, 15, 0], [0, 1, 9, 2], [2, 3, 12, 1], [3, 5, -4, 7], [1, 4, 7, 3]]),
        snn.Projection(hid, cub, [[0, 0, 11, 1], [5, 2, -6, 0], [3, 1, 4, 4]]),
        snn.Projection(hid, out, [[0, 0, 100, 0], [3, 1, 90, 0], [4, 1, -20, 0]]),
        snn.Projection(cub, out, [[1, 0, 50, 0]]),
    )


def fingerprint(net) -> tuple:
    """Everything that makes two networks run alike, as comparable Python values."""
    pops = []
    for p in net.populations:
        if p.neuron_model == "spike_list":
            params = tuple(sorted((int(k), tuple(v)) for k, v in p.params.items() if len(v)))
        else:
            params = tuple(sorted((k, v if isinstance(v, str) else tuple(p.param_array(k).tolist()))
                                  for k, v in p.params.items()))
        pops.append((p.name, p.neuron_model, p.size, params))
    projs = sorted((q.pre.name, q.post.name, tuple(map(tuple, np.asarray(q.connections).tolist())))
                   for q in net.projections)
    return tuple(pops), tuple(projs)


def mutations(data: bytes, n: int, rng) -> list[tuple[str, bytes]]:
    """``n`` damaged copies of ``data``: truncations, bit flips, overwritten runs, zeroed runs."""
    out = []
    size = len(data)
    for i in range(n):
        kind = i % 4
        if kind == 0:
            cut = int(rng.integers(0, size))
            out.append((f"truncate@{cut}", data[:cut]))
        elif kind == 1:
            pos, bit = int(rng.integers(0, size)), int(rng.integers(0, 8))
            b = bytearray(data)
            b[pos] ^= 1 << bit
            out.append((f"flip@{pos}.{bit}", bytes(b)))
        elif kind == 2:
            pos, run = int(rng.integers(0, size)), int(rng.integers(1, 16))
            b = bytearray(data)
            b[pos:pos + run] = rng.integers(0, 256, size=len(b[pos:pos + run]), dtype=np.uint8).tobytes()
            out.append((f"garble@{pos}+{run}", bytes(b)))
        else:
            pos, run = int(rng.integers(0, size)), int(rng.integers(1, 64))
            b = bytearray(data)
            b[pos:pos + run] = bytes(len(b[pos:pos + run]))
            out.append((f"zero@{pos}+{run}", bytes(b)))
    return out


def guarded(fn):
    """``(result, error)`` of ``fn()``; fails on an exception that is not a ValueError, on an empty
    message, or on an allocation peak above ALLOC_LIMIT."""
    tracemalloc.start()
    try:
        try:
            result, error = fn(), None
        except ValueError as err:
            result, error = None, err
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= ALLOC_LIMIT, f"allocated {peak:,} bytes, limit {ALLOC_LIMIT:,}"
    if error is not None:
        assert str(error).strip(), f"{type(error).__name__} without a message"
    return result, error


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("originals")
    net = network()
    image.save_image(net, folder / "net.s2img")
    pyspinnaker2.to_pyspinnaker2(net, folder / "bundle", timesteps=10)
    import nir

    nir.write(folder / "net.nir", s2nir.to_nir(net))
    return net, folder


# --- board images: CRCs cover everything, so a loaded image is the written network -----------------

@pytest.mark.parametrize("case", range(60))
def test_damaged_image_is_refused_or_identical(case, originals, tmp_path):
    net, folder = originals
    data = (folder / "net.s2img").read_bytes()
    label, bad = mutations(data, 60, np.random.default_rng(SEED))[case]
    path = tmp_path / "bad.s2img"
    path.write_bytes(bad)
    loaded, error = guarded(lambda: image.load_image(path))
    if error is None:
        assert fingerprint(loaded) == fingerprint(net), label


# --- py-spinnaker2 bundles: arrays under CRC, network.json validated field by field ------------------


def _damaged_bundle(originals, tmp_path, which: str, case: int, n: int):
    import shutil

    _, folder = originals
    bundle = tmp_path / "bundle"
    shutil.copytree(folder / "bundle", bundle)
    target = bundle / which
    label, bad = mutations(target.read_bytes(), n, np.random.default_rng(SEED + case))[case]
    target.write_bytes(bad)
    return bundle, label


@pytest.mark.parametrize("case", range(40))
def test_damaged_bundle_arrays_are_refused_or_identical(case, originals, tmp_path):
    net, _ = originals
    bundle, label = _damaged_bundle(originals, tmp_path, pyspinnaker2.ARRAYS_FILE, case, 40)
    loaded, error = guarded(lambda: pyspinnaker2.load_pyspinnaker2(bundle))
    if error is None:
        assert fingerprint(loaded) == fingerprint(net), label


@pytest.mark.parametrize("case", range(40))
def test_damaged_bundle_json_is_refused_or_valid(case, originals, tmp_path):
    bundle, label = _damaged_bundle(originals, tmp_path, pyspinnaker2.NETWORK_FILE, case, 40)
    loaded, error = guarded(lambda: pyspinnaker2.load_pyspinnaker2(bundle))
    if error is None:  # JSON has no checksum: a changed digit may load, but only as a valid network
        guarded(lambda: check(loaded))


# --- NIR files (HDF5) ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", range(40))
def test_damaged_nir_is_refused_or_valid(case, originals, tmp_path):
    _, folder = originals
    label, bad = mutations((folder / "net.nir").read_bytes(), 40, np.random.default_rng(SEED + 7))[case]
    path = tmp_path / "bad.nir"
    path.write_bytes(bad)
    loaded, error = guarded(lambda: s2nir.from_nir(path, output="qnet"))
    if error is None:  # HDF5 has no checksum over the data: a loaded network must still be valid
        guarded(lambda: check(loaded))


# --- checkpoints: a digest of the weights is stored with them ---------------------------------------


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    from s2jax.recipes import checkpoint, dqn

    config = dqn.DQNConfig(hidden=(8,), ticks=2)
    model = dqn.make_qnet(config, 4, 2)
    path = checkpoint.save_model(tmp_path_factory.mktemp("ckpt") / "float", model, {"stage": "float"})
    return path, config, checkpoint.weights_digest(model)


@pytest.mark.parametrize("case", range(30))
def test_damaged_checkpoint_is_refused_or_identical(case, saved_checkpoint, tmp_path):
    from s2jax.recipes import checkpoint, dqn

    path, config, digest = saved_checkpoint
    label, bad = mutations(path.read_bytes(), 30, np.random.default_rng(SEED + 11))[case]
    target = tmp_path / "float.npz"
    target.write_bytes(bad)
    loaded, error = guarded(lambda: checkpoint.load_model(target, dqn.make_qnet(config, 4, 2)))
    if error is None:
        assert checkpoint.weights_digest(loaded) == digest, label


# --- the qnet API: malformed values are ValueErrors naming what is wrong -----------------------------

BAD_POPULATIONS = [
    (0, "lif", {}), (-3, "lif", {}), (2.5, "lif", {}), ("4", "lif", {}), (True, "lif", {}),
    (2**32 - 1, "spike_list", {}), (10**11, "lif", {}), (4, "lif ", {}), (4, None, {}), (4, ["lif"], {}),
    (4, "lif", {"threshold": "1.0"}), (4, "lif", {"threshold": True}), (4, "lif", {"alpha_decay": [0.9] * 3}),
    (4, "lif", {"alpha_decay": float("nan")}), (4, "lif", {"i_offset": 1e39}), (4, "lif", {"reset": "zero"}),
    (4, "lif", {"v_reset": "a"}), (4, "lif", {"tau": 1.0}), (4, "lif", []), (4, "lif", "threshold"),
    (4, "lif_curr_exp", {"t_refrac": 1.5}), (4, "lif_curr_exp", {"t_refrac": -1}),
    (4, "spike_list", {0: ["3"]}), (4, "spike_list", {0: [-1]}), (4, "spike_list", {4: [1]}),
    (4, "spike_list", {0: [1.5]}), (4, "spike_list", {"0": [1]}), (4, "spike_list", {0: [[1, 2]]}),
    (4, "spike_list", {0: "12"}), (4, "spike_list", [[0, 1]]),
]


@pytest.mark.parametrize("size, model, params", BAD_POPULATIONS)
def test_bad_population_is_a_value_error(size, model, params):
    _, error = guarded(lambda: snn.Population(size, model, params, name="p"))
    assert error is not None, f"accepted Population({size!r}, {model!r}, {params!r})"


BAD_NAMES = [["a"], {"a": 1}, 3, 1.5, b"x", ("a",)]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_population_and_network_names_must_be_strings(name):
    _, error = guarded(lambda: snn.Population(2, "lif", name=name))
    assert error is not None
    _, error = guarded(lambda: snn.Network(name))
    assert error is not None


GOOD_CONN = [[0, 0, 1, 0]]
BAD_PROJECTIONS = [
    ("a", "post", GOOD_CONN), ("pre", None, GOOD_CONN), ("pre", 3, GOOD_CONN), (["pre"], "post", GOOD_CONN),
    ("pre", "post", [[0, 0, 1]]), ("pre", "post", [[0, 4, 1, 0]]), ("pre", "post", [[0, 0, 1.5, 0]]),
    ("pre", "post", [[0, 0, 16, 0]]), ("pre", "post", [[0, 0, 1, 8]]), ("pre", "post", [[-1, 0, 1, 0]]),
    ("pre", "post", [["a", 0, 1, 0]]), ("pre", "post", "0,0,1,0"), ("pre", "post", [[0, 0, float("inf"), 0]]),
    ("pre", "post", [[0, 0, True, 0]]),
]


@pytest.mark.parametrize("pre, post, conn", BAD_PROJECTIONS)
def test_bad_projection_is_a_value_error(pre, post, conn):
    pops = {"pre": snn.Population(2, "spike_list", {}, name="pre"), "post": snn.Population(2, "lif", name="post")}
    a, b = (pops[x] if isinstance(x, str) and x in pops else x for x in (pre, post))
    _, error = guarded(lambda: snn.Projection(a, b, conn))
    assert error is not None, f"accepted Projection({pre!r}, {post!r}, {conn!r})"


# --- the CLI: never a traceback ----------------------------------------------------------------------


@pytest.mark.parametrize("case", range(30))
def test_cli_on_damaged_files_exits_cleanly(case, originals, tmp_path, capsys):
    _, folder = originals
    sources = ["net.s2img", "net.nir", "bundle/" + pyspinnaker2.ARRAYS_FILE, "bundle/" + pyspinnaker2.NETWORK_FILE]
    source = sources[case % len(sources)]
    label, bad = mutations((folder / source).read_bytes(), 30, np.random.default_rng(SEED + 13))[case]
    if source.startswith("bundle/"):
        import shutil

        shutil.copytree(folder / "bundle", tmp_path / "bundle")
        target = arg = tmp_path / "bundle"
        (target / Path(source).name).write_bytes(bad)
    else:
        arg = tmp_path / source
        arg.write_bytes(bad)
    command = ["check", "inspect", "simulate"][case % 3]
    argv = [command, str(arg)] + (["--timesteps", "5"] if command == "simulate" else [])
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (0, 1, 2), label
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (label, err)


@pytest.mark.parametrize("argv", [
    ["check", "{tmp}"], ["check", "{tmp}/missing.nir"], ["inspect", "{tmp}/empty.bin"],
    ["simulate", "{tmp}/empty.bin", "--timesteps", "3"], ["check", "{tmp}/random.bin"],
    ["export", "{tmp}/random.bin", "--to", "image", "--out", "{tmp}/o.s2img"],
    ["simulate", "{img}", "--timesteps", "1000000000"],
    ["export", "{img}", "--to", "image", "--out", "{tmp}/no/such/folder/o.s2img"],
    ["export", "{img}", "--to", "nir", "--out", "{tmp}/no/such/folder/o.nir"],
    ["export", "{img}", "--to", "pyspinnaker2", "--out", "{tmp}/no/such/folder/b"],
])
def test_cli_refuses_bad_arguments_in_one_line(argv, originals, tmp_path, capsys):
    _, folder = originals
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes())
    argv = [a.format(tmp=tmp_path, img=folder / "net.s2img") for a in argv]
    code, _ = guarded(lambda: main(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) >= 1 and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*")), "a temporary file was left behind"
