"""``Layer``: a node of the hand-off format that stores its own arrays (an EGRU layer, a MAC-array
dense or conv layer), beside the spiking ``Population`` / ``Projection`` pairs.

A layer of kind ``kind`` (:func:`s2jax.kinds.layer_names`) holds ``arrays`` (copied, read-only
NumPy arrays) and ``settings`` (JSON values; the kind's defaults fill what is not given), reads
the network's input (``pre=None``) or another layer's output (``pre=layer``), and is checked
against its kind's declaration at construction: a wrong dtype, shape or setting raises a
``ValueError`` naming the layer, the array and what it must be.

Example::

    >>> import numpy as np
    >>> from s2jax import qnet
    >>> dense = qnet.Layer("mla_dense", {"w": np.ones((2, 3), np.int8)}, settings={"shift": 1}, name="fc")
    >>> dense.in_shape, dense.out_shape, dense.profile
    ((3,), (2,), 'fixed')
"""

from __future__ import annotations

import copy
import json
from types import MappingProxyType

import numpy as np

from s2jax import kinds
from s2jax.qnet.checks import check_name

__all__ = ["Layer", "egru_network", "MAX_LAYER_VALUES"]

#: The most values one array of a layer may hold: 2^24, about the SRAM of one chip's PEs as int8
#: (152 PEs x 96 KiB is 14.6 M) with room for a board-sized layer's slices to be mapped and refused
#: by the design rules rather than by memory.
MAX_LAYER_VALUES = 2**24


class Layer:
    """One layer: ``Layer(kind, arrays, *, settings=None, pre=None, name=None)``."""

    def __init__(self, kind: str, arrays: dict, *, settings: dict | None = None, pre: Layer | None = None,
                 name: str | None = None):
        self.name = check_name(name, "layer")
        self.kind = kinds.get_layer(kind)
        where = f"layer {name!r} ({kind})" if name else f"a layer of kind {kind!r}"
        if not isinstance(arrays, dict) or not all(isinstance(k, str) for k in arrays):
            raise ValueError(f"{where}: arrays must be a dict of named arrays, got {type(arrays).__name__}")
        unknown = sorted(set(arrays) - set(self.kind.arrays))
        if unknown:
            raise ValueError(f"{where}: unknown arrays {unknown}; the kind has {list(self.kind.arrays)}")
        self.arrays = {}
        for k, a in arrays.items():
            if a is None:
                continue
            size = int(np.prod(np.shape(a), dtype=np.float64))
            if size > MAX_LAYER_VALUES:
                raise ValueError(f"{where}: array {k!r} has {size:,} values, over the limit of {MAX_LAYER_VALUES:,} "
                                 f"(qnet.MAX_LAYER_VALUES, about what one chip's SRAM holds as int8)")
            a = np.array(a, copy=True)
            if a.dtype == object or not (np.issubdtype(a.dtype, np.number)):
                raise ValueError(f"{where}: array {k!r} must be numeric, got dtype {a.dtype}")
            a.flags.writeable = False
            self.arrays[k] = a
        self.arrays = MappingProxyType(self.arrays)  # read only: edits would skip the checks below
        settings = {} if settings is None else settings
        if not isinstance(settings, dict):
            raise ValueError(f"{where}: settings must be a dict, got {type(settings).__name__}")
        unknown = sorted(set(settings) - set(self.kind.settings))
        if unknown:
            raise ValueError(f"{where}: unknown settings {unknown}; the kind has {list(self.kind.settings)}")
        self.settings = {**copy.deepcopy(dict(self.kind.settings)), **copy.deepcopy(settings)}
        try:
            json.dumps(self.settings, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: settings must be JSON values ({e})") from None
        if pre is not None and not isinstance(pre, Layer):
            raise ValueError(f"{where}: pre must be another Layer or None (the network input), got "
                             f"{type(pre).__name__}")
        try:
            in_shape, out_shape, profile = self.kind.shape(self.arrays, self.settings)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        self.in_shape, self.out_shape, self.profile = tuple(in_shape), tuple(out_shape), profile
        if pre is not None and pre.out_shape != self.in_shape:
            raise ValueError(f"{where}: expects inputs of shape {self.in_shape}, layer {pre.name!r} gives "
                             f"{pre.out_shape}")
        if pre is not None and pre.output_dtype != self.input_dtype:
            raise ValueError(f"{where}: consumes {self.input_dtype.name} inputs, layer {pre.name!r} gives "
                             f"{pre.output_dtype.name}")
        self.pre = pre

    @property
    def size(self) -> int:
        """Output units (the product of ``out_shape``)."""
        return int(np.prod(self.out_shape))

    @property
    def input_dtype(self):
        """The dtype of the inputs this layer consumes."""
        return np.dtype(self.kind.input_dtype(self.settings, self.profile))

    @property
    def output_dtype(self):
        """The dtype of the outputs this layer gives."""
        return np.dtype(self.kind.output_dtype(self.settings, self.profile))

    def __repr__(self):
        return f"Layer({self.kind.name!r}, name={self.name!r}, {self.in_shape} -> {self.out_shape}, {self.profile})"


def egru_network(layers, name: str = "egru", *, input_bound: int = 32767):
    """The :class:`~s2jax.qnet.Network` of a stack of EGRU layers (:class:`s2jax.egru.EGRULayer`
    data, e.g. from ``quant.quantize``'s EGRU path): layers ``egru0``, ``egru1``, ... each reading the
    previous one (the first reads the input); ``input_bound``: the first layer's largest input
    magnitude in Q3.12 units (its accumulator design rule)."""
    from s2jax.kinds.egru import layer_arrays
    from s2jax.qnet.network import Network

    net, prev = Network(name), None
    for k, layer in enumerate(layers):
        settings = {"input_bound": int(input_bound)} if k == 0 else {}
        prev = Layer("egru", layer_arrays(layer), settings=settings, pre=prev, name=f"egru{k}")
        net.add(prev)
    return net
