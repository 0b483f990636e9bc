"""Independent scalar oracle of the SpiNNaker2 neuron semantics (SPINNAKER2.md sections 3 and 4).

Written separately from ``s2jax.hwmodel``: it imports no arithmetic helper from the package (only
the data classes of ``s2jax.qnet`` and the numbers of ``ChipSpec``), loops over ticks, neurons and
synapses in plain Python, delivers spikes as events into a schedule of future ticks, computes the
float32 profile with NumPy float32 scalars one operation at a time and the fixed-point profile
with unbounded Python integers and explicit saturation. Slow by design; use it on small networks
(and on a few ticks of big ones).
"""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

import numpy as np

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
F32 = np.float32


TINY = np.finfo(np.float32).tiny


def _ftz(x):
    """ChipSpec.flush_subnormals: a float32 below 2^-126 in magnitude is a signed zero."""
    x = F32(x)
    if x != 0 and abs(x) < TINY:
        return F32(np.copysign(F32(0), x))
    return x


def _sat(x: int) -> int:
    return min(max(x, I32_MIN), I32_MAX)


def _round_fraction(x: Fraction, mode: str) -> int:
    fl = x.numerator // x.denominator
    rem = x - fl
    if mode == "floor":
        return fl
    if mode == "to_zero":
        return fl + 1 if (x < 0 and rem != 0) else fl
    if mode == "half_up":
        return fl + 1 if rem >= Fraction(1, 2) else fl
    if mode == "half_even":
        if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2 == 1):
            return fl + 1
        return fl
    raise ValueError(mode)


class _Neuron:
    __slots__ = ("v", "i_exc", "i_inh", "r")


