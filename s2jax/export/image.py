"""The board image (``.s2img``): a network as the chip's PEs hold it, and back.

``save_image(net, path)`` maps the network onto PEs (:func:`s2jax.hwmodel.mapping.map_to_cores`)
and writes a versioned little-endian binary: a header, a section table, a network section
(JSON), the ChipSpec (canonical JSON), one section per PE (float32 neuron parameters, 32-bit
synapse words in rows grouped by source neuron, int8 conv kernels, spike_list ticks) and the
routing table. ``load_image(path)`` validates every byte it reads and rebuilds the
:class:`~s2jax.qnet.Network`; running the loaded network gives exactly the original's spikes and
voltages in both profiles. The format is specified in ``docs/image-format.md``.

Writing is atomic (a temporary file in the same folder, then ``os.replace``). No pickle: every
array is raw little-endian bytes of a documented dtype. Every problem raises :class:`ImageError`
(a ``ValueError``) naming what is wrong and what was expected.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import secrets
import struct
import zlib

import numpy as np

from s2jax.hwmodel.mapping import Mapping, map_to_cores
from s2jax.qnet import CONV_KEYS, Conv2DProjection, Network, Population, Projection
from s2jax.spec import ALL_MODELS, CUBA_MODELS, INPUT_MODELS, SPINNAKER2, ChipSpec

__all__ = ["FORMAT_VERSION", "ImageError", "MAGIC", "decode_words", "encode_words", "load_image", "save_image",
           "spec_hash", "spec_json"]

MAGIC = b"S2IMG\r\n\x1a"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sII32sQII")  # magic, version, flags, spec sha256, file size, sections, header crc
ENTRY = struct.Struct("<IIQQII")  # type, id, offset, length, crc32, reserved
BLOCK = struct.Struct("<16sIII")  # name, dtype code, rows, cols
SECTION_ALIGN = 8

NETWORK, SPEC, PE, ROUTING = 1, 2, 3, 4
SECTION_NAMES = {NETWORK: "network", SPEC: "spec", PE: "PE", ROUTING: "routing"}
DTYPES = {1: np.dtype("<u4"), 2: np.dtype("<i4"), 3: np.dtype("<f4"), 4: np.dtype("i1")}
DTYPE_CODES = {v: k for k, v in DTYPES.items()}
RESET_CODES = {"reset_by_subtraction": 0, "reset_to_v_reset": 1}
FLOAT_PARAMS = ("threshold", "alpha_decay", "i_offset", "v_init", "v_reset")
CUBA_FLOAT_PARAMS = ("exc_decay", "inh_decay")
CONV_COLUMNS = ("projection", "c_in", "c_out", "kh", "kw") + CONV_KEYS


class ImageError(ValueError):
    """A board image cannot be written or read: the message names the problem and the expected value."""


# --- the ChipSpec fingerprint --------------------------------------------------------------------


def _plain(value):
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def spec_json(spec: ChipSpec) -> bytes:
    """Canonical JSON of every ChipSpec field: ``{"field": value}``, keys sorted, no whitespace,
    ASCII, tuples as arrays, enums as their value, floats in Python's shortest round-trip form."""
    fields = {f.name: _plain(getattr(spec, f.name)) for f in dataclasses.fields(spec)}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def spec_hash(spec: ChipSpec) -> bytes:
    """SHA-256 (32 bytes) of :func:`spec_json`: an image only loads under the spec it was written for."""
    return hashlib.sha256(spec_json(spec)).digest()


# --- synapse words -------------------------------------------------------------------------------


def _layout(spec: ChipSpec) -> dict[str, tuple[int, int]]:
    layout = {name: (lo, width) for name, lo, width in spec.synapse_word_layout}
    missing = sorted({"weight", "delay", "inhibitory", "target"} - set(layout))
    if missing or any(lo + width > 32 or lo < 0 or width < 1 for lo, width in layout.values()):
        raise ImageError(f"spec.synapse_word_layout {spec.synapse_word_layout} must place the fields weight, "
                         f"delay, inhibitory and target inside 32 bits (missing: {missing})")
    return layout


