"""Greedy evaluation of the spiking Q-networks of :mod:`s2jax.recipes.dqn`, the rule that decides which
trained weights :func:`dqn.train <s2jax.recipes.dqn.train>` keeps, and the chip model as a Q-function.

Three sets of episodes never overlap (each is drawn from its own seed):

- *screening*: ``DQNConfig.select_episodes`` episodes after every training chunk (cheap and noisy);
- *confirmation*: ``DQNConfig.confirm_episodes`` held-out episodes on which the best screened chunks
  (and, when fine-tuning, the starting weights) are compared (:func:`choose`);
- *evaluation*: the ``eval_episodes`` episodes whose mean is reported (seed :data:`EVAL_SEED`).

Keeping a fine-tuned chunk only when its gain over the starting weights is sure on the confirmation
episodes (a lower confidence bound above zero, not the best noisy screening score) is what keeps
fine-tuning from ending below where it started on the reported evaluation.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from s2jax.recipes.dqn import DQNConfig, encode, make_env, readout_q

__all__ = ["EVAL_SEED", "evaluate", "evaluator", "held_out_seed", "choose", "Selection", "chip_q", "chip_policy"]

#: Seed of the reported evaluation's episodes (:func:`evaluate`'s default); episodes ``seed`` and
#: ``seed + 1`` (reset and step keys).
EVAL_SEED = 1234
SCREEN, CONFIRM = 7, 9  # offsets of the screening and confirmation seeds from DQNConfig.seed


def held_out_seed(config: DQNConfig, offset: int) -> int:
    """``config.seed + offset``, moved away when its keys (``seed``, ``seed + 1``) would meet those of
    the reported evaluation (:data:`EVAL_SEED`): selection never sees an evaluation episode."""
    seed = config.seed + offset
    return seed + 10_000 if abs(seed - EVAL_SEED) <= 1 else seed


def evaluator(config: DQNConfig, episodes: int, seed: int, max_steps: int | None = None, record: int = 0,
              progress=None, chunks: int = 10):
    """``run(policy, params=None) -> (returns (E,), observations of episode 0)``.

    ``policy(obs) -> actions``, or ``policy(params, obs)`` when ``params`` is given: the params are an
    argument of the compiled step, so evaluating new weights of the same ``policy`` does not compile
    again (a ``policy(obs)`` is compiled at every call: whatever it closes over may have changed).
    With ``progress``, the episodes run in ``chunks`` jitted pieces of steps and
    ``progress(done_steps, max_steps)`` is called after each; either way the run stops once every
    episode has ended and ``record`` steps are recorded (the returns do not change)."""
    env, env_params = make_env(config.env)
    max_steps = max_steps or int(env_params.max_steps_in_episode)
    per_chunk = max_steps if progress is None else -(-max_steps // max(1, min(chunks, max_steps)))
    obs0, state0 = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(seed), episodes),
                                                          env_params)
    compiled = {}  # the jitted chunk of the last policy(params, obs)

    def chunk_fn(policy, with_params):
        def step(params, carry, t):
            obs, state, key, ret, alive = carry
            key, k = jax.random.split(key)
            action = policy(params, obs) if with_params else policy(obs)
            next_obs, state, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k, episodes), state, action, env_params)
            alive = alive & (t < max_steps)  # the last chunk may run past max_steps
            ret = ret + jnp.where(alive, reward, 0.0)
            alive = alive & ~(terminated | truncated)
            return (next_obs, state, key, ret, alive), obs[0]

        return jax.jit(lambda c, t0, p: jax.lax.scan(lambda cc, t: step(p, cc, t), c, t0 + jnp.arange(per_chunk)))

    def run(policy, params=None):
        if params is None:
            chunk = chunk_fn(policy, False)
        else:
            if policy not in compiled:
                compiled.clear()
                compiled[policy] = chunk_fn(policy, True)
            chunk = compiled[policy]
        carry = (obs0, state0, jax.random.key(seed + 1), jnp.zeros(episodes), jnp.ones(episodes, bool))
        seen, done = [], 0
        with jax.numpy_dtype_promotion("standard"):
            while done < max_steps:
                carry, obs = chunk(carry, jnp.int32(done), params)
                seen.append(np.asarray(obs[: max(0, record - done)]))
                done = min(done + per_chunk, max_steps)
                if not bool(np.any(np.asarray(carry[4]))) and done >= record:
                    done = max_steps  # every episode has ended
                if progress is not None:
                    progress(done, max_steps)
        return np.asarray(carry[3]), np.concatenate(seen)[:record]

    return run


def evaluate(config: DQNConfig, policy: Callable, *, episodes: int | None = None, seed: int = EVAL_SEED,
             max_steps: int | None = None, record: int = 0, progress=None):
    """Greedy returns over ``episodes`` episodes run side by side.

    ``policy(obs) -> actions`` (``(E, obs_dim) -> (E,)``, jittable: e.g. the chip model on the
    quantized network). Each environment plays exactly one episode (steps after its end are
    ignored). ``progress(done_steps, max_steps)``, if given, is called about ten times on the way.
    Returns ``(returns (E,), observations of episode 0 for its first ``record`` steps)``.
    """
    return evaluator(config, episodes or config.eval_episodes, seed, max_steps, record, progress)(policy)


class Selection(NamedTuple):
    """Which weights :func:`dqn.train <s2jax.recipes.dqn.train>` kept, and its own estimate of them.

    ``kept``: the chunk (0-based) whose weights were kept, or -1 for the starting weights;
    ``estimate``: their mean greedy return on the ``episodes`` held-out confirmation episodes (the
    selection's estimate, to set beside the reported evaluation); ``start_estimate``: the starting
    weights' mean on the same episodes (NaN when training from scratch); ``candidates``: one
    ``(chunk, screening return, confirmation mean, lower bound of the gain over the start)`` per
    confirmed chunk (the bound is NaN without a start); ``z``: the bound's multiple of the standard
    error."""

    kept: int
    estimate: float
    start_estimate: float
    episodes: int
    z: float
    candidates: tuple

    def as_dict(self) -> dict:
        """JSON-ready (``summary.json``, checkpoint metadata): NaN and infinities become None (null)."""
        def num(x):
            return float(x) if np.isfinite(x) else None

        return {"kept_chunk": self.kept, "estimate": num(self.estimate), "start_estimate": num(self.start_estimate),
                "episodes": self.episodes, "z": self.z,
                "candidates": [{"chunk": c, "screening_return": num(s), "confirmation_return": num(m),
                                "gain_lower_bound": num(b)} for c, s, m, b in self.candidates]}


def gain_lower_bound(start: np.ndarray, candidate: np.ndarray, z: float) -> float:
    """``mean(d) - z * std(d) / sqrt(n)`` of the per-episode gains ``d = candidate - start`` (the same
    episodes for both, so the comparison is paired); ``-inf`` for fewer than two episodes."""
    d = np.asarray(candidate, np.float64) - np.asarray(start, np.float64)
    if d.size < 2:
        return -np.inf
    return float(d.mean() - z * d.std(ddof=1) / np.sqrt(d.size))


def choose(start: np.ndarray | None, candidates: list[np.ndarray], z: float) -> tuple[int, list[float]]:
    """The rule: ``(index of the candidate to keep or -1 for the start, per-candidate lower bounds)``.

    With a start (fine-tuning): the candidate whose paired gain over the start has the highest lower
    bound (:func:`gain_lower_bound`) is kept only when that bound is above zero; otherwise the start is
    kept, so a chunk that is not surely better never replaces it. Without a start (training from
    scratch): the candidate with the best mean (of equals, the one listed first). ``candidates`` holds
    each candidate's returns on the same episodes as ``start``.

    What this promises: the kept chunk's true gain over the start is positive with the confidence
    ``z`` gives (with a bound above zero by ``z`` standard errors over ``k`` candidates, a wrong
    replacement happens with probability at most about ``k * (1 - Phi(z))``); the reported
    evaluation, a finite sample of other episodes, can still show a chunk with a small true gain a
    little below the start. The kept chunk's confirmation mean is the best of ``k`` and so an
    optimistic estimate of it."""
    if not candidates:
        raise ValueError("choose needs at least one candidate")
    if start is None:
        means = [float(np.mean(c)) for c in candidates]
        return int(np.argmax(means)), [float("nan")] * len(candidates)
    bounds = [gain_lower_bound(start, c, z) for c in candidates]
    best = int(np.argmax(bounds))
    return (best if bounds[best] > 0.0 else -1), bounds


def confirm(config: DQNConfig, policy: Callable, start, candidates: list[tuple[int, float, object]]):
    """Evaluate ``candidates`` (``(chunk, screening return, params)``) and ``start`` (params or None) with
    ``policy(params, obs)`` on the confirmation episodes and apply :func:`choose`.
    Returns ``(kept params, Selection)``."""
    run = evaluator(config, config.confirm_episodes, held_out_seed(config, CONFIRM))
    returns = [run(policy, params)[0] for _, _, params in candidates]
    start_returns = None if start is None else run(policy, start)[0]
    kept, bounds = choose(start_returns, returns, config.confirm_z)
    means = [float(np.mean(r)) for r in returns]
    table = tuple((int(c), float(s), m, b) for (c, s, _), m, b in zip(candidates, means, bounds))
    start_mean = float("nan") if start_returns is None else float(np.mean(start_returns))
    if kept < 0:
        return start, Selection(-1, start_mean, start_mean, config.confirm_episodes, config.confirm_z, table)
    return candidates[kept][2], Selection(int(candidates[kept][0]), means[kept], start_mean,
                                          config.confirm_episodes, config.confirm_z, table)


def chip_q(config: DQNConfig, qmodel, profile: str = "float32", spec=None, net=None):
    """``(q, net)``: Q-values ``q(obs) -> (B, n_actions)`` computed by the chip model on ``net``
    (default ``quantize(qmodel)``).

    ``qmodel`` is a ``quant.qat`` model (its readout scale turns chip voltages into Q-values). The
    observations are encoded exactly as :func:`dqn.encode <s2jax.recipes.dqn.encode>`,
    ``hwmodel.run`` runs the compiled network, and the readout's voltages divided by the scale are
    averaged over the ticks (``dqn.readout_q``): the same float32 operations as the QAT forward, so
    the Q-values are identical.
    """
    from s2jax import hwmodel, quant
    from s2jax.fixedpoint import fmul

    net = quant.quantize(qmodel) if net is None else net
    kwargs = {} if spec is None else {"spec": spec}
    prog = hwmodel.compile_network(net, profile, **kwargs)
    last = qmodel.neurons[-1]
    name = f"layer{len(qmodel.neurons) - 1}"
    inv_scale = jnp.float32(1.0) / jnp.broadcast_to(last.quant_scale[...], last.shape)
    frac = jnp.float32(2.0 ** prog.layout.v_frac_bits)

    def q(obs):
        x = encode(config, obs) > 0.5
        _, trace = hwmodel.run(prog, {"input": x})
        v = trace.voltages[name]
        if profile == "fixed":
            v = v.astype(jnp.float32) / frac
        return readout_q(fmul(v, inv_scale))  # as SNN scales its readout: no fused multiply-add

    return q, net


def chip_policy(config: DQNConfig, qmodel, profile: str = "float32", spec=None, net=None):
    """``(policy, net)``: the greedy policy of :func:`chip_q`."""
    q, net = chip_q(config, qmodel, profile, spec, net)
    return (lambda obs: jnp.argmax(q(obs), axis=1)), net
