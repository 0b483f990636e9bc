"""Spiking Q-networks trained with double DQN on gymnax environments, fully jitted.

The workload of Arfa, Vogginger and Mayr (2025), "Hardware-Aware Fine-Tuning of Spiking
Q-Networks on the SpiNNaker2 Neuromorphic Platform": a spiking Q-network learns CartPole or
Acrobot with Q-learning, is quantized to the chip's 8-bit weights, fine-tuned against the chip's
arithmetic, and evaluated on the chip model.

One environment step is one inference of ``SNN`` on a fresh network state: the observation is
population-coded into ``ticks`` ticks of spikes (``layers.encoders.population``, deterministic, so
the chip sees exactly the same spikes), followed by one empty tick per layer so the last input
tick reaches the readout (the chip's one tick of latency per layer). The Q-values are the mean
membrane of the ``LI`` readout over all ticks (divided by the weight scale after QAT).

Training (:func:`train`): ``num_envs`` vmapped environments, a replay buffer held as arrays,
epsilon-greedy exploration with a linear schedule, double-DQN targets from a target network
updated by Polyak averaging, Huber loss, Adam; the whole loop is one ``lax.scan`` per chunk of
iterations (the chunks only exist to show progress). gymnax's six-value ``step`` is used as
documented: the transition stores the observation *before* the auto-reset
(``info["final_observation"]``) and only ``terminated`` stops bootstrapping, so a time-limit
truncation still bootstraps.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from s2jax import layers as L

__all__ = ["DQNConfig", "ENV_BOUNDS", "make_env", "make_qnet", "make_mlp", "snn_q", "mlp_q", "encode", "train",
           "chunk_plan", "planned_steps", "TrainResult"]

#: Most environment steps one training run takes (``DQNConfig.total_steps``, the ``steps`` of
#: :func:`train`): the step counters are int32 on the device, and 10^9 steps is days of training.
MAX_STEPS = 10**9
#: Most greedy evaluation episodes (``DQNConfig.eval_episodes``).
MAX_EVAL_EPISODES = 100_000

ENV_BOUNDS = {
    # observation ranges mapped onto the population code's receptive fields (values outside clip)
    "CartPole-v1": ((-2.4, -3.0, -0.21, -3.5), (2.4, 3.0, 0.21, 3.5)),
    "Acrobot-v1": ((-1.0, -1.0, -1.0, -1.0, -4 * np.pi, -9 * np.pi), (1.0, 1.0, 1.0, 1.0, 4 * np.pi, 9 * np.pi)),
}


@dataclass(frozen=True)
class DQNConfig:
    """Every setting of the recipe; the defaults are the CartPole-v1 run of ``s2jax demo``.

    Steps count environment transitions summed over the ``num_envs`` environments.
    """

    env: str = "CartPole-v1"
    seed: int = 0
    # network
    hidden: tuple = (64, 64)
    neurons_per_dim: int = 10
    ticks: int = 8
    alpha: float = 0.9
    threshold: float = 1.0
    readout_alpha: float = 0.9
    obs_low: tuple | None = None  # None: ENV_BOUNDS[env]
    obs_high: tuple | None = None
    # DQN
    total_steps: int = 200_000
    num_envs: int = 16
    buffer_size: int = 50_000
    batch_size: int = 128
    learning_starts: int = 5_000
    updates_per_iteration: int = 2
    gamma: float = 0.99
    reward_scale: float = 0.1  # rewards are multiplied by this in the TD target (Q in scaled units)
    lr: float = 5e-4
    lr_end_fraction: float = 0.1  # the learning rate decays linearly to lr * this at the end
    max_grad_norm: float = 10.0
    target_tau: float = 0.01
    eps_start: float = 1.0
    eps_end: float = 0.02
    eps_fraction: float = 0.3
    # evaluation
    eval_episodes: int = 100
    # which weights train keeps (s2jax.recipes.dqn_eval): every chunk is screened on select_episodes
    # greedy episodes; the confirm_candidates best (and, when fine-tuning, the starting weights) are
    # compared on confirm_episodes held-out episodes; a fine-tuned chunk replaces the starting weights
    # only when its paired gain is above zero by confirm_z standard errors (2.4: a one-sided 2.5%
    # error rate shared by 3 candidates, Bonferroni)
    select_episodes: int = 16
    confirm_episodes: int = 200
    confirm_candidates: int = 3
    confirm_z: float = 2.4

    def __post_init__(self):
        for name in ("total_steps", "num_envs", "buffer_size", "batch_size", "ticks", "neurons_per_dim",
                     "eval_episodes", "updates_per_iteration"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DQNConfig.{name} must be a positive integer, got {value!r}")
        for name, limit in (("total_steps", MAX_STEPS), ("eval_episodes", MAX_EVAL_EPISODES)):
            if getattr(self, name) > limit:
                raise ValueError(f"DQNConfig.{name} {getattr(self, name):,} exceeds the limit of {limit:,}")
        for name in ("select_episodes", "confirm_episodes", "confirm_candidates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"DQNConfig.{name} must be an integer >= 0, got {value!r}")
        if self.confirm_episodes > MAX_EVAL_EPISODES:
            raise ValueError(f"DQNConfig.confirm_episodes {self.confirm_episodes:,} exceeds the limit of "
                             f"{MAX_EVAL_EPISODES:,}")
        if self.confirm_episodes and self.select_episodes and self.confirm_candidates < 1:
            raise ValueError("DQNConfig.confirm_candidates must be >= 1 when confirm_episodes and select_episodes "
                             "are set (the chunks to confirm)")
        if self.confirm_episodes == 1:
            raise ValueError("DQNConfig.confirm_episodes must be 0 (no confirmation) or at least 2 (a standard "
                             "error needs two episodes)")
        if not (np.isfinite(self.confirm_z) and self.confirm_z >= 0.0):
            raise ValueError(f"DQNConfig.confirm_z must be a finite number >= 0, got {self.confirm_z!r}")
        if self.buffer_size < self.num_envs:
            raise ValueError(f"DQNConfig.buffer_size {self.buffer_size} must hold one step of all "
                             f"{self.num_envs} environments")
        if not 0.0 < self.eps_fraction <= 1.0:
            raise ValueError(f"DQNConfig.eps_fraction must be in (0, 1], got {self.eps_fraction}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"DQNConfig.hidden must list positive layer widths, got {self.hidden!r}")

    def bounds(self):
        if self.obs_low is not None and self.obs_high is not None:
            return np.asarray(self.obs_low, np.float32), np.asarray(self.obs_high, np.float32)
        if self.env not in ENV_BOUNDS:
            raise ValueError(f"no default observation bounds for {self.env!r}: pass obs_low and obs_high "
                             f"(known: {sorted(ENV_BOUNDS)})")
        low, high = ENV_BOUNDS[self.env]
        return np.asarray(low, np.float32), np.asarray(high, np.float32)

    def replace(self, **changes) -> "DQNConfig":
        return dataclasses.replace(self, **changes)


def make_env(name: str):
    import gymnax

    try:
        env, params = gymnax.make(name)
    except (ValueError, KeyError) as err:
        raise ValueError(f"gymnax has no environment {name!r}: {err}") from None
    return env, params


# --- Q-networks ------------------------------------------------------------------------------------------


def make_qnet(config: DQNConfig, obs_dim: int, n_actions: int) -> L.SNN:
    """Population-coded input, LIF hidden layers, ``LI`` readout (one Q-value per action)."""
    rngs = nnx.Rngs(config.seed)
    sizes = (obs_dim * config.neurons_per_dim, *config.hidden)
    layers = [(L.Linear(a, b, rngs=rngs), L.LIF(b, alpha=config.alpha, threshold=config.threshold))
              for a, b in zip(sizes[:-1], sizes[1:])]
    layers.append((L.Linear(sizes[-1], n_actions, rngs=rngs), L.LI(n_actions, alpha=config.readout_alpha)))
    return L.SNN(layers)


def encode(config: DQNConfig, obs):
    """``(B, obs_dim)`` -> ``(B, ticks + layers, obs_dim * neurons_per_dim)`` spikes (0/1 float32);
    the trailing zero ticks let the last input tick reach the readout."""
    low, high = config.bounds()
    x = L.encoders.population(obs, low, high, config.neurons_per_dim, config.ticks)
    pad = jnp.zeros((x.shape[0], len(config.hidden) + 1, x.shape[2]), x.dtype)
    return jnp.concatenate([x, pad], axis=1)


def readout_q(v):
    """``(B, T, A)`` readout membranes -> ``(B, A)`` Q-values: the mean over ticks, summed in tick
    order and multiplied by the float32 constant 1/T, so every caller (jitted or not, QAT model or
    chip model) rounds the same way."""
    acc = v[:, 0]
    for t in range(1, v.shape[1]):
        acc = acc + v[:, t]
    return acc * jnp.float32(1.0 / v.shape[1])


def snn_q(config: DQNConfig) -> Callable:
    """``q(model, obs) -> (B, n_actions)``: mean readout membrane of the spiking Q-network."""

    def q(model, obs):
        return readout_q(model(encode(config, obs)).output)

    return q


class MLP(nnx.Module):
    """The non-spiking baseline: ReLU layers of the same widths."""

    def __init__(self, sizes, rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


def make_mlp(config: DQNConfig, obs_dim: int, n_actions: int) -> MLP:
    return MLP((obs_dim, *config.hidden, n_actions), nnx.Rngs(config.seed))


def mlp_q(config: DQNConfig) -> Callable:
    low, high = config.bounds()

    def q(model, obs):
        return model(2.0 * (obs - low) / (high - low) - 1.0)

    return q


# --- training ---------------------------------------------------------------------------------------------


class Buffer(NamedTuple):
    obs: jnp.ndarray
    action: jnp.ndarray
    reward: jnp.ndarray
    next_obs: jnp.ndarray
    terminated: jnp.ndarray
    size: jnp.ndarray
    pos: jnp.ndarray


class TrainResult(NamedTuple):
    """``model``: the trained model (the weights :func:`train` kept, see there); ``returns``: ``(n, 3)``
    rows (env steps so far, mean return of the exploring episodes that ended in that chunk (NaN if
    none), greedy return on the screening episodes after the chunk); ``steps_per_s``: training env
    steps per second (compilation and the greedy evaluations excluded); ``seconds``: wall time of
    everything; ``selection``: the confirmation's :class:`~s2jax.recipes.dqn_eval.Selection` (None
    when ``confirm_episodes`` or ``select_episodes`` is 0, or when no chunk ended after learning
    started: then the last weights are returned)."""

    model: object
    returns: np.ndarray
    steps_per_s: float
    seconds: float
    selection: object = None


def _epsilon(config, step, total_steps):
    frac = jnp.clip(step / (config.eps_fraction * total_steps), 0.0, 1.0)
    return config.eps_start + frac * (config.eps_end - config.eps_start)


def chunk_plan(steps: int, num_envs: int, chunks: int = 20) -> tuple[int, int]:
    """``(chunks, iterations per chunk)`` of :func:`train`: ``steps // num_envs`` iterations (at
    least one) cut into at most ``chunks`` chunks of equal length, the last one rounded up to a whole
    chunk (so up to ``per_chunk - 1`` iterations more than asked)."""
    for name, value in (("steps", steps), ("num_envs", num_envs), ("chunks", chunks)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if steps > MAX_STEPS:
        raise ValueError(f"steps {steps:,} exceeds the limit of {MAX_STEPS:,} environment steps (dqn.MAX_STEPS)")
    iterations = max(1, steps // num_envs)
    chunks = max(1, min(chunks, iterations))
    per_chunk = -(-iterations // chunks)
    return -(-iterations // per_chunk), per_chunk


def planned_steps(config: DQNConfig, steps: int | None = None, chunks: int = 20) -> int:
    """The environment steps :func:`train` runs for ``steps`` (default ``config.total_steps``): whole
    chunks of ``config.num_envs`` environments (:func:`chunk_plan`), known before it starts."""
    n_chunks, per_chunk = chunk_plan(config.total_steps if steps is None else steps, config.num_envs, chunks)
    return n_chunks * per_chunk * config.num_envs


def train(config: DQNConfig, model, q_fn: Callable, *, steps: int | None = None, eps_schedule: bool = True,
          lr: float | None = None, chunks: int = 20, progress=None) -> TrainResult:
    """Double DQN on ``config.env`` for ``steps`` env steps (default ``config.total_steps``).

    ``model``: an NNX module (the spiking ``SNN``, its ``quant.qat`` copy for hardware-aware
    fine-tuning, or the MLP baseline) and ``q_fn(model, obs) -> Q``. With ``eps_schedule=False``
    exploration stays at ``eps_end`` and learning starts once a batch is in the buffer (fine-tuning
    from a trained model). ``progress(done_steps, total_steps, mean_return, greedy_return)`` is
    called per chunk; ``total_steps`` is :func:`planned_steps` from the first call on.

    Which weights are kept: after every chunk (once learning has started) the greedy policy plays
    ``select_episodes`` screening episodes. With ``confirm_episodes`` the ``confirm_candidates`` best
    screened chunks, and when fine-tuning the starting weights too, then play the same
    ``confirm_episodes`` held-out episodes; from scratch the best of them is kept, when fine-tuning a
    chunk is kept only if its gain over the starting weights is surely positive, else the starting
    weights are (:func:`s2jax.recipes.dqn_eval.choose`). With ``confirm_episodes=0`` the best screened
    chunk is kept (when fine-tuning the starting weights compete on the screening episodes); with
    ``select_episodes=0`` the last weights are.
    Returns a :class:`TrainResult` with a trained copy (the argument is not modified).
    """
    from s2jax.recipes import dqn_eval

    steps = config.total_steps if steps is None else steps
    env, env_params = make_env(config.env)
    n_envs = config.num_envs
    iterations = max(1, steps // n_envs)
    chunks, per_chunk = chunk_plan(steps, n_envs, chunks)  # whole chunks: at most per_chunk - 1 iterations over
    learning_starts = config.learning_starts if eps_schedule else config.batch_size
    graphdef, params, rest = nnx.split(nnx.clone(model), nnx.Param, ...)
    lr = lr or config.lr
    n_updates = max(1, (iterations - learning_starts // n_envs) * config.updates_per_iteration)
    schedule = optax.linear_schedule(lr, lr * config.lr_end_fraction, n_updates)
    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(schedule))

    def q(p, obs):
        return q_fn(nnx.merge(graphdef, p, rest), obs)

    def loss_fn(p, target_p, batch):
        q_all = q(p, batch.obs)
        q_taken = jnp.take_along_axis(q_all, batch.action[:, None], axis=1)[:, 0]
        next_online = q(p, batch.next_obs)
        next_target = q(target_p, batch.next_obs)
        a_star = jnp.argmax(next_online, axis=1)
        bootstrap = jnp.take_along_axis(next_target, a_star[:, None], axis=1)[:, 0]
        target = config.reward_scale * batch.reward + config.gamma * (1.0 - batch.terminated) * jax.lax.stop_gradient(bootstrap)
        return jnp.mean(optax.huber_loss(q_taken, target))

    key = jax.random.key(config.seed + 1)
    key, k_reset = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, n_envs), env_params)
    obs_dim = obs.shape[-1]
    size = config.buffer_size
    buffer = Buffer(jnp.zeros((size, obs_dim)), jnp.zeros(size, jnp.int32), jnp.zeros(size),
                    jnp.zeros((size, obs_dim)), jnp.zeros(size), jnp.int32(0), jnp.int32(0))
    n_actions = env.action_space(env_params).n

    def iteration(carry, i):
        p, opt_state, target_p, buffer, env_state, obs, key, ep_ret, stats = carry
        key, k_eps, k_act, k_step, k_batch = jax.random.split(key, 5)
        step = i * n_envs
        eps = _epsilon(config, step, steps) if eps_schedule else jnp.float32(config.eps_end)
        greedy = jnp.argmax(q(p, obs), axis=1)
        random = jax.random.randint(k_act, (n_envs,), 0, n_actions)
        action = jnp.where(jax.random.uniform(k_eps, (n_envs,)) < eps, random, greedy)
        next_obs, env_state, reward, terminated, truncated, info = jax.vmap(
            env.step, in_axes=(0, 0, 0, None))(jax.random.split(k_step, n_envs), env_state, action, env_params)
        idx = (buffer.pos + jnp.arange(n_envs)) % size
        buffer = Buffer(buffer.obs.at[idx].set(obs), buffer.action.at[idx].set(action),
                        buffer.reward.at[idx].set(reward.astype(jnp.float32)),
                        buffer.next_obs.at[idx].set(info["final_observation"]),
                        buffer.terminated.at[idx].set(terminated.astype(jnp.float32)),
                        jnp.minimum(buffer.size + n_envs, size), (buffer.pos + n_envs) % size)
        ep_ret = ep_ret + reward
        done = jnp.logical_or(terminated, truncated)
        stats = stats + jnp.stack([jnp.sum(jnp.where(done, ep_ret, 0.0)), jnp.sum(done)])
        ep_ret = jnp.where(done, 0.0, ep_ret)

        def update(args):
            p, opt_state, target_p, k = args
            for _ in range(config.updates_per_iteration):
                k, kb = jax.random.split(k)
                j = jax.random.randint(kb, (config.batch_size,), 0, buffer.size)
                batch = Buffer(buffer.obs[j], buffer.action[j], buffer.reward[j], buffer.next_obs[j],
                               buffer.terminated[j], buffer.size, buffer.pos)
                grads = jax.grad(loss_fn)(p, target_p, batch)
                upd, opt_state = tx.update(grads, opt_state, p)
                p = optax.apply_updates(p, upd)
                target_p = optax.incremental_update(p, target_p, config.target_tau)
            return p, opt_state, target_p

        p, opt_state, target_p = jax.lax.cond(step + n_envs >= learning_starts, update, lambda a: a[:3],
                                              (p, opt_state, target_p, k_batch))
        return (p, opt_state, target_p, buffer, env_state, next_obs, key, ep_ret, stats), None

    @jax.jit
    def run_chunk(carry, start):
        carry = carry[:-1] + (jnp.zeros(2),)
        carry, _ = jax.lax.scan(iteration, carry, start + jnp.arange(per_chunk))
        return carry

    def greedy(p, o):
        return jnp.argmax(q(p, o), axis=1)

    screen = dqn_eval.evaluator(config, max(1, config.select_episodes), dqn_eval.held_out_seed(config, dqn_eval.SCREEN))
    confirming = config.select_episodes and config.confirm_episodes
    keep = config.confirm_candidates if confirming else 1  # how many screened chunks stay candidates

    t0 = time.perf_counter()
    train_s = 0.0
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counters with floats
        opt_state = tx.init(params)
        carry = (params, opt_state, params, buffer, env_state, obs, key, jnp.zeros(n_envs), jnp.zeros(2))
        curve, best = [], []  # best: (screening return, chunk, params) of the `keep` best chunks, best first
        if config.select_episodes and not eps_schedule and not confirming:  # the start competes on the screen
            best = [(float(np.mean(screen(greedy, params)[0])), -1, params)]
        for c in range(chunks):
            t_chunk = time.perf_counter()
            carry = jax.block_until_ready(run_chunk(carry, jnp.int32(c * per_chunk)))
            if c:
                train_s += time.perf_counter() - t_chunk
            stats = np.asarray(carry[-1])
            done_steps = (c + 1) * per_chunk * n_envs
            mean_ret = stats[0] / stats[1] if stats[1] else float("nan")
            greedy_ret = float(np.mean(screen(greedy, carry[0])[0])) if config.select_episodes else np.nan
            if config.select_episodes and done_steps >= learning_starts:  # a later chunk wins a tie
                best = sorted([*best, (greedy_ret, c, carry[0])], key=lambda b: (-b[0], -b[1]))[:keep]
            curve.append((done_steps, mean_ret, greedy_ret))
            if progress is not None:
                progress(done_steps, chunks * per_chunk * n_envs, mean_ret, greedy_ret)
        final, selection = (best[0][2] if best else carry[0]), None
        if confirming and best:
            candidates = [(chunk, ret, p) for ret, chunk, p in best]
            final, selection = dqn_eval.confirm(config, greedy, None if eps_schedule else params, candidates)
    t1 = time.perf_counter()
    trained = nnx.merge(graphdef, final, rest)
    rate = (chunks - 1) * per_chunk * n_envs / train_s if chunks > 1 else float("nan")
    return TrainResult(trained, np.asarray(curve, np.float64), rate, t1 - t0, selection)


_MOVED = ("evaluate", "chip_q", "chip_policy")  # to s2jax.recipes.dqn_eval; still reachable here


def __getattr__(name):
    if name in _MOVED:
        from s2jax.recipes import dqn_eval

        return getattr(dqn_eval, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