def encode_words(weight, delay, target, spec: ChipSpec = SPINNAKER2, where: str = "synapses") -> np.ndarray:
    """32-bit synapse words of ``spec.synapse_word_layout``; raises ImageError when a field does not fit."""
    lay = _layout(spec)
    weight, delay, target = (np.asarray(a, np.int64) for a in (weight, delay, target))
    wl, ww = lay["weight"]
    lo, hi = -(2 ** (ww - 1)), 2 ** (ww - 1) - 1
    for values, name, lo_, hi_ in ((weight, "weight", lo, hi), (delay, "delay", 0, 2 ** lay["delay"][1] - 1),
                                   (target, "target", 0, 2 ** lay["target"][1] - 1)):
        bad = (values < lo_) | (values > hi_)
        if np.any(bad):
            kind = "two's-complement " if name == "weight" else ""
            raise ImageError(
                f"{where}: {name} {int(values[bad][0])} does not fit the {lay[name][1]}-bit {kind}{name} field "
                f"of spec.synapse_word_layout; expected a value in [{lo_}, {hi_}]"
            )
    word = (weight & (2**ww - 1)) << wl
    word |= delay << lay["delay"][0]
    word |= (weight < 0).astype(np.int64) << lay["inhibitory"][0]
    word |= target << lay["target"][0]
    return word.astype("<u4")


def decode_words(words, spec: ChipSpec = SPINNAKER2, where: str = "synapses"):
    """``(weight, delay, target)`` int64 arrays of 32-bit synapse words (inverse of :func:`encode_words`)."""
    lay = _layout(spec)
    w = np.asarray(words, np.int64)
    field = lambda name: (w >> lay[name][0]) & (2 ** lay[name][1] - 1)  # noqa: E731
    ww = lay["weight"][1]
    weight = field("weight")
    weight = np.where(weight >= 2 ** (ww - 1), weight - 2**ww, weight)
    inhibitory = field("inhibitory")
    if np.any(inhibitory != (weight < 0)):
        i = int(np.argmax(inhibitory != (weight < 0)))
        raise ImageError(f"{where}: word {i} has weight {int(weight[i])} but inhibitory bit {int(inhibitory[i])}; "
                         f"expected the bit to be 1 exactly when the weight is negative")
    return weight, field("delay"), field("target")


# --- blocks: the typed arrays inside PE and routing sections -------------------------------------


def _block(name: str, array) -> bytes:
    a = np.asarray(array)
    a = a.reshape(1, -1) if a.ndim < 2 else a
    dt = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
    data = np.ascontiguousarray(a, dt).tobytes()
    pad = -len(data) % 4
    return BLOCK.pack(name.encode("ascii"), DTYPE_CODES[np.dtype(dt)], a.shape[0], a.shape[1]) + data + b"\0" * pad


def _read_blocks(data: bytes, where: str) -> dict[str, np.ndarray]:
    out, pos = {}, 0
    while pos < len(data):
        if pos + BLOCK.size > len(data):
            raise ImageError(f"{where}: block header at byte {pos} runs past the section's {len(data)} bytes")
        raw, code, rows, cols = BLOCK.unpack_from(data, pos)
        name = raw.rstrip(b"\0").decode("ascii", "replace")
        if code not in DTYPES:
            raise ImageError(f"{where}: block {name!r} has dtype code {code}; expected one of {sorted(DTYPES)}")
        n = rows * cols * DTYPES[code].itemsize
        start = pos + BLOCK.size
        if start + n > len(data):
            raise ImageError(f"{where}: block {name!r} needs {n} bytes at byte {start}, "
                             f"but the section has {len(data)} bytes")
        if name in out:
            raise ImageError(f"{where}: block {name!r} appears twice")
        out[name] = np.frombuffer(data, DTYPES[code], rows * cols, start).reshape(rows, cols)
        pos = start + n + (-n % 4)
    return out


def _need(blocks: dict, name: str, dtype: str, where: str, rows=None, cols=None) -> np.ndarray:
    if name not in blocks:
        raise ImageError(f"{where}: missing block {name!r}")
    a = blocks.pop(name)
    if a.dtype != np.dtype(dtype) or rows not in (None, a.shape[0]) or cols not in (None, a.shape[1]):
        raise ImageError(f"{where}: block {name!r} is {a.dtype}{list(a.shape)}; expected {np.dtype(dtype)}"
                         f"[{'*' if rows is None else rows}, {'*' if cols is None else cols}]")
    return a


