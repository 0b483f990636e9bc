"""A neuron population's parameters in the board image's PE sections, laid out from its kind's
declared ``param_classes`` (:mod:`s2jax.kinds`); no neuron model is named here.

Each parameter is one block named after it, typed by its class: "reset" -> u32 ``[1, 1]`` (a
:data:`RESET_CODES` code, one per PE), "value" and "decay" -> f32 ``[1, n]`` (the float32 the chip
stores), "ticks" -> u32 ``[1, n]``. Blocks are written reset first, then the float blocks, then the
tick blocks, each group in the kind's declared order (``kind.defaults``); for the stock kinds this is
the layout format version 1 has always had.
"""

from __future__ import annotations

import numpy as np

from s2jax import kinds
from s2jax.export.image._format import RESET_CODES, ImageError, _block, _need, _u32

#: The block dtype of each parameter class.
PARAM_DTYPES = {"reset": "<u4", "value": "<f4", "decay": "<f4", "ticks": "<u4"}
#: Block names the format uses for other things: no parameter may take them.
RESERVED_BLOCKS = ("slice", "spikes", "rows", "words", "conv", "kernels")
_GROUPS = (("reset",), ("value", "decay"), ("ticks",))
_NAME_BYTES = 16  # the "16s" name field of BLOCK


def param_blocks(model: str) -> tuple[tuple[str, str], ...]:
    """``(block name, dtype)`` of every parameter of neuron kind ``model``, in the order written.

    Raises :class:`ImageError` when a parameter cannot be a block: a class without a block dtype, a
    name that is not 1 to 16 printable ASCII characters, or a name the format reserves."""
    kind = kinds.get(model)
    for key, cls in kind.param_classes.items():
        if cls not in PARAM_DTYPES:
            raise ImageError(f"neuron model {model!r}: parameter {key!r} has class {cls!r}, which the board image "
                             f"cannot store; expected one of {list(PARAM_DTYPES)}")
        if not (key.isascii() and key.isprintable() and 0 < len(key) <= _NAME_BYTES) or key in RESERVED_BLOCKS:
            raise ImageError(f"neuron model {model!r}: parameter {key!r} cannot name a board image block; expected "
                             f"1 to {_NAME_BYTES} printable ASCII characters, not one of {list(RESERVED_BLOCKS)}")
    order = [key for group in _GROUPS for key in kind.defaults if kind.param_classes[key] in group]
    return tuple((key, PARAM_DTYPES[kind.param_classes[key]]) for key in order)


def encode_params(pop, sl: slice, where: str) -> bytes:
    """The parameter blocks of neurons ``sl`` of ``pop`` (one PE)."""
    classes = kinds.get(pop.neuron_model).param_classes
    out = []
    for key, _ in param_blocks(pop.neuron_model):
        if classes[key] == "reset":
            values = np.array([RESET_CODES[pop.params[key]]], "<u4")
        elif classes[key] == "ticks":
            values = _u32(pop.param_array(key, np.float64)[sl], f"{where}, {key}")
        else:
            values = pop.param_array(key)[sl]
        out.append(_block(key, values))
    return b"".join(out)


def decode_params(blocks: dict, model: str, n: int, where: str) -> dict:
    """The parameter values of one PE of ``n`` neurons (its blocks are removed from ``blocks``):
    reset modes as names, the others as ``(n,)`` arrays."""
    classes = kinds.get(model).param_classes
    modes = {v: k for k, v in RESET_CODES.items()}
    params = {}
    for key, dtype in param_blocks(model):
        if classes[key] == "reset":
            code = int(_need(blocks, key, dtype, where, 1, 1)[0, 0])
            if code not in modes:
                raise ImageError(f"{where}: {key} code {code}; expected one of {sorted(modes)}")
            params[key] = modes[code]
        else:
            params[key] = _need(blocks, key, dtype, where, 1, n)[0]
    return params


def _scalar_or_array(values: np.ndarray):
    """A per-neuron float32 array, as one Python float when every value has the same bits."""
    bits = values.view(np.uint32)
    return float(values[0]) if np.all(bits == bits[0]) else values.copy()


def join_params(model: str, per_pe: list[dict], where: str) -> dict:
    """A population's parameters from those of its PEs (in neuron order): one reset mode for all
    PEs; float parameters as one Python float when every neuron has the same bits, else a float32
    array; tick parameters as one int or an int64 array."""
    classes = kinds.get(model).param_classes
    params = {}
    for key, _ in param_blocks(model):
        parts = [pe[key] for pe in per_pe]
        if classes[key] == "reset":
            modes = set(parts)
            if len(modes) != 1:
                raise ImageError(f"{where} has {key} modes {sorted(modes)} on different PEs; expected one")
            params[key] = modes.pop()
            continue
        values = np.concatenate(parts)
        if classes[key] == "ticks":
            params[key] = int(values[0]) if np.all(values == values[0]) else values.astype(np.int64)
        else:
            params[key] = _scalar_or_array(values)
    return params