class Oracle:
    def __init__(self, net, profile: str, spec):
        self.net, self.profile, self.spec = net, profile, spec
        self.frac = spec.fixed_v_frac_bits
        self.dfrac = spec.fixed_decay_frac_bits
        self.param_mode = spec.fixed_param_rounding.value
        self.decay_mode = spec.fixed_decay_rounding.value

    # --- parameters, converted here independently of s2jax.hwmodel.program ---------------------
    def value(self, pop, key, i):
        raw = np.broadcast_to(np.asarray(pop.params[key], dtype=np.float64), (pop.size,))[i]
        x = F32(raw)
        if self.profile == "float32":
            return _ftz(x)
        q = Fraction(float(x)) * 2**self.frac if np.isfinite(x) else None
        if key == "threshold" and ((q is None and x > 0) or (q is not None and q >= I32_MAX)):
            return I32_MAX
        q = _round_fraction(q, self.param_mode)
        if not I32_MIN <= q <= I32_MAX:
            raise ValueError("parameter out of fixed-point range")
        return q

    def decay(self, pop, key, i):
        raw = np.broadcast_to(np.asarray(pop.params[key], dtype=np.float64), (pop.size,))[i]
        if self.profile == "float32":
            return _ftz(raw)
        return _round_fraction(Fraction(float(F32(raw))) * 2**self.dfrac, self.param_mode)

    # --- arithmetic ----------------------------------------------------------------------------
    def mul_decay(self, a, x):
        if self.profile == "float32":
            return _ftz(F32(a) * F32(x))
        return _round_fraction(Fraction(a * x, 2**self.dfrac), self.decay_mode)

    def add(self, a, b):
        return _ftz(F32(a) + F32(b)) if self.profile == "float32" else _sat(a + b)

    def sub(self, a, b):
        return _ftz(F32(a) - F32(b)) if self.profile == "float32" else _sat(a - b)

    def syn(self, total: int):
        return F32(total) if self.profile == "float32" else _sat(total * 2**self.frac)

    def fire(self, v, thr) -> bool:
        return bool(v > thr) if self.spec.threshold_strict else bool(v >= thr)

    # --- simulation ----------------------------------------------------------------------------
    def run(self, inputs: dict, timesteps: int):
        """``inputs``: ``{name: (T, n) 0/1}``; returns spikes ``{name: (T, n) bool}``, voltages
        ``{name: (T, n)}`` (float32, or int raw s16.15), events ``(T, P)`` (network population order)."""
        from s2jax.qnet import Conv2DProjection

        pops = self.net.populations
        pidx = {id(p): k for k, p in enumerate(pops)}
        # outgoing synapses of every neuron: (post pop, post neuron, weight, delay)
        out = defaultdict(list)
        convs = []
        for proj in self.net.projections:
            if isinstance(proj, Conv2DProjection):
                convs.append(proj)
                continue
            for pre_i, post_i, w, d in proj.connections.tolist():
                out[(id(proj.pre), pre_i)].append((proj.post, post_i, w, d))
        state = {}
        for p in pops:
            if p.neuron_model == "spike_list":
                continue
            neurons = []
            for i in range(p.size):
                n = _Neuron()
                n.v = self.value(p, "v_init", i)
                n.i_exc = n.i_inh = F32(0) if self.profile == "float32" else 0
                n.r = 0
                neurons.append(n)
            state[id(p)] = neurons
        # pending[t][(id(post), i)] = [E, N] integer sums arriving at tick t
        pending = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        spikes = {p.name: np.zeros((timesteps, p.size), bool) for p in pops}
        volts = {p.name: [] for p in pops if p.neuron_model != "spike_list"}
        events = np.zeros((timesteps, len(pops)), np.int64)
        prev = {p.name: np.zeros(p.size, bool) for p in pops}
        for t in range(timesteps):
            arriving = pending.pop(t, {})
            conv_in = self._conv_inputs(convs, prev, events, t, pidx)
            for p in pops:
                if p.neuron_model == "spike_list":
                    spikes[p.name][t] = np.asarray(inputs[p.name][t]) != 0
                    continue
                vs = []
                for i, n in enumerate(state[id(p)]):
                    e, ng = arriving.get((id(p), i), (0, 0))
                    e += conv_in.get((id(p), i), 0)
                    z = self._step(p, i, n, e, ng)
                    spikes[p.name][t, i] = z
                    vs.append(n.v)
                volts[p.name].append(vs)
            # emit: every spike of tick t is delivered at t + 1 + d
            for p in pops:
                for i in np.nonzero(spikes[p.name][t])[0].tolist():
                    for post, post_i, w, d in out.get((id(p), i), ()):
                        slot = pending[t + 1 + d][(id(post), post_i)]
                        if STEPS[post.neuron_model][1]:
                            if w > 0:
                                slot[0] += w
                            elif w < 0:
                                slot[1] += -w
                        else:
                            slot[0] += w
                        if t + 1 + d < timesteps:
                            events[t + 1 + d, pidx[id(post)]] += 1
            prev = {p.name: spikes[p.name][t] for p in pops}
        volts = {k: np.array(v, dtype=np.float32 if self.profile == "float32" else np.int64) for k, v in volts.items()}
        return spikes, volts, events

    def _conv_inputs(self, convs, prev, events, t, pidx):
        got = defaultdict(int)
        for proj in convs:
            cp = proj.conv_params
            w = proj.weights
            c_in, c_out, kh, kw = w.shape
            h, wd = cp["in_height"], cp["in_width"]
            x = prev[proj.pre.name].reshape(c_in, h, wd)
            ph, pw = h // cp["pool_y"], wd // cp["pool_x"]
            pooled = [[[0] * pw for _ in range(ph)] for _ in range(c_in)]
            for c in range(c_in):
                for yy in range(ph):
                    for xx in range(pw):
                        s = 0
                        for dy in range(cp["pool_y"]):
                            for dx in range(cp["pool_x"]):
                                s += int(x[c, yy * cp["pool_y"] + dy, xx * cp["pool_x"] + dx])
                        pooled[c][yy][xx] = s
            for o in range(c_out):
                for oy in range(proj.out_height):
                    for ox in range(proj.out_width):
                        acc = 0
                        for c in range(c_in):
                            for ky in range(kh):
                                for kx in range(kw):
                                    iy = oy * cp["stride_y"] + ky - cp["pad_top"]
                                    ix = ox * cp["stride_x"] + kx - cp["pad_left"]
                                    if 0 <= iy < ph and 0 <= ix < pw and pooled[c][iy][ix]:
                                        wt = int(w[c, o, ky, kx])
                                        acc += wt * pooled[c][iy][ix]
                                        if wt != 0:
                                            events[t, pidx[id(proj.post)]] += pooled[c][iy][ix]
                        got[(id(proj.post), (o * proj.out_height + oy) * proj.out_width + ox)] += acc
        return got

    def _step(self, p, i, n, e, ng) -> bool:
        return STEPS[p.neuron_model][0](self, p, i, n, e, ng)


