"""The gradient transformer: a learned, attention-based optax transformation.

A residual around AdamW. Per parameter it keeps Adam's two moments and one
slow momentum, and forms a few cheap directions:

    adam       m^ / (sqrt(v^) + eps)                      (the base)
    nesterov   (b1 m^ + (1 - b1) g / (1 - b1^t)) / (sqrt(v^) + eps)
    slow       m_slow^ / (sqrt(v^) + eps)
    rmsprop    g / (sqrt(v^) + eps)
    sign       sign(m)

Per tensor it records a window of summary features (log RMS of gradient, of
both momenta and of the second moment, update/parameter ratio, log RMS of the
parameter, gradient-momentum cosines at two timescales, and their changes
over the window), plus the loss history. A small transformer
(`gt_network.GradientTransformerNet`) reads them and emits, per tensor, a
learning-rate multiplier, a weight-decay multiplier and mixing weights:

    update = lr_mult * (adam + sum_k a_k (direction_k - adam))
             + weight_decay * wd_mult * param

All outputs are bounded (tanh): lr_mult and wd_mult within
[1/max_multiplier, max_multiplier], a_k within [-max_mix, max_mix]. With the
network's output layer at zero, lr_mult = wd_mult = 1 and a_k = 0: the update
is exactly AdamW's. Per-parameter work is a handful of elementwise ops and
eight reductions per tensor; the network runs once per step on T tokens.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from accel.errors import ConfigError
from accel.optim import checks
from accel.optim import gt_network
from accel.optim import schedules
from accel.optim import state_lookup

_TINY = 1e-30
_NUM_LOGS = 6
STORED_FEATURES = 3 + _NUM_LOGS  # valid, logs, two cosines


class GradientTransformerState(NamedTuple):
  count: jax.Array         # int32 []
  mu: optax.Updates        # first moment (b1)
  nu: optax.Updates        # second moment (b2)
  mu_slow: optax.Updates   # slow momentum (b3)
  window_TxHxR: jax.Array  # per-tensor feature window, newest last
  loss_H: jax.Array        # log-loss window, newest last
  loss_valid_H: jax.Array  # which loss slots hold a value
  loss_sum: jax.Array      # losses seen since the last refresh ...
  loss_n: jax.Array        # ... and how many
  # Diagnostics of the last step, for logging: per-tensor multipliers and
  # mixing weights.
  lr_multiplier_T: jax.Array
  wd_multiplier_T: jax.Array
  mix_TxK: jax.Array


def resolve_weights(weights, history: int | None,
                    update_every: int | None = None):
  """(params, architecture) for `weights` = "default" | path | pytree | None.

  `history=None` and `update_every=None` take the values the weights were
  trained with.
  """
  if weights is None:
    arch = gt_network.Architecture(history=history or 8,
                                   update_every=update_every or 4)
    return gt_network.init_weights(arch), arch
  if isinstance(weights, (str, os.PathLike)):
    path = (gt_network.DEFAULT_WEIGHTS if weights == "default"
            else os.fspath(weights))
    params, arch, _ = gt_network.load_weights(path)
    origin = f"weights file {path!r}"
  else:
    params = weights
    origin = "the given weights pytree"
    arch = gt_network.infer_architecture(params)
    if update_every:
      arch = dataclasses.replace(arch, update_every=update_every)
    gt_network.check_weights(params, arch, origin=origin)
  if arch.step_features != gt_network.NUM_STEP_FEATURES or (
      arch.static_features != gt_network.NUM_STATIC_FEATURES) or (
          arch.outputs != gt_network.NUM_OUTPUTS):
    raise ConfigError(
        f"{origin} was made for a different gradient transformer "
        f"(features/outputs {arch.step_features}/{arch.static_features}/"
        f"{arch.outputs}, this accel uses {gt_network.NUM_STEP_FEATURES}/"
        f"{gt_network.NUM_STATIC_FEATURES}/{gt_network.NUM_OUTPUTS}).")
  if history is not None and history != arch.history:
    raise ConfigError(f"history={history} does not match the history "
                      f"{arch.history} that {origin} was trained with; pass "
                      f"history={arch.history} or None.")
  if update_every is not None and update_every != arch.update_every:
    raise ConfigError(f"update_every={update_every} does not match the "
                      f"update_every={arch.update_every} that {origin} was "
                      f"trained with; pass {arch.update_every} or None.")
  return params, arch


def _static_features(p) -> jax.Array:
  ndim = min(p.ndim, 3)
  onehot = [1.0 if ndim == i else 0.0 for i in range(4)]
  return jnp.asarray([0.1 * jnp.log1p(p.size), 1.0] + onehot, jnp.float32)


def _per_tensor(values_T, treedef):
  """A tree shaped like the parameters holding values_T[i] at leaf i."""
  return treedef.unflatten(list(values_T))


def _decay_mask(mask, params):
  """A tree of 0/1 float weights: where decoupled weight decay applies."""
  tree = mask(params) if callable(mask) else mask
  if tree is None:
    return jax.tree.map(lambda _: 1.0, params)
  return jax.tree.map(lambda m, _: jnp.asarray(m, jnp.float32), tree, params)


def _tensor_stats(g, p, m0, s0, m, v, s, adam) -> jax.Array:
  """Ten means per tensor that the step features are made of."""
  g, p, m0, s0 = (x.astype(jnp.float32) for x in (g, p, m0, s0))
  mean = lambda x: jnp.sum(x) / max(g.size, 1)
  return jnp.stack([
      mean(g * g), mean(m * m), mean(s * s), mean(v), mean(adam * adam),
      mean(p * p), mean(g * m0), mean(g * s0), mean(m0 * m0), mean(s0 * s0)])


class _Directions(NamedTuple):
  """One tensor's base direction (Adam's) and gt_network.DIRECTIONS."""
  adam: jax.Array
  others: tuple[jax.Array, ...]


def _is_directions(x) -> bool:
  return isinstance(x, _Directions)


def _directions(g, m_hat, v_hat, s_hat, *, b1: float, eps: float, bc1):
  denom = jnp.sqrt(v_hat) + eps
  g = g.astype(jnp.float32)
  nesterov = (b1 * m_hat + (1 - b1) * g / bc1) / denom
  return _Directions(m_hat / denom, (nesterov, s_hat / denom, g / denom,
                                     jnp.sign(m_hat)))


def _mix(adam, directions, mix_K):
  """adam + sum_k mix_k (direction_k - adam)."""
  return adam + sum(a * (d - adam) for a, d in zip(mix_K, directions))


def _refresh(net, net_params, state, stats_TxR, static_TxS, lr, count,
             loss_sum, loss_n, *, bias, log_max, max_mix):
  """New window, loss history and bounded network outputs (multipliers and
  mixing weights), as the fields of GradientTransformerState they set."""
  c1, c2, c3 = (1.0 / b for b in bias)
  step_TxR = _step_features(stats_TxR, lr, c1, c2, c3)
  window_TxHxR = jnp.concatenate(
      [state.window_TxHxR[:, 1:], step_TxR[:, None]], axis=1)
  loss_H, loss_valid_H = _push_loss(state.loss_H, state.loss_valid_H,
                                    loss_sum, loss_n)
  global_G = _global_features(loss_H, loss_valid_H,
                              count.astype(jnp.float32))
  out_TxO = net.apply({"params": net_params}, network_inputs(window_TxHxR),
                      static_TxS, global_G).astype(jnp.float32)
  zero = jnp.zeros([], jnp.float32)
  return dict(window_TxHxR=window_TxHxR, loss_H=loss_H,
              loss_valid_H=loss_valid_H, loss_sum=zero, loss_n=zero,
              lr_multiplier_T=jnp.exp(log_max * jnp.tanh(out_TxO[:, 0])),
              wd_multiplier_T=jnp.exp(log_max * jnp.tanh(out_TxO[:, 1])),
              mix_TxK=max_mix * jnp.tanh(out_TxO[:, 2:]))


def _held(state, loss_sum, loss_n):
  """The fields _refresh sets, as they are (between refreshes)."""
  return dict(window_TxHxR=state.window_TxHxR, loss_H=state.loss_H,
              loss_valid_H=state.loss_valid_H, loss_sum=loss_sum,
              loss_n=loss_n, lr_multiplier_T=state.lr_multiplier_T,
              wd_multiplier_T=state.wd_multiplier_T, mix_TxK=state.mix_TxK)


def _add_loss(loss_sum, loss_n, value):
  """Adds a finite, positive loss `value` (if given) to the running sum."""
  if value is None:
    return loss_sum, loss_n
  v = jnp.asarray(value, jnp.float32)
  ok = jnp.isfinite(v) & (v > 0)
  return loss_sum + jnp.where(ok, v, 0.0), loss_n + ok.astype(jnp.float32)


def scale_by_gradient_transformer(
    weights: Any = "default", *, history: int | None = None,
    b1: float = 0.9, b2: float = 0.999, b3: float = 0.99, eps: float = 1e-8,
    weight_decay: float = 0.0, mask: Any = None, learning_rate: Any = None,
    max_multiplier: float = 4.0, max_mix: float = 1.0,
    update_every: int | None = None, mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  """The learned update direction (positive sense, like `scale_by_adam`).

  Args:
    weights: "default" (shipped meta-trained weights), a path to a weights
      file, a weights pytree, or None (untrained: exactly AdamW's direction).
    history: steps of feature history; None takes the weights' own.
    b1, b2, eps: Adam's moment decays and epsilon.
    b3: decay of the slow momentum.
    weight_decay: decoupled weight decay added to the direction (as in
      `optax.adamw`, before the learning rate); the network scales it per
      tensor.
    mask: pytree of bools or callable params -> pytree: where weight decay
      applies.
    learning_rate: the float or schedule that the chain multiplies by
      afterwards. Read only to compute the update/parameter-ratio feature;
      `gradient_transformer` passes it.
    max_multiplier: bound of the learning-rate and weight-decay multipliers.
    max_mix: bound of each direction's mixing weight.
    update_every: refresh the features and run the network every this many
      steps (the outputs are held in between); None takes the weights'.
    mu_dtype: dtype of the two momenta (None: the parameters'), as in
      `optax.scale_by_adam`.

  The returned `update(updates, state, params=None, *, value=None)` takes the
  current loss as `value=`; without it the loss features stay empty.
  """
  if learning_rate is not None:
    checks.check_learning_rate(learning_rate)
  checks.check("max_multiplier", max_multiplier, lambda x: x >= 1,
               ">= 1 (the multipliers lie in [1/max, max])")
  checks.check("max_mix", max_mix, lambda x: x >= 0, ">= 0")
  for name, b in (("b1", b1), ("b2", b2), ("b3", b3)):
    checks.check_decay(name, b)
  checks.check("eps", eps, lambda x: x >= 0, ">= 0")
  checks.check("weight_decay", weight_decay, lambda x: x >= 0, ">= 0")
  net_params, arch = resolve_weights(weights, history, update_every)
  net = gt_network.GradientTransformerNet(arch)
  lr_fn = schedules.as_schedule(learning_rate)
  bounds = dict(log_max=jnp.log(max_multiplier), max_mix=max_mix)
  use_decay = not (isinstance(weight_decay, (int, float))
                   and weight_decay == 0)

  def init_fn(params):
    checks.check_float_params(params, "the gradient transformer")
    t, h, k = len(jax.tree.leaves(params)), arch.history, len(
        gt_network.DIRECTIONS)
    zeros = lambda *shape: jnp.zeros(shape, jnp.float32)
    return GradientTransformerState(
        count=jnp.zeros([], jnp.int32),
        mu=optax.tree.zeros_like(params, dtype=mu_dtype),
        nu=optax.tree.zeros_like(params),
        mu_slow=optax.tree.zeros_like(params, dtype=mu_dtype),
        window_TxHxR=zeros(t, h, STORED_FEATURES), loss_H=zeros(h),
        loss_valid_H=zeros(h), loss_sum=zeros(), loss_n=zeros(),
        lr_multiplier_T=jnp.ones((t,)), wd_multiplier_T=jnp.ones((t,)),
        mix_TxK=zeros(t, k))

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del extra_args
    if params is None:
      raise ConfigError("the gradient transformer needs `params` in update(): "
                        "its features include the parameters' scale.")
    count = optax.safe_increment(state.count)
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    mu_slow = optax.tree.update_moment(updates, state.mu_slow, b3, 1)
    bias = [1 - b ** count.astype(jnp.float32) for b in (b1, b2, b3)]
    m_hat = optax.tree.bias_correction(mu, b1, count)
    v_hat = optax.tree.bias_correction(nu, b2, count)
    s_hat = optax.tree.bias_correction(mu_slow, b3, count)
    directions = jax.tree.map(functools.partial(
        _directions, b1=b1, eps=eps, bc1=bias[0]), updates, m_hat, v_hat,
                              s_hat)
    fields = _controls(
        net, net_params, state, updates, params, mu, nu, mu_slow,
        directions, jnp.asarray(lr_fn(state.count), jnp.float32),
        count, *_add_loss(state.loss_sum, state.loss_n, value),
        every=arch.update_every, bias=bias, bounds=bounds)
    treedef = jax.tree.structure(updates)
    out = jax.tree.map(
        lambda d, mix_K, lr_m: lr_m * _mix(d.adam, d.others, mix_K),
        directions, _per_tensor(fields["mix_TxK"], treedef),
        _per_tensor(fields["lr_multiplier_T"], treedef),
        is_leaf=_is_directions)
    if use_decay:
      out = jax.tree.map(
          lambda u, p, m, wd_m: u + weight_decay * m * wd_m * p.astype(
              jnp.float32), out, params, _decay_mask(mask, params),
          _per_tensor(fields["wd_multiplier_T"], treedef))
    out = jax.tree.map(lambda u, p: u.astype(p.dtype), out, params)
    return out, GradientTransformerState(
        count=count, mu=optax.tree.cast(mu, mu_dtype),
        nu=optax.tree.cast_like(nu, state.nu),
        mu_slow=optax.tree.cast(mu_slow, mu_dtype), **fields)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _controls(net, net_params, state, grads, params, mu, nu, mu_slow,
              directions, lr, count, loss_sum, loss_n, *, every, bias,
              bounds):
  """The state fields that hold the network's outputs: refreshed every
  `every` steps (statistics of this step -> window -> network), held in
  between. No tensors: nothing to refresh."""
  if not jax.tree.leaves(grads):
    return _held(state, loss_sum, loss_n)

  def refresh():
    adam = jax.tree.map(lambda d: d.adam, directions,
                        is_leaf=_is_directions)
    stats_TxR = jnp.stack(jax.tree.leaves(jax.tree.map(
        _tensor_stats, grads, params, state.mu, state.mu_slow, mu, nu,
        mu_slow, adam)))
    static_TxS = jnp.stack([_static_features(p)
                            for p in jax.tree.leaves(params)])
    return _refresh(net, net_params, state, stats_TxR, static_TxS, lr, count,
                    loss_sum, loss_n, bias=bias, **bounds)

  if every == 1:
    return refresh()
  return jax.lax.cond(state.count % every == 0, refresh,
                      lambda: _held(state, loss_sum, loss_n))


def _log_rms(mean_square):
  return 0.5 * jnp.log(mean_square + _TINY)


def _step_features(stats_TxR, lr, c1, c2, c3):
  """Per-tensor features of this step from its reductions (T x STORED)."""
  gg, mm, ss, vv, aa, pp, gm0, gs0, m0m0, s0s0 = stats_TxR.T
  logs = jnp.stack([
      _log_rms(gg),                                   # gradient
      _log_rms(mm * c1 * c1),                         # momentum (debiased)
      _log_rms(ss * c3 * c3),                         # slow momentum
      0.5 * _log_rms(vv * c2),                        # sqrt of 2nd moment
      _log_rms(aa) + jnp.log(lr + _TINY) - _log_rms(pp),  # update / param
      _log_rms(pp),                                   # parameter
  ], axis=1)
  cos_gm = gm0 / jnp.sqrt(gg * m0m0 + _TINY)  # gradient vs last momentum
  cos_gs = gs0 / jnp.sqrt(gg * s0s0 + _TINY)  # ... vs last slow momentum
  return jnp.concatenate([jnp.ones_like(gg)[:, None], 0.1 * logs,
                          cos_gm[:, None], cos_gs[:, None]], axis=1)


def network_inputs(window_TxHxR):
  """The stored window plus each log feature's change to the newest step."""
  valid_TxHx1 = window_TxHxR[..., :1]
  logs_TxHx6 = window_TxHxR[..., 1:1 + _NUM_LOGS]
  change = (logs_TxHx6 - logs_TxHx6[:, -1:]) * valid_TxHx1
  return jnp.concatenate([window_TxHxR, 10.0 * change], axis=-1)


def _push_loss(loss_H, valid_H, loss_sum, loss_n):
  """Pushes log(mean loss since the last refresh), if there was any."""
  ok = loss_n > 0
  new = jnp.where(ok, jnp.log(jnp.where(ok, loss_sum / loss_n, 1.0)),
                  loss_H[-1])
  ok = ok.astype(jnp.float32)
  return (jnp.concatenate([loss_H[1:], new[None]]),
          jnp.concatenate([valid_H[1:], ok[None]]))


def _global_features(loss_H, valid_H, t_f):
  latest = loss_H[-1]
  rel = (loss_H - latest) * valid_H
  return jnp.concatenate([
      valid_H, 0.1 * loss_H * valid_H, rel,
      jnp.stack([0.1 * jnp.log(t_f + 1.0), valid_H[-1]])])


def gradient_transformer(
    learning_rate: optax.ScalarOrSchedule, *, weight_decay: float = 0.0,
    mask: Any = None, weights: Any = "default", history: int | None = None,
    b1: float = 0.9, b2: float = 0.999, b3: float = 0.99, eps: float = 1e-8,
    max_multiplier: float = 4.0, max_mix: float = 1.0,
    update_every: int | None = None, mu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
  """A complete optimizer, used like `optax.adamw(learning_rate, ...)`.

  With `weights=None` (or weights whose output layer is zero) it is AdamW.
  """
  checks.check_learning_rate(learning_rate)
  return optax.chain(
      scale_by_gradient_transformer(
          weights, history=history, b1=b1, b2=b2, b3=b3, eps=eps,
          weight_decay=weight_decay, mask=mask, learning_rate=learning_rate,
          max_multiplier=max_multiplier, max_mix=max_mix,
          update_every=update_every, mu_dtype=mu_dtype),
      optax.scale_by_learning_rate(learning_rate))


def diagnostics(opt_state) -> dict[str, jax.Array]:
  """Scalars for TensorBoard from the gradient transformer's last step.

  Empty when `opt_state` holds no gradient transformer (or no tensors).
  """
  s = find_state(opt_state)
  if s is None or s.lr_multiplier_T.shape[0] == 0:
    return {}
  out = {"gt/lr_multiplier_mean": jnp.mean(s.lr_multiplier_T),
         "gt/lr_multiplier_min": jnp.min(s.lr_multiplier_T),
         "gt/lr_multiplier_max": jnp.max(s.lr_multiplier_T),
         "gt/wd_multiplier_mean": jnp.mean(s.wd_multiplier_T)}
  for j, name in enumerate(gt_network.DIRECTIONS):
    out[f"gt/mix_{name}_mean"] = jnp.mean(s.mix_TxK[:, j])
  return out


def find_state(opt_state) -> GradientTransformerState | None:
  """The first GradientTransformerState inside an optimizer state, if any."""
  return state_lookup.find_state(opt_state, GradientTransformerState)
