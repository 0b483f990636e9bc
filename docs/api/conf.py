"""Sphinx configuration for the s2jax API reference (built offline from the docstrings).

Build it with ``python -m sphinx -W --keep-going -b html docs/api docs/api/_build`` (needs the
``docs`` extra). ``tests/project/test_docs.py`` runs the same build, with warnings as errors, in the test suite.

Pages use three small directives defined here, so that the reference follows the code by itself:

``.. s2jax-module:: s2jax.fixedpoint``
    the module's docstring, then every public name: the module's ``__all__`` in its order, or,
    without ``__all__``, the public functions and classes defined in the module. An object listed
    by several modules is documented once, at its home (see ``_homes``), and linked elsewhere.
``.. s2jax-package:: s2jax.quant``
    the same for the package (the names users import from it), then one section per public
    submodule.
``.. s2jax-cli-help::``
    the ``--help`` text of the ``s2jax`` command and of each of its subcommands.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import inspect
import os
import pkgutil
import re
import sys

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.ext.autodoc.preserve_defaults import update_defvalue
from sphinx.util.docutils import SphinxDirective
from sphinx.util.inspect import signature as sphinx_signature
from sphinx.util.inspect import stringify_signature
from sphinx.util.nodes import make_refnode, nested_parse_with_titles

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["COLUMNS"] = "100"  # the width argparse wraps the CLI help at

project = "s2jax"
author = "s2jax authors"
copyright = "s2jax authors"  # noqa: A001 (the name Sphinx reads)
release = version = importlib.import_module("s2jax").__version__

# The docstrings are plain reStructuredText (no Google / NumPy sections), so no napoleon: it
# would read "text: more" on an attribute's first line as "type: description".
extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build"]
templates_path: list[str] = []
html_theme = "alabaster"
html_static_path: list[str] = []

# Offline: no intersphinx. Annotations stay in the signatures, as written in the code.
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
autodoc_preserve_defaults = True  # ``spec=SPINNAKER2``, not the whole ChipSpec repr
autodoc_inherit_docstrings = False
# tonic is imported lazily by s2jax.data; mocking keeps the build independent of the data extra.
autodoc_mock_imports = ["tonic"]
add_module_names = True
smartquotes = False  # keep ``--option`` and quotes as written (no en dashes, no curly quotes)
python_display_short_literal_types = True


def _public_names(module) -> list[str]:
    """``__all__`` in its order, or the public functions and classes the module defines."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [name for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
            and getattr(obj, "__module__", None) == module.__name__]


def _public_submodules(package) -> list[str]:
    if not hasattr(package, "__path__"):
        return []
    return sorted(f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
                  if not info.name.startswith("_"))


def _is_value(obj) -> bool:
    """Plain values (numbers, text) are documented wherever they are listed: identity means nothing."""
    return isinstance(obj, (int, float, complex, str, bytes, type(None)))


@functools.cache
def _homes() -> dict[int, str]:
    """Where each re-exported object is documented in full: ``id(obj) -> "module.name"``.

    Among the public modules listing the object, a class or function lives at the top-most of its
    defining module and that module's packages (``s2jax.quant.qat``, not ``s2jax.quant.convert.qat``);
    anything else at the listing with the fewest dots (then alphabetically first).
    """
    import s2jax

    modules = ["s2jax"] + [info.name for info in pkgutil.walk_packages(s2jax.__path__, "s2jax.")
                           if not any(part.startswith("_") for part in info.name.split("."))]
    listed: dict[int, list[str]] = {}
    for name in modules:
        module = importlib.import_module(name)
        for attr in _public_names(module):
            obj = getattr(module, attr)
            if not inspect.ismodule(obj) and not _is_value(obj):
                listed.setdefault(id(obj), []).append(f"{name}.{attr}")
    homes = {}
    for key, places in listed.items():
        obj = _object_at(places[0])
        defining = getattr(obj, "__module__", None) or ""
        parts = defining.split(".")
        lineage = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        own = [place for place in places if place.rpartition(".")[0] in lineage]
        homes[key] = min(own or places, key=lambda place: (place.count("."), place))
    return homes


def _object_at(qualname: str):
    module, _, attr = qualname.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _object_lines(qualname: str, obj) -> list[str]:
    """One autodoc directive for ``qualname`` chosen by what ``obj`` is."""
    if inspect.isclass(obj):
        return [f".. autoclass:: {qualname}", ""]
    if callable(obj):  # functions, and jax.custom_jvp / custom_vjp wrappers
        return [f".. autofunction:: {qualname}", ""]
    lines = [f".. autodata:: {qualname}"]
    if not _is_value(obj):
        lines.append("   :no-value:")
    return lines + [""]


def _module_lines(name: str) -> list[str]:
    """The module's docstring, its public names, and links for those documented elsewhere."""
    module = importlib.import_module(name)
    lines = [f".. automodule:: {name}", "   :no-members:", ""]
    elsewhere = []
    for attr in _public_names(module):
        obj = getattr(module, attr)
        if inspect.ismodule(obj):
            elsewhere.append(f":py:mod:`{attr} <{obj.__name__}>`")
            continue
        home = f"{name}.{attr}" if _is_value(obj) else _homes().get(id(obj), f"{name}.{attr}")
        if home == f"{name}.{attr}":
            lines += _object_lines(home, obj)
        else:
            elsewhere.append(f":py:obj:`{attr} <{home}>`")
    if elsewhere:
        lines += [f"Also public in ``{name}``, documented where linked: " + ", ".join(elsewhere) + ".", ""]
    return lines


