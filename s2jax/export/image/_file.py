"""The board image's writer (:func:`save_image`: network to PE sections, packed and written
atomically) and the entry of its reader (:func:`load_image`); the format is in :mod:`s2jax.export.image`."""

from __future__ import annotations

import json
import os

import numpy as np

from s2jax import io as fileio
from s2jax import kinds
from s2jax.kinds.codecs import refuse_layers
from s2jax.export.image._decode import _decode
from s2jax.export.image._format import (CONV_COLUMNS, NETWORK, PE, ROUTING, SPEC, ImageError, _block, _pack,
                                        _routing_section, _u32, encode_words, spec_json)
from s2jax.export.image._params import encode_params
from s2jax.hwmodel.mapping import map_to_cores
from s2jax.qnet import CONV_KEYS, Conv2DProjection, Network, Population
from s2jax.spec import SPINNAKER2, ChipSpec


# --- writing -------------------------------------------------------------------------------------


def _network_json(net: Network, pops: dict) -> bytes:
    doc = {
        "format": "s2jax board image",
        "name": net.name,
        "populations": [
            {"name": p.name, "model": p.neuron_model, "size": p.size, "record": list(p.record),
             "max_atoms_per_core": p.max_atoms_per_core}
            for p in net.populations
        ],
        "projections": [],
    }
    for proj in net.projections:
        entry = {"kind": "conv" if isinstance(proj, Conv2DProjection) else "dense",
                 "pre": pops[id(proj.pre)], "post": pops[id(proj.post)]}
        if isinstance(proj, Conv2DProjection):
            entry.update(kernel_shape=list(proj.weights.shape), conv_params=dict(proj.conv_params))
        else:
            entry["synapses"] = int(len(proj.weights))
        doc["projections"].append(entry)
    try:
        return json.dumps(doc, allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise ImageError(f"network {net.name!r}: cannot write its names as JSON ({e}); "
                         f"expected population and network names that are strings") from e


def _synapse_blocks(net: Network, pop: Population, placements, pops: dict, projs: dict, spec: ChipSpec):
    """Per placement of ``pop``: its "rows" and "words" blocks (rows grouped by source neuron)."""
    parts = [(projs[id(p)], p) for p in net.projections if p.post is pop and not isinstance(p, Conv2DProjection)]
    cols = [[], [], [], [], [], []]  # projection, source population, pre, post, weight, delay
    for k, proj in parts:
        for col, values in zip(cols, ([k] * len(proj.weights), [pops[id(proj.pre)]] * len(proj.weights),
                                      proj.pre_idx, proj.post_idx, proj.weights, proj.delays)):
            col.append(np.asarray(values, np.int64))
    k, src, pre, post, weight, delay = (np.concatenate(c) if c else np.zeros(0, np.int64) for c in cols)
    starts = np.array([p.start for p in placements])
    slot = np.searchsorted(starts, post, side="right") - 1
    order = np.lexsort((pre, k, slot))  # by placement, then projection, then pre neuron (stable)
    k, src, pre, post, weight, delay, slot = (a[order] for a in (k, src, pre, post, weight, delay, slot))
    bounds = np.searchsorted(slot, np.arange(len(placements) + 1))
    out = []
    for i, pl in enumerate(placements):
        sel = slice(bounds[i], bounds[i + 1])
        where = f"population {pop.name!r}, PE slice [{pl.start}, {pl.stop})"
        words = encode_words(weight[sel], delay[sel], post[sel] - pl.start, spec, where)
        kk, ss, pp = k[sel], src[sel], pre[sel]
        new = np.ones(kk.size, bool)
        new[1:] = (kk[1:] != kk[:-1]) | (pp[1:] != pp[:-1])
        heads = np.flatnonzero(new)
        counts = np.diff(np.append(heads, kk.size))
        rows = np.stack([kk[heads], ss[heads], pp[heads], counts], axis=1) if heads.size else np.zeros((0, 4))
        out.append(_block("rows", _u32(rows, where).reshape(-1, 4)) + _block("words", words))
    return out


def _pe_section(net, pop, pl, pops, projs, synapse_block: bytes) -> bytes:
    where = f"population {pop.name!r}, PE slice [{pl.start}, {pl.stop})"
    parts = [_block("slice", _u32([pops[id(pop)], pl.start, pl.stop, pl.chip, pl.pe], where))]
    if kinds.get(pop.neuron_model).is_input:
        pairs = [(i - pl.start, t) for i, ticks in sorted(pop.params.items()) if pl.start <= i < pl.stop
                 for t in ticks]
        parts.append(_block("spikes", _u32(np.asarray(pairs, np.int64).reshape(-1, 2), where + ", spike ticks")))
        return b"".join(parts)
    parts.append(encode_params(pop, slice(pl.start, pl.stop), where))
    parts.append(synapse_block)
    convs = [p for p in net.projections if p.post is pop and isinstance(p, Conv2DProjection)]
    if convs:  # the kernels of the conv projections into this population, on each of its PEs
        head = [[projs[id(p)], *p.weights.shape, *(p.conv_params[k] for k in CONV_KEYS)] for p in convs]
        kernels = [p.weights.astype(np.int8).reshape(-1) for p in convs]  # range checked by Conv2DProjection
        parts.append(_block("conv", _u32(np.asarray(head, np.int64).reshape(-1, len(CONV_COLUMNS)), where)))
        parts.append(_block("kernels", np.concatenate(kernels)))
    return b"".join(parts)


def _encode(net: Network, spec: ChipSpec) -> bytes:
    try:
        net.validate()
    except ValueError as e:
        raise ImageError(str(e)) from e
    mapping = map_to_cores(net, spec)
    pops = {id(p): i for i, p in enumerate(net.populations)}
    projs = {id(p): i for i, p in enumerate(net.projections)}
    sections = [(NETWORK, 0, _network_json(net, pops)), (SPEC, 0, spec_json(spec))]
    index = 0
    for pop in net.populations:
        placements = mapping.of(pop.name)
        syn = ([b""] * len(placements) if kinds.get(pop.neuron_model).is_input
               else _synapse_blocks(net, pop, placements, pops, projs, spec))
        for pl, block in zip(placements, syn):
            sections.append((PE, index, _pe_section(net, pop, pl, pops, projs, block)))
            index += 1
    sections.append((ROUTING, 0, _routing_section(mapping)))
    return _pack(sections, spec)


def save_image(net: Network, path, spec: ChipSpec = SPINNAKER2) -> None:
    """Write ``net`` as a board image at ``path`` (format: ``docs/image-format.md``), atomically.

    The whole image is encoded in memory first; it is then written to a temporary file in the same
    folder, flushed to disk and renamed over ``path``. On any error no file is left behind (an
    existing file at ``path`` is untouched). Raises :class:`ImageError` for a network that does not
    fit the format (for example a weight outside the word layout's int8 field).
    """
    refuse_layers(net, "the board image")
    data = _encode(net, spec)
    fileio.atomic_write_bytes(path, data)


def load_image(path, spec: ChipSpec = SPINNAKER2) -> Network:
    """Read a board image written by :func:`save_image` and rebuild its :class:`~s2jax.qnet.Network`.

    Checks, in this order: the file exists; magic bytes; format version; length; header CRC32;
    every section inside the file and its CRC32; the ChipSpec hash against ``spec``; then the
    content (block shapes, word fields, slices, routing). Raises :class:`ImageError` naming the
    problem and the expected value.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory, expected a board image file")
    try:
        data = fileio.read_bytes(path, what="board image file")
    except fileio.FileFormatError as e:
        raise ImageError(str(e)) from None
    return _decode(data, spec, path)
