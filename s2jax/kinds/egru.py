"""The ``egru`` layer kind: one event-based GRU layer as the chip stores it (:mod:`s2jax.egru` has
the equations and the integer format), a node of the hand-off format (``qnet.Layer("egru", arrays)``).

Arrays (``(I, 3H)`` kernels, columns ``[z | r | g]``):

==========  ===============================  ===============================
array       fixed profile                    float32 profile
==========  ===============================  ===============================
w_in        int8 ``(I, 3H)``                 float32 ``(I, 3H)``
w_rec       int8 ``(H, 3H)``                 float32 ``(H, 3H)``
e_in        int8 ``(3H,)`` exponents         absent
e_rec       int8 ``(3H,)`` exponents         absent
bias        int16 Q3.12 ``(3H,)``            float32 ``(3H,)``
b_rg        int16 Q3.12 ``(H,)``             float32 ``(H,)``
theta       int16 Q3.12 ``(H,)``             float32 ``(H,)``
==========  ===============================  ===============================

Setting ``input_bound``: the largest input magnitude (Q3.12 units) a first layer may receive, for
the accumulator rule (layers fed by another EGRU layer receive events of at most ``2^F``).

Design rules (``export.check``): ``egru_weight_range`` (int8 weights in the spec's symmetric range),
``egru_exponent_range``, ``egru_threshold_range`` (``theta`` in ``[0, 2^F]``), ``egru_accumulator``
(no int32 sum can overflow), ``egru_finite`` (float32 arrays). SRAM per unit (an estimate; the
chip's EGRU layout is not published): its weight column of both kernels, its exponents, biases,
threshold and state ``y, h``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from s2jax import egru
from s2jax.kinds.base import LayerKind, register

__all__ = ["KIND", "params_of", "layer_arrays", "accumulator_violations"]

ARRAYS = {
    "w_in": "input kernel (I, 3H): int8 (fixed) or float32",
    "w_rec": "recurrent kernel (H, 3H): int8 (fixed) or float32",
    "e_in": "per-column exponents of w_in (3H,): int8, fixed profile only",
    "e_rec": "per-column exponents of w_rec (3H,): int8, fixed profile only",
    "bias": "[b_z | b_r | b_xg] (3H,): int16 Q3.12 or float32",
    "b_rg": "recurrent candidate bias (H,): int16 Q3.12 or float32",
    "theta": "event thresholds (H,): int16 Q3.12 or float32",
}
_FIXED = {"w_in": np.int8, "w_rec": np.int8, "e_in": np.int8, "e_rec": np.int8, "bias": np.int16,
          "b_rg": np.int16, "theta": np.int16}


def params_of(arrays) -> egru.EGRUParams:
    """The arrays as the step reads them (``e_*`` None in the float32 profile)."""
    return egru.EGRUParams(*(arrays.get(k) for k in ARRAYS))


def layer_arrays(layer) -> dict:
    """An :class:`s2jax.egru.EGRULayer` (or its fields in order) as the arrays of an ``egru`` layer."""
    return {k: np.asarray(v) for k, v in zip(ARRAYS, egru.EGRULayer(*layer)) if v is not None}


def _shape(arrays, settings):
    profile = "fixed" if "e_in" in arrays or "e_rec" in arrays else "float32"
    want = {k: (_FIXED[k] if profile == "fixed" else np.float32) for k in ARRAYS}
    needed = [k for k in ARRAYS if profile == "fixed" or k not in ("e_in", "e_rec")]
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise ValueError(f"an egru layer of the {profile} profile needs arrays {missing}")
    for k in needed:
        if arrays[k].dtype != want[k]:
            raise ValueError(f"egru array {k!r} must be {np.dtype(want[k]).name} in the {profile} profile, "
                             f"got {arrays[k].dtype}")
    w_in, theta = arrays["w_in"], arrays["theta"]
    if theta.ndim != 1 or theta.size < 1:
        raise ValueError(f"egru array 'theta' must have shape (H,) with H >= 1, got {theta.shape}")
    h = theta.size
    shapes = {"w_in": (w_in.shape[0] if w_in.ndim == 2 else -1, 3 * h), "w_rec": (h, 3 * h), "e_in": (3 * h,),
              "e_rec": (3 * h,), "bias": (3 * h,), "b_rg": (h,), "theta": (h,)}
    for k in needed:
        if arrays[k].shape != shapes[k] or (k == "w_in" and w_in.shape[0] < 1):
            raise ValueError(f"egru array {k!r} must have shape {shapes[k]} (H = {h} units from theta), "
                             f"got {arrays[k].shape}")
    bound = settings.get("input_bound", 32767)
    if not isinstance(bound, int) or isinstance(bound, bool) or not 0 <= bound <= 32768:
        raise ValueError(f"egru setting 'input_bound' must be an integer in [0, 32768], got {bound!r}")
    return (w_in.shape[0],), (h,), profile


def _input_dtype(settings, profile):
    return np.int16 if profile == "fixed" else np.float32


def _init_state(arrays, settings, num):
    return egru.zero_state(arrays["theta"].shape, num)


def _step(arrays, settings, state, x, num):
    state, y = egru.egru_step(params_of(arrays), state, x, num)
    return state, y


def _synaptic_events(arrays, x, state):
    """Synapses reached per tick (``x`` ``(T, I)``, ``state.y`` ``(T, H)`` the events before each tick):
    every non-zero input and recurrent event reaches the non-zero (unpruned) weights of its kernel row."""
    def reached(v, w):
        return jnp.dot((v != 0).astype(jnp.int32), jnp.count_nonzero(w, axis=1).astype(jnp.int32))

    return reached(x, arrays["w_in"]) + reached(state.y, arrays["w_rec"])


def _synapses(arrays, settings):
    return int(np.count_nonzero(arrays["w_in"]) + np.count_nonzero(arrays["w_rec"]))


def accumulator_violations(w_q, bound: int, hidden: int) -> list[tuple[int, int]]:
    """``[(column, worst |sum|), ...]`` of an int8 kernel whose int32 sum can overflow for inputs up to
    ``bound`` in magnitude (``sum_i |w[i, o]| * bound > 2^31 - 1``)."""
    worst = np.abs(np.asarray(w_q, np.int64)).sum(axis=0) * int(bound)
    return [(int(o), int(worst[o])) for o in np.flatnonzero(worst > 2**31 - 1)]


def _unit(o: int, hidden: int) -> str:
    return f"gate {'zrg'[o // hidden]} of unit {o % hidden}"


def _rules(layer, spec):
    arrays, where, out = layer.arrays, f"egru layer {layer.name!r}", []
    if layer.profile == "float32":
        for k, a in arrays.items():
            if not np.isfinite(a).all():
                out.append(("egru_finite", "non-finite", "finite", f"{where}: array {k!r} holds NaN or infinite values"))
        return out
    hidden = arrays["theta"].size
    limit = 2 ** (spec.egru_weight_bits - 1) - 1
    lo, hi = spec.egru_weight_exponent_range
    one = 2**spec.egru_frac_bits
    for k in ("w_in", "w_rec"):
        peak = int(np.abs(arrays[k].astype(np.int64)).max(initial=0))
        if peak > limit:
            out.append(("egru_weight_range", peak, limit, f"{where}: {k} holds |w| = {peak}, beyond the "
                        f"{spec.egru_weight_bits}-bit weights' [-{limit}, {limit}]"))
    for k in ("e_in", "e_rec"):
        e = arrays[k].astype(np.int64)
        bad = (e < lo) | (e > hi)
        if bad.any():
            o = int(np.argmax(bad))
            out.append(("egru_exponent_range", int(e[o]), (lo, hi), f"{where}: {k} of {_unit(o, hidden)} is "
                        f"{int(e[o])}, outside the exponent range [{lo}, {hi}]"))
    theta = arrays["theta"].astype(np.int64)
    bad = (theta < 0) | (theta > one)
    if bad.any():
        u = int(np.argmax(bad))
        out.append(("egru_threshold_range", int(theta[u]), (0, one), f"{where}: theta of unit {u} is "
                    f"{int(theta[u])} (Q units), outside [0, {one}] (0 to 1.0)"))
    first = layer.pre is None
    for k, bound in (("w_in", layer.settings["input_bound"] if first else one), ("w_rec", one)):
        for o, worst in accumulator_violations(arrays[k], bound, hidden)[:1]:
            what = "inputs" if k == "w_in" and first else "events"
            out.append(("egru_accumulator", worst, 2**31 - 1, f"{where}: the {k} sum of {_unit(o, hidden)} can "
                        f"reach {worst:,} > 2^31 - 1 ({what} up to {bound} in Q units): prune or shrink its weights"))
    return out


def _unit_bytes(arrays, settings, spec):
    n_in, hidden = arrays["w_in"].shape[0], arrays["theta"].size
    word = 1 if arrays["w_in"].dtype == np.int8 else 4
    value = 2 if word == 1 else 4
    exponents = 6 if word == 1 else 0
    return 3 * (n_in + hidden) * word + exponents + 5 * value + 2 * value  # weights, exps, bias x3 + b_rg + theta, y, h


KIND = register(LayerKind(
    name="egru",
    doc="event-based GRU layer (graded events, reset by subtraction)",
    arrays=ARRAYS,
    settings={"input_bound": 32767},
    shape=_shape,
    input_dtype=_input_dtype,
    output_dtype=_input_dtype,
    init_state=_init_state,
    step=_step,
    events=lambda y: y > 0,
    synaptic_events=_synaptic_events,
    synapses=_synapses,
    updates=lambda arrays, settings: int(arrays["theta"].size),
    rules=_rules,
    unit_bytes=_unit_bytes,
))
