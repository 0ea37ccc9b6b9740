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
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from accel.optim import gt_network
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
    raise ValueError(
        f"{origin} was made for a different gradient transformer "
        f"(features/outputs {arch.step_features}/{arch.static_features}/"
        f"{arch.outputs}, this accel uses {gt_network.NUM_STEP_FEATURES}/"
        f"{gt_network.NUM_STATIC_FEATURES}/{gt_network.NUM_OUTPUTS}).")
  if history is not None and history != arch.history:
    raise ValueError(f"history={history} does not match the history "
                     f"{arch.history} that {origin} was trained with; pass "
                     f"history={arch.history} or None.")
  if update_every is not None and update_every != arch.update_every:
    raise ValueError(f"update_every={update_every} does not match the "
                     f"update_every={arch.update_every} that {origin} was "
                     f"trained with; pass {arch.update_every} or None.")
  return params, arch


def as_schedule(learning_rate):
  """A schedule for a float or schedule; None means 1.0."""
  if learning_rate is None:
    return lambda count: 1.0
  if callable(learning_rate):
    return learning_rate
  return lambda count: learning_rate


def _mask_leaves(mask, params, treedef):
  if mask is None:
    return [True] * treedef.num_leaves
  tree = mask(params) if callable(mask) else mask
  return treedef.flatten_up_to(tree)


def _static_features(p) -> jax.Array:
  ndim = min(p.ndim, 3)
  onehot = [1.0 if ndim == i else 0.0 for i in range(4)]
  return jnp.asarray([0.1 * jnp.log1p(p.size), 1.0] + onehot, jnp.float32)