# --- writing -------------------------------------------------------------------------------------


def _u32(values, what: str) -> np.ndarray:
    a = np.asarray(values, np.int64)
    if a.size and (a.min() < 0 or a.max() > 2**32 - 1):
        raise ImageError(f"{what}: value {int(a.max() if a.max() > 2**32 - 1 else a.min())} does not fit "
                         f"an unsigned 32-bit field; expected [0, {2**32 - 1}]")
    return a.astype("<u4")


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
    sl = slice(pl.start, pl.stop)
    if pop.neuron_model in INPUT_MODELS:
        pairs = [(i - pl.start, t) for i, ticks in sorted(pop.params.items()) if pl.start <= i < pl.stop
                 for t in ticks]
        parts.append(_block("spikes", _u32(np.asarray(pairs, np.int64).reshape(-1, 2), where + ", spike ticks")))
        return b"".join(parts)
    parts.append(_block("reset", np.array([RESET_CODES[pop.params["reset"]]], "<u4")))
    keys = FLOAT_PARAMS + (CUBA_FLOAT_PARAMS if pop.neuron_model in CUBA_MODELS else ())
    parts += [_block(k, pop.param_array(k)[sl]) for k in keys]
    if pop.neuron_model in CUBA_MODELS:
        parts.append(_block("t_refrac", _u32(pop.param_array("t_refrac", np.float64)[sl], where + ", t_refrac")))
    parts.append(synapse_block)
    if pop.neuron_model == "lif_conv2d":
        convs = [p for p in net.projections if p.post is pop and isinstance(p, Conv2DProjection)]
        head = [[projs[id(p)], *p.weights.shape, *(p.conv_params[k] for k in CONV_KEYS)] for p in convs]
        kernels = [p.weights.astype(np.int8).reshape(-1) for p in convs]  # range checked by Conv2DProjection
        parts.append(_block("conv", _u32(np.asarray(head, np.int64).reshape(-1, len(CONV_COLUMNS)), where)))
        parts.append(_block("kernels", np.concatenate(kernels) if kernels else np.zeros(0, np.int8)))
    return b"".join(parts)


def _routing_section(mapping: Mapping) -> bytes:
    routes = np.array([[r.chip, r.source, len(r.targets)] for r in mapping.routes], np.int64).reshape(-1, 3)
    targets = [t for r in mapping.routes for t in r.targets]
    return _block("routes", routes.astype("<u4")) + _block("targets", np.asarray(targets, "<u4"))


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
        syn = (_synapse_blocks(net, pop, placements, pops, projs, spec) if pop.neuron_model not in INPUT_MODELS
               else [b""] * len(placements))
        for pl, block in zip(placements, syn):
            sections.append((PE, index, _pe_section(net, pop, pl, pops, projs, block)))
            index += 1
    sections.append((ROUTING, 0, _routing_section(mapping)))

    table_end = HEADER.size + ENTRY.size * len(sections)
    offset = table_end + (-table_end % SECTION_ALIGN)
    entries, body = [], bytearray()
    for kind, ident, data in sections:
        entries.append(ENTRY.pack(kind, ident, offset, len(data), zlib.crc32(data), 0))
        padded = data + b"\0" * (-len(data) % SECTION_ALIGN)
        body += padded
        offset += len(padded)
    table = b"".join(entries)
    lead = b"\0" * (-table_end % SECTION_ALIGN)
    size = table_end + len(lead) + len(body)
    head = HEADER.pack(MAGIC, FORMAT_VERSION, 0, spec_hash(spec), size, len(sections), 0)
    crc = zlib.crc32(head[: HEADER.size - 4] + table)
    head = head[: HEADER.size - 4] + struct.pack("<I", crc)
    return head + table + lead + bytes(body)


def save_image(net: Network, path, spec: ChipSpec = SPINNAKER2) -> None:
    """Write ``net`` as a board image at ``path`` (format: ``docs/image-format.md``), atomically.

    The whole image is encoded in memory first; it is then written to a temporary file in the same
    folder, flushed to disk and renamed over ``path``. On any error no file is left behind (an
    existing file at ``path`` is untouched). Raises :class:`ImageError` for a network that does not
    fit the format (for example a weight outside the word layout's int8 field).
    """
    data = _encode(net, spec)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# --- reading -------------------------------------------------------------------------------------


