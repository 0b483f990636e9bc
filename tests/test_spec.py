"""ChipSpec: immutable, hashable, every field sourced; the README's assumptions table is current."""

import dataclasses
from pathlib import Path

import pytest

from s2jax import SPINNAKER2, ChipSpec
from s2jax.spec import assumptions_table, provenance

README = Path(__file__).resolve().parents[1] / "README.md"


def test_frozen_and_hashable():
    assert hash(SPINNAKER2) == hash(ChipSpec())
    with pytest.raises(dataclasses.FrozenInstanceError):
        SPINNAKER2.max_delay = 3
    other = dataclasses.replace(SPINNAKER2, cuba_current_order="previous")
    assert other != SPINNAKER2 and hash(other) != hash(SPINNAKER2)


def test_every_field_has_provenance():
    for f in dataclasses.fields(ChipSpec):
        assert f.metadata.get("tag") in ("V", "P", "A"), f.name
        assert f.metadata.get("source") and f.metadata.get("doc"), f.name
    assert provenance("max_delay")["tag"] == "V"
    assert provenance("fused_multiply_add")["tag"] == "A"


def test_facts_of_the_chip():
    s = SPINNAKER2
    assert (s.pes_per_chip, s.sram_per_pe_bytes, s.routing_entries_per_chip, s.max_delay) == (152, 131072, 16384, 7)
    assert s.weight_range("lif") == (-15, 15) and s.weight_range("lif_no_delay") == (-127, 127)
    with pytest.raises(ValueError, match="takes no synapses"):
        s.weight_range("spike_list")


def test_invalid_assumptions_rejected():
    with pytest.raises(ValueError, match="cuba_current_order"):
        ChipSpec(cuba_current_order="later")
    with pytest.raises(ValueError, match="not implemented"):
        ChipSpec(fused_multiply_add=True)


def test_readme_carries_the_generated_assumptions_table():
    assert assumptions_table() in README.read_text(), (
        "README's assumptions table is stale: run python tools/update_readme_assumptions.py")
