"""The NIR codecs of the registered kinds (:class:`s2jax.kinds.codecs.NIRCodec`), looked up for
export (by a population's kind) and import (by a node's NIR type). Read from the registry at each
call, so a kind registered later (or removed) counts at once."""

from __future__ import annotations

import nir
from s2jax import kinds
from s2jax.kinds.codecs import NIRCodec


def codec_of(model: str, where: str) -> NIRCodec:
    """The NIR codec of kind ``model``; a ``ValueError`` starting with ``where`` when the kind
    declares none (or is not registered)."""
    codec = kinds.get(model).codecs.get("nir")
    if codec is None:
        raise ValueError(f"{where}: neuron kind {model!r} declares no NIR codec (NeuronKind.codecs['nir']), so it "
                         f"has no NIR form; kinds with one: {[m for m in kinds.neuron_names() if _has(m)]}")
    return codec


def _has(model: str) -> bool:
    return kinds.get(model).codecs.get("nir") is not None


def _codecs() -> list[NIRCodec]:
    """The NIR codecs of the registered neuron kinds, each once, in registration order."""
    out: list[NIRCodec] = []
    for m in kinds.neuron_names():
        c = kinds.get(m).codecs.get("nir")
        if c is not None and not any(c is o for o in out):
            out.append(c)
    return out


def neuron_nodes() -> tuple:
    """The NIR neuron node classes some registered kind writes or reads, in registration order."""
    names: dict = {}
    for c in _codecs():
        names.update(dict.fromkeys((*c.reads, *c.writes)))
    return tuple(getattr(nir, n) for n in names)


def fields_of(node) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(shape fields, optional fields) of a neuron node, from the first codec that declares its type."""
    t = type(node).__name__
    for c in _codecs():
        if t in c.fields:
            return c.fields[t], c.optional.get(t, ())
    raise ValueError(f"{t} node: no registered neuron kind has a NIR codec for it")


def reader_of(node, where: str) -> NIRCodec:
    """The codec converting a foreign node of this type: the first registered that reads it."""
    t = type(node).__name__
    for c in _codecs():
        if t in c.reads:
            return c
    raise ValueError(f"{where}: no registered neuron kind converts {t} nodes of a foreign NIR graph (a kind's NIR "
                     f"codec that writes {t} restores it from s2jax metadata only)")