def _sections(data: bytes, path: str):
    if len(data) >= len(MAGIC) and data[: len(MAGIC)] != MAGIC or len(data) < len(MAGIC) and not MAGIC.startswith(data):
        raise ImageError(f"{path}: not a board image: magic bytes {data[:len(MAGIC)]!r}, expected {MAGIC!r}")
    if len(data) < HEADER.size:
        raise ImageError(f"{path}: truncated: {len(data)} bytes, but the header alone needs {HEADER.size}")
    magic, version, flags, digest, size, count, crc = HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        raise ImageError(f"{path}: unsupported image format version {version}; this s2jax reads version "
                         f"{FORMAT_VERSION}")
    if len(data) < size:
        raise ImageError(f"{path}: truncated: {len(data)} bytes, but the header says {size}")
    if len(data) > size:
        raise ImageError(f"{path}: {len(data) - size} trailing bytes: the header says {size} bytes")
    table_end = HEADER.size + ENTRY.size * count
    if table_end > len(data):
        raise ImageError(f"{path}: section table of {count} entries ends at byte {table_end}, "
                         f"past the end of the {len(data)}-byte file")
    table = data[HEADER.size: table_end]
    computed = zlib.crc32(data[: HEADER.size - 4] + table)
    if computed != crc:
        raise ImageError(f"{path}: header CRC32 mismatch: stored {crc:#010x}, computed {computed:#010x} "
                         f"(header or section table corrupted)")
    if flags != 0:
        raise ImageError(f"{path}: header flags {flags:#x}; expected 0 in format version {FORMAT_VERSION}")
    out = []
    for i in range(count):
        kind, ident, offset, length, sec_crc, _ = ENTRY.unpack_from(table, i * ENTRY.size)
        label = f"section {i} ({SECTION_NAMES.get(kind, f'type {kind}')} {ident})"
        if kind not in SECTION_NAMES:
            raise ImageError(f"{path}: {label}: unknown section type {kind}; expected one of {sorted(SECTION_NAMES)}")
        if offset < table_end or offset + length > len(data):
            raise ImageError(f"{path}: {label} points outside the file: bytes [{offset}, {offset + length}), "
                             f"expected within [{table_end}, {len(data)})")
        body = data[offset: offset + length]
        computed = zlib.crc32(body)
        if computed != sec_crc:
            raise ImageError(f"{path}: {label} CRC32 mismatch: stored {sec_crc:#010x}, computed {computed:#010x}")
        out.append((kind, ident, body, label))
    return digest, out


def _one(sections, kind, path):
    found = [s for s in sections if s[0] == kind]
    if len(found) != 1:
        raise ImageError(f"{path}: {len(found)} {SECTION_NAMES[kind]} sections; expected exactly 1")
    return found[0][2]


