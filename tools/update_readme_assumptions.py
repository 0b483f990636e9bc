"""Rewrite the README's assumptions table from ChipSpec (everything after the '## Assumptions' intro)."""

from pathlib import Path

from s2jax.spec import assumptions_table

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text()
head, _, rest = text.partition("\n| field | value | meaning | source |")
tail = rest.split("\n\n", 1)[1] if "\n\n" in rest else ""
readme.write_text(head + "\n" + assumptions_table() + "\n" + ("\n" + tail if tail else ""))
