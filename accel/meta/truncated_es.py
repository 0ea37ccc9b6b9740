"""Antithetic truncated evolution strategies over a task's training runs.

For one task, P *streams* are inner training runs in progress, each at its
own step of its own horizon, with its own base learning rate, weight decay,
initial scale and data order. A meta-iteration takes the current weights
theta, draws P perturbations eps_i ~ N(0, sigma^2 I), and from each stream's
state trains K steps twice, with theta + eps_i and theta - eps_i, on the same
batches. The meta-loss of a truncation is the mean over its K steps of
log(training loss on the batch about to be trained on), so it is measured on
data the step has not yet seen and weighs all tasks alike. The estimate

    grad = 1 / (2 sigma^2 P) * sum_i (L(theta + eps_i) - L(theta - eps_i)) eps_i

is the antithetic ES gradient of the Gaussian-smoothed meta-loss; the stream
then continues from its theta + eps_i state (eps is small). Streams restart
(new initialisation and hyperparameters) at the end of their horizon or if
they diverge.

R *reference* streams run AdamW (the same weights with the output layer at
zero, which is exactly AdamW) from the same initialisation, hyperparameters
and batches as streams 0..R-1. Their loss does not enter the gradient (it
would cancel in the antithetic difference); it measures progress:
`vs_adamw` = meta-loss of streams 0..R-1 minus that of their references,
negative when the learned optimizer trains faster than AdamW.

All P + P + R inner runs of a truncation run as one vmapped, jitted scan.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from accel.errors import ConfigError
from accel.optim import gt_transform as gt
from accel.optim import gt_network
from accel.meta import tasks as tasks_lib

_MAX_LOG_LOSS = 10.0  # a diverged step counts as loss e^10


@dataclasses.dataclass(frozen=True)
class InnerRanges:
  """Ranges the inner runs' hyperparameters are drawn from (log-uniform)."""
  learning_rate: tuple[float, float] = (3e-4, 1e-2)
  weight_decay: tuple[float, float] = (1e-4, 1e-1)
  init_scale: tuple[float, float] = (0.5, 2.0)
  horizon: tuple[int, int] = (200, 1000)  # inner steps, rounded to K


class Streams(NamedTuple):
  """Inner runs in progress, every leaf stacked over streams."""
  params: Any
  opt_state: Any
  step: jax.Array     # int32 [P]
  key: jax.Array      # [P, 2] data and restart key
  lr: jax.Array       # f32 [P]
  wd: jax.Array       # f32 [P]
  horizon: jax.Array  # int32 [P]


def warmup_cosine(count, lr, horizon):
  """Linear warm-up over 5% of the horizon, then cosine decay to zero."""
  t = count.astype(jnp.float32)
  h = horizon.astype(jnp.float32)
  warm = jnp.maximum(0.05 * h, 1.0)
  frac = jnp.clip((t - warm) / jnp.maximum(h - warm, 1.0), 0.0, 1.0)
  return lr * jnp.minimum((t + 1.0) / warm, 0.5 * (1 + jnp.cos(jnp.pi * frac)))


def no_bias_norm(params):
  return jax.tree.map(lambda p: p.ndim > 1, params)


def inner_optimizer(weights, lr, wd, horizon, history: int):
  schedule = functools.partial(warmup_cosine, lr=lr, horizon=horizon)
  return gt.gradient_transformer(schedule, weight_decay=wd,
                                 mask=no_bias_norm, weights=weights,
                                 history=history)


def _log_uniform(key, bounds, shape):
  lo, hi = jnp.log(bounds[0]), jnp.log(bounds[1])
  return jnp.exp(jax.random.uniform(key, shape, minval=lo, maxval=hi))


