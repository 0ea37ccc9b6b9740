"""Meta-gradients of the learned direction by backpropagation through unrolls.

Every task keeps `streams` inner trainings in flight, each a pair: the
learned optimizer and the base (`orthogonal.hybrid`) from the same
initialisation, on the same batches, both at the task's *tuned* base
learning rate (`tune_learning_rate`: the best of a grid for the base). A
truncation runs `truncation` steps of both and scores

    meta-loss = log L_eval(learned) - log L_eval(base)

on a batch of the task's test split drawn after the truncation. Its
gradient with respect to the network's weights is exact within the
truncation (reverse mode through the scan; the base term is a constant).
Since the learned update has the base's RMS in every tensor, a bigger step
earns nothing: only a better direction lowers the meta-loss.

Streams restart at a horizon drawn per stream, with a fresh initialisation
scaled by a random factor (parameter-scale augmentation) and the loss
multiplied by a random factor (loss-scale augmentation); both optimizers
and every feature are meant to be invariant to the second.

A task's meta-gradient combines its streams' estimates (`combine_streams`):
the plain mean, or, since an unroll that enters a chaotic region returns a
gradient many orders of magnitude larger than the others (the first 60-minute
run saw norms up to 1.9e6 where the median was about 1), the mean of unit
directions over the finite estimates within `outlier_factor` of the median
norm.

`gradient_snr` measures what the first gradient transformer lacked: the
mean cosine between independent meta-gradient estimates at one point.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel.meta import tasks as tasks_lib
from accel.optim import gt_transform
from accel.optim import orthogonal


class Ranges(NamedTuple):
  """What each stream draws at a restart."""
  horizon: tuple[int, int] = (200, 600)
  param_scale: tuple[float, float] = (0.5, 2.0)
  loss_scale: tuple[float, float] = (1e-2, 1e2)


STREAM_RULES = ("mean", "unit")


def _check_stream_rule(rule: str) -> None:
  if rule not in STREAM_RULES:
    raise ValueError(f"stream rule {rule!r} is not one of {STREAM_RULES}.")


# One compiled program per rule and tree structure: op by op, each leaf's
# few reductions dispatched separately (3 s of the debug run's 55 s).
@functools.partial(jax.jit, static_argnames="rule")
def combine_streams(grads, rule: str = "mean", outlier_factor: float = 10.0):
  """One estimate from S stream estimates (leading axis S on every leaf).

  "mean": their mean (non-finite estimates dropped). "unit": the mean of
  the unit-norm directions of the finite estimates whose norm is at most
  `outlier_factor` times the median norm. Returns (gradient, number kept).
  """
  _check_stream_rule(rule)
  leaves = jax.tree.leaves(grads)
  norms_S = jnp.sqrt(sum(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), 1)
                         for g in leaves))
  keep_S = jnp.isfinite(norms_S)
  if rule == "unit":
    median = jnp.nanmedian(jnp.where(keep_S, norms_S, jnp.nan))
    keep_S &= norms_S <= outlier_factor * median
    weight_S = keep_S / jnp.maximum(norms_S, 1e-30)
  else:
    weight_S = keep_S.astype(norms_S.dtype)
  kept = jnp.sum(keep_S)
  weight_S = weight_S / jnp.maximum(kept, 1)

  def combine(g):
    g = jnp.where(keep_S.reshape((-1,) + (1,) * (g.ndim - 1)), g, 0.0)
    return jnp.tensordot(weight_S.astype(g.dtype), g, axes=1)
  return jax.tree.map(combine, grads), kept


class Streams(NamedTuple):
  """S inner trainings of one task (leading axis S on every leaf)."""
  params: Any
  opt_state: Any
  base_params: Any
  base_state: Any
  step: jax.Array        # int32 [S]
  horizon: jax.Array     # int32 [S]
  loss_scale: jax.Array  # float32 [S]


def _log_uniform(key, lo, hi, shape=()):
  return jnp.exp(jax.random.uniform(key, shape, minval=np.log(lo),
                                    maxval=np.log(hi)))


class Runner:
  """One task's programs: init, truncation gradient, evaluation."""

  def __init__(self, task: tasks_lib.Task, *, learning_rate: float,
               truncation: int, ranges: Ranges = Ranges(),
               eval_batches: int = 4, opt_kwargs: dict | None = None,
               stream_rule: str = "mean", outlier_factor: float = 10.0):
    _check_stream_rule(stream_rule)
    self.task, self.lr, self.truncation = task, float(learning_rate), truncation
    self.stream_rule, self.outlier_factor = stream_rule, float(outlier_factor)
    self.ranges, self.eval_batches = ranges, eval_batches
    self.opt_kwargs = dict(opt_kwargs or {})
    # The base as the learned optimizer holds it (eps_root included).
    self.base = orthogonal.hybrid(
        self.lr, rows_per_step=task.rows_per_step,
        eps_root=self.opt_kwargs.get("eps_root", 0.0))
    self._grad = jax.jit(jax.vmap(
        jax.value_and_grad(self._meta_loss, has_aux=True),
        in_axes=(None, 0, 0)))
    self._init = jax.jit(jax.vmap(self._init_one, in_axes=(None, 0)))
    self._restart = jax.jit(self._restart_impl)

  def learned(self, theta, fixed_mix=None, learning_rate=None):
    return gt_transform.gradient_transformer(
        self.lr if learning_rate is None else learning_rate,
        rows_per_step=self.task.rows_per_step, weights=theta,
        fixed_mix=fixed_mix, **self.opt_kwargs)

  def _init_one(self, theta, key):
    k_init, k_h, k_p, k_l = jax.random.split(key, 4)
    scale = _log_uniform(k_p, *self.ranges.param_scale)
    params = jax.tree.map(lambda p: p * scale.astype(p.dtype),
                          self.task.init(k_init))
    lo, hi = self.ranges.horizon
    return Streams(
        params=params, opt_state=self.learned(theta).init(params),
        base_params=params, base_state=self.base.init(params),
        step=jnp.zeros([], jnp.int32),
        horizon=jax.random.randint(k_h, (), lo, hi + 1),
        loss_scale=_log_uniform(k_l, *self.ranges.loss_scale))

  def init(self, theta, key, num: int) -> Streams:
    """`num` fresh streams (their horizons differ, so their restarts
    spread out after the first)."""
    return self._init(theta, jax.random.split(key, num))

  def _loss(self, params, batch, scale):
    return scale * self.task.loss(params, batch)

  def _eval_loss(self, params, key):
    keys = jax.random.split(key, self.eval_batches)
    return jnp.mean(jnp.stack([self.task.loss(
        params, self.task.batch(k, self.task.eval_arrays)) for k in keys]))

  def _unroll(self, theta, s: Streams, key, fixed_mix=None):
    opt = self.learned(theta, fixed_mix)

    def step(carry, k):
      params, opt_state, base_params, base_state = carry
      batch = self.task.batch(k, self.task.arrays)
      loss, grads = jax.value_and_grad(self._loss)(params, batch,
                                                   s.loss_scale)
      updates, opt_state = opt.update(grads, opt_state, params, value=loss)
      params = optax.apply_updates(params, updates)
      base_grads = jax.grad(self._loss)(base_params, batch, s.loss_scale)
      base_updates, base_state = self.base.update(base_grads, base_state,
                                                  base_params)
      base_params = optax.apply_updates(base_params, base_updates)
      return (params, opt_state, base_params, base_state), loss
    keys = jax.random.split(key, self.truncation)
    (params, opt_state, base_params, base_state), losses = jax.lax.scan(
        step, (s.params, s.opt_state, s.base_params, s.base_state), keys)
    return s._replace(params=params, opt_state=opt_state,
                      base_params=base_params, base_state=base_state,
                      step=s.step + self.truncation), losses

  def _meta_loss(self, theta, s: Streams, key):
    k_unroll, k_eval = jax.random.split(key)
    new, _ = self._unroll(theta, s, k_unroll)
    learned = jnp.log(self._eval_loss(new.params, k_eval))
    base = jnp.log(self._eval_loss(new.base_params, k_eval))
    new = jax.tree.map(jax.lax.stop_gradient, new)
    return learned - jax.lax.stop_gradient(base), new

  def gradient(self, theta, streams: Streams, key):
    """(mean meta-loss, the streams' gradients combined by the stream rule,
    advanced streams, number of stream estimates kept)."""
    keys = jax.random.split(key, streams.step.shape[0])
    (meta, new), grads = self._grad(theta, streams, keys)
    grad, kept = combine_streams(grads, self.stream_rule, self.outlier_factor)
    return jnp.mean(meta), grad, new, kept

  def _restart_impl(self, theta, streams: Streams, key):
    fresh = self._init(theta, jax.random.split(key, streams.step.shape[0]))
    done = streams.step >= streams.horizon

    def pick(new, old):
      mask = done.reshape((-1,) + (1,) * (old.ndim - 1))
      return jnp.where(mask, new, old)
    return jax.tree.map(pick, fresh, streams)

  def restart(self, theta, streams: Streams, key) -> Streams:
    """Streams past their horizon start again (fresh draws)."""
    return self._restart(theta, streams, key)

  @functools.partial(jax.jit, static_argnames=("self", "steps"))
  def _run(self, theta, fixed_mix, key, learning_rate, steps: int):
    opt = self.learned(theta, fixed_mix, learning_rate)
    k_init, k_run, k_eval = jax.random.split(key, 3)
    params = self.task.init(k_init)

    def step(carry, k):
      params, state = carry
      batch = self.task.batch(k, self.task.arrays)
      loss, grads = jax.value_and_grad(self.task.loss)(params, batch)
      updates, state = opt.update(grads, state, params, value=loss)
      mix = gt_transform.find_mix(state)
      return (optax.apply_updates(params, updates), state), mix
    (params, _), mix_SxTxK = jax.lax.scan(
        step, (params, opt.init(params)), jax.random.split(k_run, steps))
    return self._eval_loss(params, k_eval), jnp.mean(mix_SxTxK, axis=0)

  def run(self, theta, key, steps: int, fixed_mix=None,
          learning_rate=None):
    """One plain training of `steps` steps (no augmentation) at the tuned
    rate or `learning_rate`: (final eval loss, time-averaged coefficients
    T x K). theta None: the base."""
    lr = self.lr if learning_rate is None else learning_rate
    return self._run(theta, fixed_mix, key, jnp.float32(lr), steps)