def _package_lines(name: str) -> list[str]:
    lines = _module_lines(name)
    for sub in _public_submodules(importlib.import_module(name)):
        title = f"``{sub}``"
        lines += [title, "-" * len(title), ""] + _module_lines(sub)
    return lines


class _Generated(SphinxDirective):
    required_arguments = 1
    has_content = False

    def lines(self) -> list[str]:
        raise NotImplementedError

    def run(self):
        content = StringList(self.lines(), source=f"<generated for {self.arguments[0]}>")
        node = nodes.container()
        nested_parse_with_titles(self.state, content, node)
        return node.children


class ModuleDirective(_Generated):
    def lines(self):
        return _module_lines(self.arguments[0])


class PackageDirective(_Generated):
    def lines(self):
        return _package_lines(self.arguments[0])


def _drop_borrowed_docstring(app, what, name, obj, options, lines):
    """Drop text that is not ours: a constant's type's docstring (a dict's, a dtype's) and the
    ``Alias for field number N`` that ``typing.NamedTuple`` gives every field."""
    if what in ("attribute", "property") and lines and lines[0].startswith("Alias for field number"):
        lines[:] = []
    if what in ("data", "attribute") and lines:
        type_doc = type(obj).__doc__
        if isinstance(type_doc, str) and "\n".join(lines).strip() == inspect.cleandoc(type_doc).strip():
            lines[:] = []


def _rst_text(text: str) -> str:
    return re.sub(r"([\\*`|_])", r"\\\1", str(text))


def _documented_fields(obj) -> list:
    """The fields of a dataclass that say what they mean (``metadata["doc"]``, as in ChipSpec)."""
    if not (inspect.isclass(obj) and dataclasses.is_dataclass(obj)):
        return []
    fields = dataclasses.fields(obj)
    return list(fields) if fields and all("doc" in f.metadata for f in fields) else []


def _list_fields(app, what, name, obj, options, lines):
    """Append ChipSpec-style fields (default, provenance tag, source, meaning) to the class docstring."""
    fields = _documented_fields(obj) if what == "class" else []
    if not fields:
        return
    lines += ["", "Fields, with their defaults and provenance (V verified, P paper, A assumption):", ""]
    for f in fields:
        default = f.default if f.default is not dataclasses.MISSING else "(required)"
        tag = f.metadata.get("tag", "?")
        source = f.metadata.get("source", "")
        lines.append(f"- ``{f.name}`` = ``{default!r}`` ({tag}; {_rst_text(source)}): {_rst_text(f.metadata['doc'])}")
    lines.append("")


def _short_signature(app, what, name, obj, options, signature, return_annotation):
    """Name the default chip (``SPINNAKER2``) instead of printing its repr; collapse the
    constructor of a dataclass whose fields are listed in its docstring; show a Flax module's
    ``__init__`` rather than its metaclass's ``(*args, **kwargs)``."""
    from s2jax.spec import SPINNAKER2

    if _documented_fields(obj) and what == "class":
        return "(**fields)", return_annotation
    if what == "class" and signature == "(*args: Any, **kwargs: Any)" and "__init__" in vars(obj):
        # Flax NNX modules: autodoc reads the metaclass's __call__; the constructor is __init__.
        update_defvalue(app, obj.__init__, False)
        init = sphinx_signature(obj.__init__, bound_method=True)
        signature = stringify_signature(init, show_return_annotation=False)
    if signature and repr(SPINNAKER2) in signature:
        signature = signature.replace(repr(SPINNAKER2), "SPINNAKER2")
    return signature, return_annotation


def _resolve_by_suffix(app, env, node, contnode):
    """Link ``:func:`to_nir``` (or ``mapping.map_to_cores``) written in a module whose objects the
    reference documents at their package: to the one documented object whose name ends so."""
    if node.get("refdomain") != "py" or not node.get("reftarget"):
        return None
    objects = env.get_domain("py").objects
    parts = node["reftarget"].lstrip(".~").split(".")
    for start in range(len(parts)):
        suffix = ".".join(parts[start:])
        found = {(entry.docname, entry.node_id) for name, entry in objects.items()
                 if name == suffix or name.endswith("." + suffix)}
        if len(found) == 1:
            docname, node_id = found.pop()
            return make_refnode(app.builder, node["refdoc"], docname, node_id, contnode, suffix)
        if found:
            return None  # ambiguous: leave it unlinked rather than guess
    return None


class CliHelpDirective(SphinxDirective):
    has_content = False

    def run(self):
        from s2jax.cli import build_parser

        parser = build_parser()
        commands = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        blocks = [("s2jax --help", parser.format_help())]
        for action in commands:
            for command, sub in action.choices.items():
                blocks.append((f"s2jax {command} --help", sub.format_help()))
        out = []
        for title, text in blocks:
            out.append(nodes.rubric(text=title))
            out.append(nodes.literal_block(text, text))
        return out


def setup(app):
    app.add_directive("s2jax-module", ModuleDirective)
    app.add_directive("s2jax-package", PackageDirective)
    app.add_directive("s2jax-cli-help", CliHelpDirective)
    app.connect("autodoc-process-docstring", _drop_borrowed_docstring)
    app.connect("autodoc-process-docstring", _list_fields)
    app.connect("autodoc-process-signature", _short_signature)
    app.connect("missing-reference", _resolve_by_suffix)
    return {"parallel_read_safe": True}
