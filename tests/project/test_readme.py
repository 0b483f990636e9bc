"""The README holds exactly two set-up commands, and CI runs the second one."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setup_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for b in blocks for line in b.splitlines() if line.strip() and not line.startswith("#")]


def test_two_setup_commands_and_ci_runs_the_test_one():
    commands = setup_commands()
    assert len(commands) == 2, commands
    assert commands[0].endswith("s2jax demo")
    assert "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_quickstart_runs(capsys):
    from s2jax.quickstart import main

    result = main(timesteps=30)
    out = capsys.readouterr().out
    assert "hidden" in out and "sample-ticks/s" in out
    assert result["hidden"] and set(result["readout_v"]) == {0, 1}
