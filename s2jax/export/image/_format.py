"""The board image's byte format: header, section table and CRCs, the ChipSpec fingerprint, the
32-bit synapse words and the typed blocks inside sections (specified in ``docs/image-format.md``)."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import struct
import zlib

import numpy as np

from s2jax.hwmodel.mapping import Mapping
from s2jax.qnet import CONV_KEYS
from s2jax.spec import SPINNAKER2, ChipSpec

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


def _u32(values, what: str) -> np.ndarray:
    a = np.asarray(values, np.int64)
    if a.size and (a.min() < 0 or a.max() > 2**32 - 1):
        raise ImageError(f"{what}: value {int(a.max() if a.max() > 2**32 - 1 else a.min())} does not fit "
                         f"an unsigned 32-bit field; expected [0, {2**32 - 1}]")
    return a.astype("<u4")


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


def _routing_section(mapping: Mapping) -> bytes:
    routes = np.array([[r.chip, r.source, len(r.targets)] for r in mapping.routes], np.int64).reshape(-1, 3)
    targets = [t for r in mapping.routes for t in r.targets]
    return _block("routes", routes.astype("<u4")) + _block("targets", np.asarray(targets, "<u4"))


# --- the container: header, section table, sections ----------------------------------------------


def _pack(sections, spec: ChipSpec) -> bytes:
    """The whole file: header, section table and the ``(type, id, data)`` sections, 8-byte aligned."""
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
        diff = [f"{k}: image {theirs.get(k)!r:.60}, expected {ours.get(k)!r}"
                for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
    except (ValueError, RecursionError, AttributeError, TypeError):  # not a JSON object of fields
        diff = []
    raise ImageError(f"{path}: ChipSpec hash mismatch: the image was written for spec {digest.hex()[:16]}..., "
                     f"expected {expected.hex()[:16]}... (the spec passed to load_image); differing fields: "
                     f"{'; '.join(diff) if diff else 'unknown'}")
