"""EGRU layers: the ``EGRU`` recurrent cell, the multi-layer ``EGRUStack``, pruning and CSR rows.

``EGRU`` holds only parameters and calls :func:`s2jax.egru.egru_step` (equations, shapes and the
integer format are in :mod:`s2jax.egru`) with its numerics (:mod:`s2jax.numerics`):
:class:`~s2jax.numerics.FloatNumerics` for float training, the chip's after ``s2jax.quant.qat``.
It follows the Flax contract ``cell(carry, x) -> (carry, y)`` with ``initialize_carry``, so it runs
inside ``nnx.RNN``; ``y`` is the graded event output ``(..., H)`` (float32; ``y > 0`` exactly on an
event).

Parameters: ``w_in`` ``(I, 3H)``, ``w_rec`` ``(H, 3H)`` (columns ``[z | r | g]``), ``bias``
``(3H,)`` = ``[b_z | b_r | b_xg]``, ``b_rg`` ``(H,)``, ``theta`` ``(H,)`` (learnable, used clamped
to [0, 1]). After :func:`prune` the kernels are multiplied by fixed 0/1 masks everywhere (float,
QAT, quantization), so pruned weights stay zero and get no gradient.

Integer QAT (``profile="fixed"``): the cell runs the exact integer step and, beside it, a float
shadow of the same step on the dequantized parameters, resynchronized to the integer state every
tick; outputs carry the integer values (as float32, ``q / 2^12``) and the shadow's gradient
(:func:`s2jax.numerics.straight_through`). The carry is then ``(integer EGRUState, float
EGRUState)``, both from :func:`s2jax.egru.zero_state`.

Regularizers (training only; the chip has neither, and ``model.eval()`` turns both off, so an
evaluated cell is exactly the chip's step): ``dropout`` on the cell's inputs and ``zoneout`` (each
unit keeps its previous ``h`` with probability ``zoneout``).

Example::

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> cell = EGRU(3, 4, rngs=nnx.Rngs(0))
    >>> y = nnx.RNN(cell)(jnp.ones((2, 5, 3)))          # (batch, time, features)
    >>> y.shape
    (2, 5, 4)
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from s2jax.egru import EGRUParams, EGRUState, egru_step, event, pseudo_derivative, zero_state
from s2jax.numerics import FloatNumerics, straight_through

__all__ = ["EGRU", "EGRUStack", "EGRUStackOutput", "egru_cells", "prune", "CSR", "to_csr", "from_csr", "event",
           "pseudo_derivative"]


def _recurrent_init(init, key, hidden):
    keys = jax.random.split(key, 3)
    return jnp.concatenate([init(k, (hidden, hidden), jnp.float32) for k in keys], axis=1)


class EGRU(nnx.Module):
    """Event-based GRU cell (Subramoney et al., ICLR 2023) with ``hidden_features`` units.

    ``threshold``: initial per-unit threshold (scalar or ``(H,)``); ``gamma``, ``slope``: the
    pseudo-derivative ``gamma * max(0, 1 - slope |c - theta|)``; ``dropout``: rate on the inputs;
    ``zoneout``: probability that a unit keeps its previous state ``h``. Input kernels default to
    LeCun normal, recurrent kernels to one orthogonal ``(H, H)`` block per gate, biases to zero.
    """

    def __init__(self, in_features: int, hidden_features: int, *, threshold=0.2, gamma: float = 0.7,
                 slope: float = 1.0, dropout: float = 0.0, zoneout: float = 0.0,
                 kernel_init=nnx.initializers.lecun_normal(), recurrent_kernel_init=nnx.initializers.orthogonal(),
                 rngs: nnx.Rngs):
        for name, rate in (("dropout", dropout), ("zoneout", zoneout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"EGRU {name} must be in [0, 1), got {rate}")
        self.in_features, self.hidden_features = int(in_features), int(hidden_features)
        h = self.hidden_features
        self.w_in = nnx.Param(kernel_init(rngs.params(), (self.in_features, 3 * h), jnp.float32))
        self.w_rec = nnx.Param(_recurrent_init(recurrent_kernel_init, rngs.params(), h))
        self.bias = nnx.Param(jnp.zeros((3 * h,), jnp.float32))
        self.b_rg = nnx.Param(jnp.zeros((h,), jnp.float32))
        self.theta = nnx.Param(jnp.broadcast_to(jnp.asarray(threshold, jnp.float32), (h,)))
        self.mask_in = nnx.data(None)  # set by prune(): fixed 0/1 masks of the kernels
        self.mask_rec = nnx.data(None)
        self.gamma, self.slope = float(gamma), float(slope)
        self.numerics = self._float_numerics()
        self.quantizer = None  # set by s2jax.quant.qat for the integer profile
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.zoneout = float(zoneout)
        self.zoneout_rngs = rngs.dropout.fork() if zoneout > 0 else nnx.data(None)
        self.deterministic = False

    # --- parameters ------------------------------------------------------------------------------

    def float_params(self) -> EGRUParams:
        """Masked kernels, biases and the clamped threshold, float32: what every profile starts from."""
        w_in, w_rec = self.w_in[...], self.w_rec[...]
        if self.mask_in is not None:
            w_in = w_in * self.mask_in[...]
            w_rec = w_rec * self.mask_rec[...]
        return EGRUParams(w_in, w_rec, None, None, self.bias[...], self.b_rg[...],
                          jnp.clip(self.theta[...], 0.0, 1.0))

    @property
    def profile(self) -> str:
        return self.numerics.name

    def _float_numerics(self) -> FloatNumerics:
        """Float training numerics; also the integer profile's shadow."""
        return FloatNumerics(gamma=self.gamma, slope=self.slope)

    @property
    def num_feature_axes(self) -> int:
        return 1

    # --- recurrent cell ------------------------------------------------------------------------------

    def initialize_carry(self, input_shape, rngs=None):
        shape = (*tuple(input_shape)[:-1], self.hidden_features)
        if self.profile == "fixed":
            return zero_state(shape, self.numerics), zero_state(shape, self._float_numerics())
        return zero_state(shape, self.numerics)

    def __call__(self, carry, x):
        x = self.dropout(jnp.asarray(x, jnp.float32), deterministic=self.deterministic)
        keep = self._zoneout_mask(x.shape[:-1])
        if self.profile != "fixed":
            new, y = egru_step(self.float_params(), carry, x, self.numerics)
            return self._zone(keep, carry, new), y
        if self.quantizer is None:
            raise ValueError("EGRU has integer numerics but no quantizer: use s2jax.quant.qat(model, QuantConfig(profile=\"fixed\"))")
        exact, shadow = carry
        q = self.quantizer
        p_int, p_shadow = q.params(self.float_params())
        x_int, x_shadow = q.fixed(x)
        exact_new, _ = egru_step(p_int, exact, x_int, self.numerics)
        shadow_new, _ = egru_step(p_shadow, shadow, x_shadow, self._float_numerics())
        exact_new = self._zone(keep, exact, exact_new)
        shadow_new = self._zone(keep, shadow, shadow_new)
        shadow_new = EGRUState(*(straight_through(q.dequantize(e), s) for e, s in zip(exact_new, shadow_new)))
        return (exact_new, shadow_new), shadow_new.y

    def _zoneout_mask(self, batch_shape):
        if self.zoneout == 0.0 or self.deterministic:
            return None
        return jax.random.bernoulli(self.zoneout_rngs(), self.zoneout, (*batch_shape, self.hidden_features))

    @staticmethod
    def _zone(keep, old, new):
        return new if keep is None else EGRUState(new.y, jnp.where(keep, old.h, new.h))