def _reset(o, p, i, n, z):
    if z:
        n.v = o.sub(n.v, o.value(p, "threshold", i)) if p.params["reset"] == "reset_by_subtraction" \
            else o.value(p, "v_reset", i)


def _lif(o, p, i, n, e, ng) -> bool:
    """LIF family: one signed input sum ``e`` (``ng`` is 0)."""
    n.v = o.add(o.add(o.mul_decay(o.decay(p, "alpha_decay", i), n.v), o.syn(e - ng)), o.value(p, "i_offset", i))
    z = o.fire(n.v, o.value(p, "threshold", i))
    _reset(o, p, i, n, z)
    return z


def _cuba(o, p, i, n, e, ng) -> bool:
    """Current-based kinds: excitatory sum ``e``, inhibitory magnitudes ``ng``, refractory counter."""
    old_exc, old_inh = n.i_exc, n.i_inh
    n.i_exc = o.add(o.mul_decay(o.decay(p, "exc_decay", i), n.i_exc), o.syn(e))
    n.i_inh = o.add(o.mul_decay(o.decay(p, "inh_decay", i), n.i_inh), o.syn(ng))
    i_mem = o.sub(n.i_exc, n.i_inh) if o.spec.cuba_current_order == "current" else o.sub(old_exc, old_inh)
    if n.r > 0:
        n.r -= 1
        n.v = o.value(p, "v_reset", i)
    else:
        n.v = o.add(o.add(o.mul_decay(o.decay(p, "alpha_decay", i), n.v), i_mem), o.value(p, "i_offset", i))
    z = n.r == 0 and o.fire(n.v, o.value(p, "threshold", i))
    if z:
        n.r = int(np.broadcast_to(np.asarray(p.params["t_refrac"]), (p.size,))[i])
    _reset(o, p, i, n, z)
    return z


#: The oracle's step of each neuron kind, and whether the kind sums positive and |negative| weights
#: into separate channels. Written here, apart from s2jax: a kind without an entry cannot be checked,
#: and tests/kinds/test_kinds.py fails for every registered kind that has none.
STEPS = {
    "lif": (_lif, False),
    "lif_no_delay": (_lif, False),
    "lif_conv2d": (_lif, False),
    "lif_curr_exp": (_cuba, True),
    "lif_curr_exp_no_delay": (_cuba, True),
}


def register_step(model: str, step, two_channels: bool = False):
    """Add the oracle of a neuron kind: ``step(oracle, population, neuron index, neuron state, E, N) ->
    spiked`` updating ``state.v`` (and any of ``i_exc``, ``i_inh``, ``r``) with the oracle's arithmetic."""
    STEPS[model] = (step, two_channels)


def simulate(net, inputs: dict, timesteps: int, profile: str = "float32", spec=None):
    """Run ``net`` for ``timesteps`` ticks on the oracle (batch of one)."""
    if spec is None:
        from s2jax.spec import SPINNAKER2 as spec
    return Oracle(net, profile, spec).run(inputs, timesteps)