def scale_by_gradient_transformer(
    weights: Any = "default", *, history: int | None = None,
    b1: float = 0.9, b2: float = 0.999, b3: float = 0.99, eps: float = 1e-8,
    weight_decay: float = 0.0, mask: Any = None, learning_rate: Any = None,
    max_multiplier: float = 4.0, max_mix: float = 1.0,
    update_every: int | None = None,
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

  The returned `update(updates, state, params=None, *, value=None)` takes the
  current loss as `value=`; without it the loss features stay empty.
  """
  net_params, arch = resolve_weights(weights, history, update_every)
  every = arch.update_every
  net = gt_network.GradientTransformerNet(arch)
  h = arch.history
  lr_fn = as_schedule(learning_rate)
  log_max = jnp.log(max_multiplier)
  k = len(gt_network.DIRECTIONS)

  def init_fn(params):
    zeros = lambda p: jnp.zeros_like(p)
    t = len(jax.tree.leaves(params))
    return GradientTransformerState(
        count=jnp.zeros([], jnp.int32),
        mu=jax.tree.map(zeros, params), nu=jax.tree.map(zeros, params),
        mu_slow=jax.tree.map(zeros, params),
        window_TxHxR=jnp.zeros((t, h, STORED_FEATURES), jnp.float32),
        loss_H=jnp.zeros((h,), jnp.float32),
        loss_valid_H=jnp.zeros((h,), jnp.float32),
        loss_sum=jnp.zeros([], jnp.float32),
        loss_n=jnp.zeros([], jnp.float32),
        lr_multiplier_T=jnp.ones((t,), jnp.float32),
        wd_multiplier_T=jnp.ones((t,), jnp.float32),
        mix_TxK=jnp.zeros((t, k), jnp.float32))

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del extra_args
    if params is None:
      raise ValueError("the gradient transformer needs `params` in update(): "
                       "its features include the parameters' scale.")
    g_leaves, treedef = jax.tree.flatten(updates)
    p_leaves = treedef.flatten_up_to(params)
    mu_leaves = treedef.flatten_up_to(state.mu)
    nu_leaves = treedef.flatten_up_to(state.nu)
    ms_leaves = treedef.flatten_up_to(state.mu_slow)
    use_decay = not (isinstance(weight_decay, (int, float))
                     and weight_decay == 0)
    decay = _mask_leaves(mask, params, treedef) if use_decay else None
    count = optax.safe_increment(state.count)
    t_f = count.astype(jnp.float32)
    c1 = 1.0 / (1.0 - b1 ** t_f)
    c2 = 1.0 / (1.0 - b2 ** t_f)
    c3 = 1.0 / (1.0 - b3 ** t_f)
    lr = jnp.asarray(lr_fn(state.count), jnp.float32)

    new_mu, new_nu, new_ms = [], [], []
    for g, m0, v0, s0 in zip(g_leaves, mu_leaves, nu_leaves, ms_leaves):
      g32 = g.astype(jnp.float32)
      new_mu.append(b1 * m0.astype(jnp.float32) + (1 - b1) * g32)
      new_nu.append(b2 * v0.astype(jnp.float32) + (1 - b2) * g32 * g32)
      new_ms.append(b3 * s0.astype(jnp.float32) + (1 - b3) * g32)
    loss_sum, loss_n = state.loss_sum, state.loss_n
    if value is not None:
      v = jnp.asarray(value, jnp.float32)
      ok = jnp.isfinite(v) & (v > 0)
      loss_sum = loss_sum + jnp.where(ok, v, 0.0)
      loss_n = loss_n + ok.astype(jnp.float32)

    def refresh():
      """Features of this step -> window -> network -> bounded outputs."""
      feats = []
      for g, p, m0, s0, m, v, s in zip(g_leaves, p_leaves, mu_leaves,
                                       ms_leaves, new_mu, new_nu, new_ms):
        g32 = g.astype(jnp.float32)
        m0, s0 = m0.astype(jnp.float32), s0.astype(jnp.float32)
        adam = (m * c1) / (jnp.sqrt(v * c2) + eps)
        n = max(g.size, 1)
        mean = lambda x: jnp.sum(x) / n
        feats.append(jnp.stack([
            mean(g32 * g32), mean(m * m), mean(s * s), mean(v),
            mean(adam * adam), mean(jnp.square(p.astype(jnp.float32))),
            mean(g32 * m0), mean(g32 * s0), mean(m0 * m0), mean(s0 * s0)]))
      stats_TxR = jnp.stack(feats) if feats else jnp.zeros((0, 10))
      step_TxR = _step_features(stats_TxR, lr, c1, c2, c3)
      window_TxHxR = jnp.concatenate(
          [state.window_TxHxR[:, 1:], step_TxR[:, None]], axis=1)
      loss_H, loss_valid_H = _push_loss(state.loss_H, state.loss_valid_H,
                                        loss_sum, loss_n)
      static_TxS = (jnp.stack([_static_features(p) for p in p_leaves])
                    if p_leaves else jnp.zeros((0, arch.static_features)))
      global_G = _global_features(loss_H, loss_valid_H, t_f)
      if g_leaves:
        out_TxO = net.apply({"params": net_params},
                            network_inputs(window_TxHxR), static_TxS,
                            global_G).astype(jnp.float32)
      else:
        out_TxO = jnp.zeros((0, arch.outputs), jnp.float32)
      return (window_TxHxR, loss_H, loss_valid_H,
              jnp.zeros([], jnp.float32), jnp.zeros([], jnp.float32),
              jnp.exp(log_max * jnp.tanh(out_TxO[:, 0])),
              jnp.exp(log_max * jnp.tanh(out_TxO[:, 1])),
              max_mix * jnp.tanh(out_TxO[:, 2:]))

    def keep():
      return (state.window_TxHxR, state.loss_H, state.loss_valid_H,
              loss_sum, loss_n, state.lr_multiplier_T,
              state.wd_multiplier_T, state.mix_TxK)

    if every == 1:
      refreshed = refresh()
    else:
      refreshed = jax.lax.cond(state.count % every == 0, refresh, keep)
    (window_TxHxR, loss_H, loss_valid_H, loss_sum, loss_n, lr_mult_T,
     wd_mult_T, mix_TxK) = refreshed

    out_leaves = []
    for i, (g, p, m, v, s) in enumerate(zip(g_leaves, p_leaves, new_mu,
                                            new_nu, new_ms)):
      a_nest, a_slow, a_rms, a_sign = (mix_TxK[i, j] for j in range(k))
      # adam + sum_k a_k (d_k - adam), written as one fused expression.
      coef_m = c1 * (1 - a_nest - a_slow - a_rms - a_sign) + a_nest * b1 * c1
      coef_g = a_nest * (1 - b1) * c1 + a_rms
      coef_s = a_slow * c3
      inv = 1.0 / (jnp.sqrt(v * c2) + eps)
      d = (coef_m * m + coef_g * g.astype(jnp.float32) + coef_s * s) * inv
      d = d + a_sign * jnp.sign(m)
      u = lr_mult_T[i] * d
      if use_decay and not (isinstance(decay[i], bool) and not decay[i]):
        wd = weight_decay * jnp.asarray(decay[i], jnp.float32)
        u = u + wd * wd_mult_T[i] * p.astype(jnp.float32)
      out_leaves.append(u.astype(p.dtype))

    cast = lambda xs, like: [x.astype(y.dtype) for x, y in zip(xs, like)]
    new_state = GradientTransformerState(
        count=count,
        mu=treedef.unflatten(cast(new_mu, mu_leaves)),
        nu=treedef.unflatten(cast(new_nu, nu_leaves)),
        mu_slow=treedef.unflatten(cast(new_ms, ms_leaves)),
        window_TxHxR=window_TxHxR, loss_H=loss_H, loss_valid_H=loss_valid_H,
        loss_sum=loss_sum, loss_n=loss_n, lr_multiplier_T=lr_mult_T,
        wd_multiplier_T=wd_mult_T, mix_TxK=mix_TxK)
    return treedef.unflatten(out_leaves), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


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
    update_every: int | None = None,
) -> optax.GradientTransformationExtraArgs:
  """A complete optimizer, used like `optax.adamw(learning_rate, ...)`.

  With `weights=None` (or weights whose output layer is zero) it is AdamW.
  """
  return optax.chain(
      scale_by_gradient_transformer(
          weights, history=history, b1=b1, b2=b2, b3=b3, eps=eps,
          weight_decay=weight_decay, mask=mask, learning_rate=learning_rate,
          max_multiplier=max_multiplier, max_mix=max_mix,
          update_every=update_every),
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
