"""The oracle of every layer kind: ``LAYER_ORACLES[kind](layer, x, spec) -> outputs``, ``x`` ``(B, T, ...)``
the layer's inputs and the outputs ``(B, T, ...)`` as int64 (integer layers) or float32, computed with
the scalar references of this folder. ``tests/kinds/test_layer_kinds.py`` fails for a registered
layer kind without an entry here."""

from __future__ import annotations

import numpy as np

from s2jax.egru import EGRULayer
from tests.reference import egru_oracle, mla_oracle


def _egru(layer, x, spec):
    a = layer.arrays
    data = EGRULayer(a["w_in"], a["w_rec"], a.get("e_in"), a.get("e_rec"), a["bias"], a["b_rg"], a["theta"])
    (y, _), = egru_oracle.run([data], np.asarray(x), "int" if layer.profile == "fixed" else "float32", spec)
    return y


def _mla(conv: bool):
    def run(layer, x, spec):
        s, a = layer.settings, layer.arrays
        b, t = x.shape[:2]
        flat = np.asarray(x).reshape(b * t, *x.shape[2:])
        common = dict(shift=s["shift"], rounding=spec.mla_shift_rounding, relu=s["relu"], lo=s["out_range"][0],
                      hi=s["out_range"][1])
        if conv:
            y = mla_oracle.conv2d(flat, a["w"], a.get("bias"), stride=s["stride"], pad=s["padding"], **common)
        else:
            y = mla_oracle.dense(flat, a["w"], a.get("bias"), **common)
        return y.reshape(b, t, *y.shape[1:])
    return run


LAYER_ORACLES = {"egru": _egru, "mla_dense": _mla(False), "mla_conv2d": _mla(True)}
