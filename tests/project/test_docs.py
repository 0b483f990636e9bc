"""The API reference (docs/api) builds offline with warnings as errors and misses no public name.

One Sphinx build per test session (about 10 s, the jax import included); the tests then read its
``objects.inv`` (every object the reference documents) and its HTML pages.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import s2jax

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api"


def public_modules() -> list[str]:
    names = [info.name for info in pkgutil.walk_packages(s2jax.__path__, "s2jax.")]
    public = [name for name in names if not any(part.startswith("_") for part in name.split("."))]
    # an earlier name that *is* another module (s2jax.fileio is s2jax.io) is documented there
    return ["s2jax"] + [name for name in public if importlib.import_module(name).__name__ == name]


def public_names(module) -> list[str]:
    """``__all__``, or else the public functions and classes the module defines."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
            and obj.__module__ == module.__name__]


def read_inventory(path: Path) -> dict[str, set[str]]:
    """``objects.inv`` as ``{name: {"domain:role", ...}}`` (4 header lines, then zlib-compressed lines)."""
    data = path.read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    entries = {}
    for line in zlib.decompress(data[header_end:]).decode().splitlines():
        name, role = line.split(None, 2)[:2]
        entries.setdefault(name, set()).add(role)
    return entries


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    try:
        import sphinx  # noqa: F401
    except ImportError:
        pytest.fail('Sphinx is missing: pip install -e ".[test]" (or ".[docs]") installs it')
    out = tmp_path_factory.mktemp("api-html")
    cmd = [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
           "-d", str(out / ".doctrees"), str(DOCS), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"sphinx build failed (warnings are errors):\n{proc.stderr[-8000:]}"
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
    return out, read_inventory(out / "objects.inv")


def test_reference_builds_with_warnings_as_errors(built):
    out, inventory = built
    assert (out / "index.html").is_file()
    assert len(inventory) > 100


@pytest.mark.parametrize("module_name", public_modules())
def test_every_public_module_is_in_the_reference(built, module_name):
    _, inventory = built
    assert "py:module" in inventory.get(module_name, ()), f"{module_name} has no section in docs/api"


@pytest.mark.parametrize("module_name", public_modules())
def test_every_public_name_is_documented(built, module_name):
    """Each public name is documented under its own name, or (a re-export) under another public one."""
    _, inventory = built
    module = importlib.import_module(module_name)
    documented_objects = {}
    for other in public_modules():
        other_module = importlib.import_module(other)
        for attr in public_names(other_module):
            if f"{other}.{attr}" in inventory:
                documented_objects.setdefault(id(getattr(other_module, attr)), f"{other}.{attr}")
    missing = []
    for attr in public_names(module):
        obj = getattr(module, attr)
        if inspect.ismodule(obj):
            found = "py:module" in inventory.get(obj.__name__, ())
        else:
            # plain values (numbers, text) must be documented in place: their identity means nothing
            is_value = isinstance(obj, (int, float, complex, str, bytes, type(None)))
            found = f"{module_name}.{attr}" in inventory or (not is_value and id(obj) in documented_objects)
        if not found:
            missing.append(attr)
    assert not missing, f"{module_name}: public names missing from docs/api: {missing}"


@pytest.mark.parametrize("page, names", [
    ("layers.html", ["s2jax.layers.encoders.rate", "s2jax.layers.encoders.latency", "s2jax.layers.encoders.population",
                     "s2jax.layers.losses.rate_cross_entropy", "s2jax.layers.LIF", "s2jax.layers.EGRU"]),
    ("surrogates.html", ["s2jax.surrogates.FastSigmoid", "s2jax.surrogates.spike"]),
    ("quant.html", ["s2jax.quant.qat", "s2jax.quant.quantize", "s2jax.quant.QuantConfig", "s2jax.quant.ste_round"]),
    ("recipes.html", ["s2jax.recipes.dqn", "s2jax.recipes.dqn_pipeline", "s2jax.recipes.dvs",
                      "s2jax.recipes.dvs_pipeline", "s2jax.recipes.egru_lm", "s2jax.recipes.checkpoint"]),
    ("s2jax.html", ["s2jax.ChipSpec", "s2jax.SPINNAKER2", "pes_per_chip"]),
    ("cli.html", ["s2jax.cli.main", "usage: s2jax", "s2jax check --help"]),
])
def test_key_pages_document(built, page, names):
    out, _ = built
    html = (out / page).read_text(encoding="utf-8")
    missing = [name for name in names if name not in html]
    assert not missing, f"{page} does not mention {missing}"