class TaskRunner:
  """The jitted pieces of meta-training on one task."""

  def __init__(self, task: tasks_lib.Task, arch: gt_network.Architecture,
               ranges: InnerRanges, truncation: int, num_pairs: int,
               num_reference: int):
    if num_reference > num_pairs:
      raise ConfigError(f"num_reference={num_reference} exceeds num_pairs="
                        f"{num_pairs}: references shadow the first streams.")
    self.task, self.arch, self.ranges = task, arch, ranges
    self.k, self.p, self.r = truncation, num_pairs, num_reference
    self.init_streams = jax.jit(self._init_streams, static_argnums=1)
    self.restart = jax.jit(self._restart)
    self.unroll = jax.jit(self._unroll)
    self.evaluate = jax.jit(self._evaluate, static_argnames="steps")

  # -- stream lifecycle ----------------------------------------------------

  def _init_one(self, key):
    k_init, k_scale, k_lr, k_wd, k_h, k_data = jax.random.split(key, 6)
    rg = self.ranges
    scale = _log_uniform(k_scale, rg.init_scale, ())
    params = jax.tree.map(lambda x: x * scale, self.task.init(k_init))
    lr = _log_uniform(k_lr, rg.learning_rate, ())
    wd = _log_uniform(k_wd, rg.weight_decay, ())
    lo, hi = max(rg.horizon[0] // self.k, 1), max(rg.horizon[1] // self.k, 1)
    horizon = self.k * jax.random.randint(k_h, (), lo, hi + 1)
    tx = inner_optimizer(gt_network.init_weights(self.arch), lr, wd, horizon,
                         self.arch.history)
    return Streams(params, tx.init(params), jnp.zeros([], jnp.int32),
                   k_data, lr, wd, horizon.astype(jnp.int32))

  def _init_streams(self, key, n):
    # lax.map, not vmap: a batched QR (orthogonal initialisers) inside this
    # program has deadlocked XLA:CPU; initialisation is rare, a loop is fine.
    return jax.lax.map(self._init_one, jax.random.split(key, n))

  def _restart(self, streams: Streams, refs: Streams, key):
    """Restarts streams that finished their horizon or diverged."""
    finite = lambda s: jnp.all(jnp.stack([
        jnp.all(jnp.isfinite(x), axis=tuple(range(1, x.ndim)))
        for x in jax.tree.leaves(s.params)]), axis=0)
    done = (streams.step >= streams.horizon) | ~finite(streams)
    done = done.at[:self.r].set(done[:self.r] | ~finite(refs))
    fresh = self._init_streams(key, self.p)
    pick = lambda d: (lambda new, old: jnp.where(
        d.reshape(d.shape + (1,) * (new.ndim - 1)), new, old))
    streams = jax.tree.map(pick(done), fresh, streams)
    fresh_refs = jax.tree.map(lambda x: x[:self.r], fresh)
    refs = jax.tree.map(pick(done[:self.r]), fresh_refs, refs)
    return streams, refs, jnp.sum(done)

  # -- one truncation ------------------------------------------------------

  def _train(self, weights, s: Streams, steps: int):
    """`steps` inner steps of one run: (final state, per-step log-losses)."""
    tx = inner_optimizer(weights, s.lr, s.wd, s.horizon, self.arch.history)

    def body(carry, _):
      params, opt_state, step = carry
      batch = self.task.batch(jax.random.fold_in(s.key, step),
                              self.task.arrays)
      loss, grads = jax.value_and_grad(self.task.loss)(params, batch)
      updates, opt_state = tx.update(grads, opt_state, params, value=loss)
      params = optax.apply_updates(params, updates)
      log_loss = jnp.log(jnp.maximum(loss, 1e-8))
      log_loss = jnp.where(jnp.isfinite(log_loss),
                           jnp.minimum(log_loss, _MAX_LOG_LOSS), _MAX_LOG_LOSS)
      return (params, opt_state, step + 1), log_loss

    (params, opt_state, step), log_losses = jax.lax.scan(
        body, (s.params, s.opt_state, s.step), None, length=steps)
    return s._replace(params=params, opt_state=opt_state, step=step), \
        log_losses

  def _unroll(self, theta, streams: Streams, refs: Streams, key, sigma):
    """One truncation: (streams, refs, ES gradient, metrics)."""
    leaves, treedef = jax.tree.flatten(theta)
    keys = jax.random.split(key, len(leaves))
    eps = treedef.unflatten([
        sigma * jax.random.normal(k, (self.p,) + x.shape, x.dtype)
        for k, x in zip(keys, leaves)])
    ref_w = gt_network.zero_head(theta)
    weights = jax.tree.map(
        lambda t, e, z: jnp.concatenate(
            [t + e, t - e, jnp.broadcast_to(z, (self.r,) + z.shape)]),
        theta, eps, ref_w)
    both = jax.tree.map(lambda a, b: jnp.concatenate([a, a, b]), streams,
                        refs)
    new, log_losses = jax.vmap(
        lambda w, s: self._train(w, s, self.k))(weights, both)
    meta_loss = log_losses.mean(axis=1)  # [2P + R]
    plus, minus = meta_loss[:self.p], meta_loss[self.p:2 * self.p]
    diff = plus - minus
    grad = jax.tree.map(
        lambda e: jnp.tensordot(diff, e, axes=1) / (2 * sigma**2 * self.p),
        eps)
    streams = jax.tree.map(lambda x: x[:self.p], new)
    refs = jax.tree.map(lambda x: x[2 * self.p:], new)
    mean_pm = 0.5 * (plus + minus)
    metrics = {"meta_loss": mean_pm.mean(),
               "vs_adamw": (mean_pm[:self.r] - meta_loss[2 * self.p:]).mean()
                           if self.r else jnp.float32(0.0),
               "antithetic_gap": jnp.abs(diff).mean()}
    return streams, refs, grad, metrics

  # -- deterministic evaluation -------------------------------------------

  def _evaluate(self, theta, key, *, steps: int):
    """Mean log-loss of fixed full runs with theta and with AdamW.

    The same streams (initialisation, hyperparameters, batches) for both,
    so the difference measures the weights, not the draw.
    """
    s = self._init_streams(key, self.p)
    s = s._replace(horizon=jnp.full_like(s.horizon, steps))
    run = jax.vmap(lambda w, st: self._train(w, st, steps)[1].mean(),
                   in_axes=(None, 0))
    return run(theta, s).mean(), run(gt_network.zero_head(theta), s).mean()