def egru_cells(model) -> list[EGRU]:
    """The EGRU cells of ``model`` (a cell, an ``EGRUStack``, or any module holding cells), in the
    order ``nnx.iter_modules`` visits them (an ``EGRUStack``: layer order)."""
    if isinstance(model, EGRU):
        return [model]
    return [m for _, m in nnx.iter_modules(model) if isinstance(m, EGRU)]


class EGRUStackOutput(NamedTuple):
    """``output``: the last layer's events ``(B, T, H)``; ``outputs``: every layer's; ``event_rates``:
    per layer, events per unit per step (mean of ``y > 0`` over batch, time and units, no gradient);
    ``carries``: every layer's final carry."""

    output: jnp.ndarray
    outputs: tuple
    event_rates: tuple
    carries: tuple


class EGRUStack(nnx.Module):
    """Layers of EGRU cells, each fed the previous layer's events of the same step (``(B, T, I)`` in).

    ``hidden_features``: the units of each layer; the cell options apply to every layer.
    """

    def __init__(self, in_features: int, hidden_features: Sequence[int], *, threshold=0.2, gamma: float = 0.7,
                 slope: float = 1.0, dropout: float = 0.0, zoneout: float = 0.0, rngs: nnx.Rngs):
        sizes = [int(in_features), *(int(h) for h in hidden_features)]
        if len(sizes) < 2:
            raise ValueError("EGRUStack needs at least one layer in hidden_features")
        self.layers = nnx.List([
            nnx.RNN(EGRU(a, b, threshold=threshold, gamma=gamma, slope=slope, dropout=dropout, zoneout=zoneout,
                         rngs=rngs), return_carry=True)
            for a, b in zip(sizes[:-1], sizes[1:])])

    @property
    def cells(self) -> list[EGRU]:
        return [rnn.cell for rnn in self.layers]

    def __call__(self, x) -> EGRUStackOutput:
        h = jnp.asarray(x, jnp.float32)
        outputs, rates, carries = [], [], []
        for rnn in self.layers:
            carry, h = rnn(h)
            outputs.append(h)
            rates.append(lax.stop_gradient(jnp.mean((h > 0).astype(jnp.float32))))
            carries.append(carry)
        return EGRUStackOutput(h, tuple(outputs), tuple(rates), tuple(carries))


