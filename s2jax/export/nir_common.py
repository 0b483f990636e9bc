"""Shared pieces of NIR export and import: the format version, node families, the error type, and
small helpers for ``s2jax_*`` metadata, ``dt`` and integer pairs."""

from __future__ import annotations

import math
import numbers

import numpy as np

import nir

FORMAT_VERSION = 1
_P = "s2jax_"

NEURON_NODES = (nir.LIF, nir.IF, nir.CubaLIF, nir.LI)
WEIGHT_NODES = (nir.Affine, nir.Linear, nir.Conv2d)
SHAPE_NODES = (nir.SumPool2d, nir.Flatten)
SUPPORTED_NODES = (nir.Input, nir.Output) + WEIGHT_NODES + SHAPE_NODES + NEURON_NODES
INTEGRATORS = ("forward", "exponential")
RESETS = {"subtract": "reset_by_subtraction", "zero": "reset_to_v_reset"}
QNET_PARAMS = ("threshold", "alpha_decay", "i_offset", "v_init", "v_reset", "exc_decay", "inh_decay", "t_refrac")


class NIRFileError(ValueError):
    """A path that is not a readable NIR file (missing, not HDF5, or HDF5 without a NIR graph)."""


def _kind(node) -> str:
    return type(node).__name__


def _check_dt(dt) -> float:
    if isinstance(dt, bool) or not isinstance(dt, numbers.Real) or not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
    return float(dt)


def _md(node) -> dict:
    return node.metadata if isinstance(getattr(node, "metadata", None), dict) else {}


def _text(v) -> str:
    """A metadata string as written (str) or as read back from HDF5 (bytes)."""
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("utf8")
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return _text(v.item())
    return str(v)


def _meta(**items) -> dict:
    """``s2jax_``-prefixed metadata that nir.write stores: 0-d arrays become NumPy scalars (its
    HDF5 writer compresses arrays, which scalar datasets refuse)."""
    return {_P + k: (v[()] if isinstance(v, np.ndarray) and v.ndim == 0 else v) for k, v in items.items()}


def _need(md: dict, key: str, where: str):
    if _P + key not in md:
        raise ValueError(f"{where}: the graph was written by s2jax but metadata {_P + key!r} is missing; "
                         f"pass use_metadata=False to convert the NIR parameters instead")
    return md[_P + key]


def _pair(v, name: str, where: str) -> tuple[int, int]:
    a = np.asarray(v).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, 2)
    if a.size != 2 or not np.all(np.mod(a, 1) == 0):
        raise ValueError(f"{where}: {name} must be an integer or a pair of integers, got {v!r}")
    return int(a[0]), int(a[1])
