"""The ``s2jax`` command: check, inspect, export and simulate, on bundles, images and NIR files."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from s2jax import hwmodel
from s2jax import qnet as snn
from s2jax.cli import load_network, main
from s2jax.export import image, pyspinnaker2


def network():
    inp = snn.Population(3, "spike_list", {0: [0, 1, 2, 5], 2: [3, 4]}, name="in")
    hid = snn.Population(4, "lif", {"threshold": 8.0, "alpha_decay": 0.9}, name="hid", record=["spikes", "v"])
    out = snn.Population(2, "lif_no_delay", {"threshold": 5.0}, name="out", record=["spikes", "v"])
    return snn.Network("cli").add(
        inp, hid, out,
        snn.Projection(inp, hid, [[0, 0, 15, 0], [0, 1, 9, 2], [2, 3, 12, 1], [2, 2, -4, 0]]),
        snn.Projection(hid, out, [[0, 0, 100, 0], [3, 1, 90, 0]]))


@pytest.fixture
def files(tmp_path):
    net = network()
    img = tmp_path / "net.s2img"
    image.save_image(net, img)
    bundle = pyspinnaker2.to_pyspinnaker2(net, tmp_path / "bundle", timesteps=12)
    return net, img, bundle


def test_check_inspect_and_simulate_an_image_and_a_bundle(files, capsys, tmp_path):
    net, img, bundle = files
    for f in (img, bundle):
        assert main(["check", str(f)]) == 0
        assert "OK: the chip can run this network" in capsys.readouterr().out
        assert main(["inspect", str(f)]) == 0
        out = capsys.readouterr().out
        assert "hid" in out and "lif_no_delay" in out and "nJ per tick" in out
        assert main(["simulate", str(f), "--timesteps", "12", "--out", str(tmp_path / "r.npz")]) == 0
        assert "12 ticks" in capsys.readouterr().out
        sim = hwmodel.Simulator()
        sim.run(net, 12)
        with np.load(tmp_path / "r.npz", allow_pickle=False) as r:
            np.testing.assert_array_equal(r["spikes/hid"], np.asarray(sim.last_trace.spikes["hid"][0]))
            np.testing.assert_array_equal(r["voltages/out"], np.asarray(sim.last_trace.voltages["out"][0]))


def test_export_between_formats(files, tmp_path, capsys):
    net, img, bundle = files
    assert main(["export", str(bundle), "--to", "image", "--out", str(tmp_path / "again.s2img")]) == 0
    assert (tmp_path / "again.s2img").read_bytes() == img.read_bytes()
    assert main(["export", str(img), "--to", "pyspinnaker2", "--out", str(tmp_path / "b2"), "--timesteps", "5"]) == 0
    assert (tmp_path / "b2" / "run_on_spinnaker2.py").exists()
    assert main(["export", str(img), "--to", "nir", "--out", str(tmp_path / "net.nir")]) == 0
    back = load_network(tmp_path / "net.nir")
    a, b = hwmodel.Simulator(), hwmodel.Simulator()
    a.run(net, 15)
    b.run(back, 15)
    for name in ("hid", "out"):
        np.testing.assert_array_equal(np.asarray(a.last_trace.spikes[name]), np.asarray(b.last_trace.spikes[name]))
        np.testing.assert_array_equal(np.asarray(a.last_trace.voltages[name]),
                                      np.asarray(b.last_trace.voltages[name]))


def test_check_reports_violations_with_exit_status_1(tmp_path, capsys):
    pops = [snn.Population(250, "lif_no_delay", name=f"p{i}") for i in range(153)]
    img = tmp_path / "big.s2img"
    image.save_image(snn.Network("big").add(*pops), img)
    assert main(["check", str(img)]) == 1
    out = capsys.readouterr().out
    assert "[chips]" in out and "needs 153 PEs on 2 chips" in out
    assert main(["check", str(img), "--chips", "2"]) == 0


@pytest.mark.parametrize("content", [None, b"not a network at all", b"S2IMG\r\n\x1a" + b"\0" * 10])
def test_bad_input_gives_one_line_and_status_2(tmp_path, capsys, content):
    f = tmp_path / "bad.bin"
    if content is not None:
        f.write_bytes(content)
    assert main(["check", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("s2jax check: error:") and "\n" not in err


def test_console_script_help_and_a_check(files):
    """The installed ``s2jax`` command (as the README shows), in a fresh process."""
    _, img, _ = files
    exe = Path(sys.executable).parent / "s2jax"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "s2jax.cli"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    help_text = subprocess.run([*cmd, "--help"], capture_output=True, text=True, env=env, check=True).stdout
    for word in ("check", "inspect", "export", "simulate"):
        assert word in help_text
    done = subprocess.run([*cmd, "check", str(img)], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "OK" in done.stdout
    bad = subprocess.run([*cmd, "check", str(img) + ".missing"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "no such file" in bad.stderr and bad.stderr.count("\n") == 1


def test_numbers_must_be_positive(files, capsys):
    _, img, _ = files
    for argv in (["simulate", str(img), "--timesteps", "0"], ["demo", "--episodes", "0"], ["check", str(img), "--chips", "-1"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert "expected a positive integer" in capsys.readouterr().err


def test_simulate_names_the_npz_it_wrote(files, tmp_path, capsys):
    _, img, _ = files
    assert main(["simulate", str(img), "--timesteps", "5", "--out", str(tmp_path / "sim")]) == 0
    assert (tmp_path / "sim.npz").exists() and f"wrote {tmp_path / 'sim.npz'}" in capsys.readouterr().out