# --- pruning and the chip's CSR rows --------------------------------------------------------------------


def prune(model, sparsity: float):
    """Magnitude pruning, in place: in every EGRU cell of ``model`` each kernel (``w_in``, ``w_rec``)
    gets a 0/1 mask zeroing its ``round(sparsity * size)`` smallest-magnitude weights (already
    pruned ones first; ties in index order). The masks are kept by QAT and quantization. Returns
    ``model``."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    for cell in egru_cells(model):
        p = cell.float_params()
        masks = []
        for w in (p.w_in, p.w_rec):
            flat = np.abs(np.asarray(w, np.float64)).reshape(-1)
            mask = np.ones(flat.size, np.float32)
            mask[np.argsort(flat, kind="stable")[: int(round(sparsity * flat.size))]] = 0.0
            masks.append(jnp.asarray(mask.reshape(w.shape)))
        cell.mask_in, cell.mask_rec = nnx.Variable(masks[0]), nnx.Variable(masks[1])
    return model


class CSR(NamedTuple):
    """Compressed sparse rows of a ``(n_pre, n_post)`` matrix: row ``i`` (the synapses an event of
    pre unit ``i`` reaches) is ``indices[indptr[i]:indptr[i+1]]`` (post units, ascending) with
    ``values`` in the same positions."""

    indptr: np.ndarray  # (n_pre + 1,) int32
    indices: np.ndarray  # (nnz,) int32
    values: np.ndarray  # (nnz,) the matrix's dtype
    shape: tuple[int, int]


def to_csr(weights) -> CSR:
    """The CSR rows of a dense 2-D weight matrix (e.g. ``EGRULayer.w_in``); zeros are dropped."""
    w = np.asarray(weights)
    if w.ndim != 2:
        raise ValueError(f"to_csr needs a 2-D matrix, got shape {w.shape}")
    rows, cols = np.nonzero(w)
    indptr = np.zeros(w.shape[0] + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=w.shape[0]), out=indptr[1:])
    return CSR(indptr, cols.astype(np.int32), w[rows, cols], (int(w.shape[0]), int(w.shape[1])))


def from_csr(csr: CSR) -> np.ndarray:
    """The dense matrix of ``csr`` (inverse of :func:`to_csr`)."""
    w = np.zeros(csr.shape, csr.values.dtype)
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    w[rows, csr.indices] = csr.values
    return w