def tune_learning_rate(task: tasks_lib.Task, grid, steps: int, seed: int = 0
                       ) -> tuple[float, dict[float, float]]:
  """The base's best learning rate on `task` over `steps` steps (final
  eval loss, one seed): (best, {lr: loss})."""
  losses = {}
  runner = Runner(task, learning_rate=grid[0], truncation=1)
  for lr in grid:
    loss, _ = runner.run(None, jax.random.PRNGKey(seed), steps,
                         learning_rate=lr)
    loss = float(loss)
    losses[float(lr)] = loss if np.isfinite(loss) else float("inf")
  return min(losses, key=losses.get), losses


def cosine(a, b) -> float:
  va = jnp.concatenate([x.ravel() for x in jax.tree.leaves(a)])
  vb = jnp.concatenate([x.ravel() for x in jax.tree.leaves(b)])
  return float(va @ vb / (jnp.linalg.norm(va) * jnp.linalg.norm(vb) + 1e-30))


def gradient_snr(runners: dict[str, Runner], theta, streams, key,
                 estimates: int = 4) -> dict[str, float]:
  """Mean pairwise cosine between `estimates` independent meta-gradients
  (each the mean over every task, from the same stream states with
  independent batches), and the bar 3/sqrt(number of weights)."""
  grads = []
  for e in range(estimates):
    per_task = [runners[n].gradient(theta, streams[n], jax.random.fold_in(
        key, 1000 * e + i))[1] for i, n in enumerate(sorted(runners))]
    grads.append(jax.tree.map(lambda *g: sum(g) / len(g), *per_task))
  cosines = [cosine(a, b) for a, b in itertools.combinations(grads, 2)]
  size = sum(x.size for x in jax.tree.leaves(theta))
  return {"snr/mean_cosine": float(np.mean(cosines)),
          "snr/min_cosine": float(np.min(cosines)),
          "snr/bar": 3.0 / float(np.sqrt(size)),
          "snr/num_weights": float(size)}
