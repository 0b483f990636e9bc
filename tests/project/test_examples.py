"""Every script in examples/ runs end to end on tiny settings, in its own process, and writes and prints
what it says it does.

A new example needs an entry in ``RUNS`` (the tiny command line that runs it in seconds), or
``test_every_example_has_a_tiny_run`` fails.
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


class Run(NamedTuple):
    argv: list  # the tiny command line; "{out}" stands for a fresh output folder
    writes: list  # files under that folder the example says it writes
    prints: list  # text its printed table or summary holds
    settings: dict  # summary.json "settings" (or the JSON result) items that show the tiny flags arrived


def dqn_run(bits: int, env: str) -> Run:
    return Run(
        ["--out", "{out}", "--tiny", "--steps", "64", "--qat-steps", "32", "--episodes", "2", "--weights", str(bits)],
        ["summary.json", "learning_curve.png", "returns.png", "return_distribution.png", "checkpoints/float.npz",
         f"checkpoints/qat_{bits}bit.npz", f"{bits}bit/qnet.nir", f"{bits}bit/qnet.s2img",
         f"{bits}bit/pyspinnaker2/network.json", f"{bits}bit/pyspinnaker2/run_on_spinnaker2.py",
         f"{bits}bit/spike_raster.png"],
        [f"s2jax demo: spiking DQN on {env}, mean greedy return over 2 episodes", f"{bits}-bit (", "files:"],
        {"env": env, "total_steps": 64, "qat_steps": 32, "weights": [bits], "hidden": [8], "num_envs": 4})


RUNS = {
    "quickstart.py": Run(["--timesteps", "20"], [],
                         ["20 ticks, float32 profile", "readout voltage", "sample-ticks/s"], {}),
    "dqn_cartpole.py": dqn_run(8, "CartPole-v1"),
    "dqn_acrobot.py": dqn_run(4, "Acrobot-v1"),
    "dqn_custom_env.py": dqn_run(8, "MountainCar-v0"),
    "dvs_gesture.py": Run(
        ["--out", "{out}", "--tiny", "--epochs", "1", "--qat-epochs", "1", "--quiet"],
        ["summary.json", "dvs_gesture.nir", "pyspinnaker2/network.json", "pyspinnaker2/run_on_spinnaker2.py",
         "checkpoints/float.npz", "checkpoints/qat.npz", "learning_curve.png", "ptq_sweep.png", "accuracy.png",
         "spikes.png"],
        ["s2jax DVS gesture: synthetic", "(32 train / 8 val / 16 test)", "QAT forward == chip model", "files:"],
        {"dataset": "synthetic", "n_train": 40, "epochs": 1, "qat_epochs": 1}),
    "egru_language_model.py": Run(
        ["--out", "{out}/lm.json", "--tiny", "--steps", "5", "--qat-steps", "3", "--hidden", "16"],
        ["lm.json"],
        ["20,000 characters", "integer QAT EGRU      perplexity", "chip per character", "wrote "],
        {"chars": 20_000}),
}


def test_every_example_has_a_tiny_run():
    assert set(RUNS) == {p.name for p in EXAMPLES.glob("*.py")}


def run_example(name: str, folder: Path):
    """Run ``examples/name`` on its tiny command line with ``folder`` as the current folder."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    argv = [a.replace("{out}", str(folder / "out")) for a in RUNS[name].argv]
    return subprocess.run([sys.executable, str(EXAMPLES / name), *argv], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def started(request, tmp_path_factory):
    """The selected examples' runs, two at a time (most of a run is single-threaded compilation)."""
    calls = (getattr(item, "callspec", None) for item in request.session.items if item.module is request.module)
    names = sorted({c.params["name"] for c in calls if c is not None and "name" in c.params})  # -k runs only those
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {n: (pool.submit(run_example, n, folder), folder)
                   for n in names for folder in [tmp_path_factory.mktemp(n.removesuffix(".py"))]}
        yield futures
        pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_runs_and_writes_what_it_says(name, started):
    future, folder = started[name]
    done, run, out = future.result(), RUNS[name], folder / "out"
    assert done.returncode == 0, f"{name} exited with {done.returncode}:\n{done.stderr[-4000:]}"
    for text in run.prints:
        assert text in done.stdout, f"{name} did not print {text!r}:\n{done.stdout}"
    missing = [f for f in run.writes if not (out / f).is_file()]
    assert not missing, f"{name} did not write {missing}; {out} holds {sorted(map(str, out.rglob('*')))}"
    if not run.writes:
        assert not any(folder.iterdir()), f"{name} wrote {sorted(map(str, folder.rglob('*')))}"
        return
    result = json.loads((out / run.writes[0]).read_text())
    for listed in result.get("files", []):  # every file the summary lists is there (paths relative to cwd)
        assert (folder / listed).exists(), f"{name}: summary.json lists {listed}, which is missing"
    shown = {**result, **result.get("settings", {})}
    assert {k: shown.get(k) for k in run.settings} == run.settings