def _check_spec(digest: bytes, written: bytes, spec: ChipSpec, path: str):
    expected = spec_hash(spec)
    if hashlib.sha256(written).digest() != digest:
        raise ImageError(f"{path}: the spec section does not match the header's ChipSpec hash (corrupted image)")
    if digest == expected:
        return
    try:
        theirs, ours = json.loads(written), json.loads(spec_json(spec))
        diff = [f"{k}: image {theirs.get(k)!r}, expected {ours.get(k)!r}"
                for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
    except ValueError:
        diff = []
    raise ImageError(f"{path}: ChipSpec hash mismatch: the image was written for spec {digest.hex()[:16]}..., "
                     f"expected {expected.hex()[:16]}... (the spec passed to load_image); differing fields: "
                     f"{'; '.join(diff) if diff else 'unknown'}")


def _network_doc(raw: bytes, path: str) -> dict:
    """The network section's JSON, with the type of every field checked."""
    where = f"{path}: network section"
    try:
        doc = json.loads(raw.decode("utf-8"))
    except ValueError as e:
        raise ImageError(f"{where} is not UTF-8 JSON ({e})") from e

    def need(obj, key, kind, what):
        if not isinstance(obj, dict) or key not in obj:
            raise ImageError(f"{where}: {what} has no {key!r}")
        value = obj[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ImageError(f"{where}: {what} {key!r} is {value!r}; expected {kind}")
        return value

    pops = need(doc, "populations", list, "the document")
    projs = need(doc, "projections", list, "the document")
    for i, pd in enumerate(pops):
        need(pd, "name", str, f"population {i}")
        if need(pd, "model", str, f"population {i}") not in ALL_MODELS:
            raise ImageError(f"{where}: population {i} has model {pd['model']!r}; expected one of {list(ALL_MODELS)}")
        if need(pd, "size", int, f"population {i}") < 1:
            raise ImageError(f"{where}: population {i} has size {pd['size']}; expected >= 1")
        need(pd, "record", list, f"population {i}")
        if pd.get("max_atoms_per_core") is not None:
            need(pd, "max_atoms_per_core", int, f"population {i}")
    for k, jd in enumerate(projs):
        kind = need(jd, "kind", str, f"projection {k}")
        if kind not in ("dense", "conv"):
            raise ImageError(f"{where}: projection {k} has kind {kind!r}; expected 'dense' or 'conv'")
        for end in ("pre", "post"):
            if not 0 <= need(jd, end, int, f"projection {k}") < len(pops):
                raise ImageError(f"{where}: projection {k} {end} population {jd[end]}; expected < {len(pops)}")
        if kind == "dense":
            need(jd, "synapses", int, f"projection {k}")
        else:
            need(jd, "kernel_shape", list, f"projection {k}")
            need(jd, "conv_params", dict, f"projection {k}")
    return doc


def _scalar_or_array(values: np.ndarray):
    """A per-neuron float32 array, as one Python float when every value has the same bits."""
    bits = values.view(np.uint32)
    return float(values[0]) if np.all(bits == bits[0]) else values.copy()


def _neuron_slice(blocks, model: str, n: int, where: str, spec: ChipSpec):
    """Parameters, synapses (``(projection, pre, local post, weight, delay)``) and convs of one PE."""
    reset = int(_need(blocks, "reset", "<u4", where, 1, 1)[0, 0])
    modes = {v: k for k, v in RESET_CODES.items()}
    if reset not in modes:
        raise ImageError(f"{where}: reset code {reset}; expected one of {sorted(modes)}")
    params = {"reset": modes[reset]}
    for k in FLOAT_PARAMS + (CUBA_FLOAT_PARAMS if model in CUBA_MODELS else ()):
        params[k] = _need(blocks, k, "<f4", where, 1, n)[0]
    if model in CUBA_MODELS:
        params["t_refrac"] = _need(blocks, "t_refrac", "<u4", where, 1, n)[0]
    rows = _need(blocks, "rows", "<u4", where, None, 4).astype(np.int64)
    words = _need(blocks, "words", "<u4", where, 1, None)[0]
    if rows[:, 3].sum() != words.size:
        raise ImageError(f"{where}: rows announce {int(rows[:, 3].sum())} synapse words, the words block has "
                         f"{words.size}")
    weight, delay, target = decode_words(words, spec, where)
    if target.size and target.max() >= n:
        raise ImageError(f"{where}: synapse target {int(target.max())}; expected < {n} (the slice size)")
    synapses = (rows, np.repeat(rows[:, 0], rows[:, 3]), np.repeat(rows[:, 2], rows[:, 3]), target, weight, delay)
    convs = []
    if model == "lif_conv2d":
        head = _need(blocks, "conv", "<u4", where, None, len(CONV_COLUMNS)).astype(np.int64)
        kernels = _need(blocks, "kernels", "i1", where, 1, None)[0]
        sizes = head[:, 1:5].prod(axis=1)
        if sizes.sum() != kernels.size:
            raise ImageError(f"{where}: conv headers announce {int(sizes.sum())} kernel bytes, the kernels block "
                             f"has {kernels.size}")
        for row, kernel in zip(head, np.split(kernels, np.cumsum(sizes)[:-1])):
            convs.append((int(row[0]), tuple(int(x) for x in row[1:]), kernel.tobytes()))
    return params, synapses, convs


def _population(i: int, pd: dict, slices, proj_docs, synapses: dict, convs: dict, path: str, spec: ChipSpec):
    """Rebuild population ``i`` from its PE slices; collect its incoming synapses and conv kernels."""
    bounds = [(a, b) for a, b, _, _ in slices]
    if not bounds or bounds[0][0] != 0 or bounds[-1][1] != pd["size"] or any(
            b1 != a2 for (_, b1), (a2, _) in zip(bounds, bounds[1:])) or any(b <= a for a, b in bounds):
        raise ImageError(f"{path}: PE slices of population {pd['name']!r} are {bounds}; expected consecutive "
                         f"slices covering [0, {pd['size']})")
    model, params, columns = pd["model"], {}, {}
    for start, stop, blocks, where in slices:
        if model in INPUT_MODELS:
            pairs = _need(blocks, "spikes", "<u4", where, None, 2).astype(np.int64)
            if pairs.size and pairs[:, 0].max() >= stop - start:
                raise ImageError(f"{where}: spike_list neuron {int(pairs[:, 0].max())}; expected < {stop - start}")
            for j, t in pairs:
                params.setdefault(int(j) + start, []).append(int(t))
        else:
            local, (rows, k, pre, target, weight, delay), pe_convs = _neuron_slice(blocks, model, stop - start,
                                                                                  where, spec)
            for key, value in local.items():
                columns.setdefault(key, []).append(value)
            for proj, src in rows[:, :2]:
                jd = proj_docs[proj] if proj < len(proj_docs) else None
                if jd is None or jd["kind"] != "dense" or jd["post"] != i or jd["pre"] != src:
                    raise ImageError(f"{where}: synapse row of projection {int(proj)} from population {int(src)}; "
                                     f"expected a dense projection into population {i} from its pre population")
            for proj in np.unique(k):
                sel = k == proj
                synapses[int(proj)].append(np.stack([pre[sel], target[sel] + start, weight[sel], delay[sel]], 1))
            for proj, shape, kernel in pe_convs:
                if convs.setdefault(proj, (shape, kernel)) != (shape, kernel):
                    raise ImageError(f"{where}: conv projection {proj} differs from its copy on another PE of the "
                                     f"same population; expected identical copies")
        if blocks:
            raise ImageError(f"{where}: unexpected block(s) {sorted(blocks)} for model {model!r}")
    if model not in INPUT_MODELS:
        modes = set(columns.pop("reset"))
        if len(modes) != 1:
            raise ImageError(f"{path}: population {pd['name']!r} has reset modes {sorted(modes)} on different "
                             f"PEs; expected one")
        params["reset"] = modes.pop()
        for key, parts in columns.items():
            values = np.concatenate(parts)
            if key == "t_refrac":
                params[key] = int(values[0]) if np.all(values == values[0]) else values.astype(np.int64)
            else:
                params[key] = _scalar_or_array(values)
    try:
        pop = Population(pd["size"], model, params, name=pd["name"], record=pd["record"])
        if pd.get("max_atoms_per_core") is not None:
            pop.set_max_atoms_per_core(pd["max_atoms_per_core"])
    except ValueError as e:
        raise ImageError(f"{path}: {e}") from e
    return pop


def _projection(k: int, jd: dict, pops, synapses: dict, convs: dict, path: str, spec: ChipSpec):
    pre, post = pops[jd["pre"]], pops[jd["post"]]
    where = f"{path}: projection {k} ({pre.name!r} -> {post.name!r})"
    try:
        if jd["kind"] == "dense":
            rows = np.concatenate(synapses[k]) if synapses[k] else np.zeros((0, 4), np.int64)
            if len(rows) != jd["synapses"]:
                raise ImageError(f"{where}: {len(rows)} synapse words found on the PEs; the network section says "
                                 f"{jd['synapses']}")
            return Projection(pre, post, rows, spec=spec)
        if k not in convs:
            raise ImageError(f"{where}: no PE of population {post.name!r} holds its kernel")
        shape, kernel = convs[k]
        params = dict(zip(CONV_KEYS, shape[4:]))
        if list(shape[:4]) != jd["kernel_shape"] or params != jd["conv_params"]:
            raise ImageError(f"{where}: the PE copy (kernel {list(shape[:4])}, {params}) differs from the network "
                             f"section (kernel {jd['kernel_shape']}, {jd['conv_params']})")
        weights = np.frombuffer(kernel, np.int8).reshape(shape[:4]).astype(np.int32)
        return Conv2DProjection(pre, post, weights, params, spec=spec)
    except ImageError:
        raise
    except ValueError as e:
        raise ImageError(f"{path}: {e}") from e


def _decode(data: bytes, spec: ChipSpec, path: str) -> Network:
    digest, sections = _sections(data, path)
    _check_spec(digest, _one(sections, SPEC, path), spec, path)
    doc = _network_doc(_one(sections, NETWORK, path), path)
    pop_docs, proj_docs = doc["populations"], doc["projections"]
    pes = sorted((s for s in sections if s[0] == PE), key=lambda s: s[1])
    if [s[1] for s in pes] != list(range(len(pes))):
        raise ImageError(f"{path}: PE section ids {[s[1] for s in pes]}; expected 0 .. {len(pes) - 1}, each once")
    per_pop = {i: [] for i in range(len(pop_docs))}
    placed = []  # (population index, start, stop) of every PE, in PE order
    for _, ident, body, label in pes:
        where = f"{path}: {label}"
        blocks = _read_blocks(body, where)
        pop_i, start, stop, chip, pe = (int(x) for x in _need(blocks, "slice", "<u4", where, 1, 5)[0])
        if pop_i >= len(pop_docs):
            raise ImageError(f"{where}: population index {pop_i}; expected < {len(pop_docs)}")
        if (chip, pe) != divmod(ident, spec.pes_per_chip):
            raise ImageError(f"{where}: placed on chip {chip}, PE {pe}; expected chip {ident // spec.pes_per_chip}, "
                             f"PE {ident % spec.pes_per_chip} (global PE {ident}, {spec.pes_per_chip} PEs per chip)")
        per_pop[pop_i].append((start, stop, blocks, where))
        placed.append((pop_i, start, stop))

    synapses, convs = {k: [] for k in range(len(proj_docs))}, {}
    pops = [_population(i, pd, sorted(per_pop[i], key=lambda s: s[0]), proj_docs, synapses, convs, path, spec)
            for i, pd in enumerate(pop_docs)]
    net = Network(doc.get("name"))
    try:
        net.add(*pops)
    except ValueError as e:
        raise ImageError(f"{path}: {e}") from e
    for k, jd in enumerate(proj_docs):
        net.add(_projection(k, jd, pops, synapses, convs, path, spec))

    # The PE sections and the routing table must be what map_to_cores gives for the rebuilt network.
    mapping = map_to_cores(net, spec)
    index = {p.name: i for i, p in enumerate(pops)}
    expected = [(index[p.population], p.start, p.stop) for p in mapping.placements]
    if placed != expected:
        raise ImageError(f"{path}: the PE sections hold slices {placed[:8]}...; map_to_cores of the network "
                         f"gives {expected[:8]}... (population index, start, stop)")
    where = f"{path}: routing section"
    routing = _read_blocks(_one(sections, ROUTING, path), where)
    routes = _need(routing, "routes", "<u4", where, None, 3)
    targets = _need(routing, "targets", "<u4", where, 1, None)
    if routing or _block("routes", routes) + _block("targets", targets) != _routing_section(mapping):
        raise ImageError(f"{where}: the routing table ({len(routes)} entries) disagrees with the one the network "
                         f"maps to ({len(mapping.routes)} entries, per chip {list(mapping.routing_entries)})")
    return net


def load_image(path, spec: ChipSpec = SPINNAKER2) -> Network:
    """Read a board image written by :func:`save_image` and rebuild its :class:`~s2jax.qnet.Network`.

    Checks, in this order: the file exists; magic bytes; format version; length; header CRC32;
    every section inside the file and its CRC32; the ChipSpec hash against ``spec``; then the
    content (block shapes, word fields, slices, routing). Raises :class:`ImageError` naming the
    problem and the expected value.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as e:
        raise ImageError(f"{path}: no such board image file") from e
    except IsADirectoryError as e:
        raise ImageError(f"{path}: is a directory, expected a board image file") from e
    return _decode(data, spec, path)
