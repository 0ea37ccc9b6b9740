"""The gradient transformer: a learned, bounded correction of the direction
of a strong base update.

The base is `orthogonal.hybrid`: Muon (orthogonalised Nesterov momentum) on
the hidden matrices whose Newton-Schulz cost the rule there accepts, NAdamW
on every other leaf. Its update u is taken as it is (optax.contrib's own
pieces; tested equal to the optax chain). Per tensor this transformation
keeps one more buffer, the slow average s of the base's updates (decay b3,
bias-corrected to s^), and forms

    m = u + c_slow * s^ * rms(u)/rms(s^) + c_grad * g * rms(u)/rms(g)
    update = m * rms(u) / rms(m)

c = max_mix * tanh(network outputs), one pair per tensor. The update has the
base's RMS in every tensor, so the step size is the user's schedule's alone
(no learned magnitude: a larger step earns nothing), and with the network's
output at zero the update is exactly the base's. The slow direction is what
AdEMAMix adds to Adam and what the first gradient transformer's constant
mix turned out to be; the gradient direction lets a tensor shed momentum.

The network (`gt_network.DirectionNet`) sees, per tensor and for the
last `history` steps, cosines between g, u and s^, the log-ratio
rms(s^)/rms(u) and the relative step lr*rms(u)/rms(p); per tensor whether
it is orthogonalised and its rank; globally the loss history as log-ratios
to the newest loss. None of them depends on the scale of the loss, the
parameters or the gradients, and none on the run's length.

All per-tensor statistics come from one pass: the seven products are
concatenated over the tensors and summed by segment (no per-tensor kernels,
no `lax.cond`); the network runs every step on T tokens.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel.errors import ConfigError
from accel.optim import checks
from accel.optim import gt_network as net_lib
from accel.optim import matrices
from accel.optim import orthogonal
from accel.optim import schedules
from accel.optim import state_lookup

DIRECTIONS = ("slow", "gradient")
DEFAULT_WEIGHTS = os.path.join(os.path.dirname(__file__), "weights",
                               "gradient_transformer.msgpack")
_TINY = 1e-30  # float32 sums of squares below it are zero
# The bound on each coefficient. At 1.0 the shipped network's coefficients
# swing to the bounds on held-out workloads and cost time on top of the
# base (digits CNN: the target on 1 seed of 3; byte LM: 0.89x tuned AdamW
# against the base's 0.53x); at 0.25 the harm is gone (digits 0.65x, LM
# 0.53x: benchmarks/conv_rows/small_mix, benchmarks/gt_mix_lm).
DEFAULT_MAX_MIX = 0.25


class GradientTransformerState(NamedTuple):
  count: jax.Array         # int32 []
  base: optax.OptState     # orthogonal.hybrid's state
  slow: optax.Updates      # average of the base's updates (b3)
  window_TxHxF: jax.Array  # per-tensor features, newest last
  loss_H: jax.Array        # log losses, newest last
  loss_valid_H: jax.Array  # which loss slots hold a value
  mix_TxK: jax.Array       # the last step's coefficients (diagnostics)


def resolve_weights(weights):
  """(params or None, architecture) for "default" | path | pytree | None."""
  if weights is None:
    return None, net_lib.Architecture()
  if isinstance(weights, (str, os.PathLike)):
    path = DEFAULT_WEIGHTS if weights == "default" else os.fspath(weights)
    params, arch, _ = net_lib.load_weights(path)
    return params, arch
  arch = net_lib.infer_architecture(weights)
  net_lib.check_weights(weights, arch, origin="the given weights pytree")
  return weights, arch


def tensor_sums(u, s, g, p, sample: int = 4096) -> jax.Array:
  """[7, T] per-tensor sums of u*u, s*s, u*s, g*g, g*u, g*s, p*p over an
  evenly strided sample of at most about 2 x `sample` entries of each
  tensor (all of a small one): the features are cosines and ratios, which a
  sample of thousands estimates well, and exact sums over every entry cost
  about as much as the base's whole update on XLA:CPU. The sums are
  divided by the sample's size (mean products)."""
  def sums(u, s, g, p):
    stride = max(1, u.size // sample)
    u, s, g, p = (x.astype(jnp.float32).ravel()[::stride]
                  for x in (u, s, g, p))
    n = u.size
    return jnp.stack([u @ u, s @ s, u @ s, g @ g, g @ u, g @ s, p @ p]) / n
  return jnp.stack(jax.tree.leaves(jax.tree.map(sums, u, s, g, p)), axis=1)


def step_features(sums_7xT, lr) -> jax.Array:
  """Per-tensor features of this step (T x NUM_STEP_FEATURES)."""
  uu, ss, us, gg, gu, gs, pp = sums_7xT
  cos = lambda xy, xx, yy: xy / jnp.sqrt(xx * yy + _TINY)
  log_ratio = lambda a, b: 0.5 * (jnp.log(a + _TINY) - jnp.log(b + _TINY))
  relative_step = jnp.log(jnp.abs(lr) + _TINY) + log_ratio(uu, pp)
  return jnp.stack([
      jnp.ones_like(uu), cos(us, uu, ss), cos(gs, gg, ss), cos(gu, gg, uu),
      jnp.clip(log_ratio(ss, uu), -5.0, 5.0),
      0.1 * jnp.clip(relative_step, -15.0, 5.0)], axis=1)


def static_features(params, orthogonalised) -> jax.Array:
  """Per tensor: orthogonalised, a vector, rank 3 or more (T x S)."""
  rows = []
  for p, dims in zip(jax.tree.leaves(params), jax.tree.leaves(
      orthogonalised, is_leaf=lambda x: x is None or _is_dims(x))):
    rows.append([float(dims is not None), float(p.ndim <= 1),
                 float(p.ndim >= 3)])
  return jnp.asarray(rows, jnp.float32).reshape(-1, 3)


def _is_dims(x) -> bool:
  return isinstance(x, optax.contrib.MuonDimensionNumbers)


def _push(window, new):
  return jnp.concatenate([window[:, 1:], new[:, None]], axis=1)


def _push_loss(loss_H, valid_H, value):
  if value is None:
    return loss_H, valid_H
  v = jnp.asarray(value, jnp.float32)
  ok = jnp.isfinite(v) & (v > 0)
  new = jnp.where(ok, jnp.log(jnp.where(ok, v, 1.0)), loss_H[-1])
  return (jnp.concatenate([loss_H[1:], new[None]]),
          jnp.concatenate([valid_H[1:], ok.astype(jnp.float32)[None]]))


def global_features(loss_H, valid_H) -> jax.Array:
  """The loss history as log-ratios to the newest loss, and its flags."""
  return jnp.concatenate([(loss_H - loss_H[-1]) * valid_H, valid_H])


def mixed_scales(sums_7xT, mix_TxK):
  """Per tensor (scale, c_slow, c_grad): update = scale * (u + c_slow s^ +
  c_grad g) has rms(u), computed from the sums (no second pass)."""
  uu, ss, us, gg, gu, gs, _ = sums_7xT
  root = lambda x: jnp.sqrt(jnp.maximum(x, 0.0) + _TINY)  # finite gradient
  ru = root(uu)
  c_slow = mix_TxK[:, 0] * ru / root(ss)
  c_grad = mix_TxK[:, 1] * ru / root(gg)
  mm = (uu + c_slow * c_slow * ss + c_grad * c_grad * gg
        + 2 * c_slow * us + 2 * c_grad * gu + 2 * c_slow * c_grad * gs)
  return ru / root(mm), c_slow, c_grad


def scale_by_gradient_transformer(
    weights: Any = "default", *, rows_per_step: orthogonal.Rows,
    max_cost: float = 0.5, ns_steps: int = 5, beta: float = 0.95,
    b1: float = 0.9, b2: float = 0.999, b3: float = 0.99, eps: float = 1e-8,
    eps_root: float = 0.0, consistent_rms: float = 0.2,
    max_mix: float = DEFAULT_MAX_MIX,
    weight_decay: float = 0.0, mask: Any = None, learning_rate: Any = None,
    mu_dtype: Any = None, fixed_mix: Any = None,
    exclude: str = matrices.INPUT_OUTPUT,
) -> optax.GradientTransformationExtraArgs:
  """The gradient transformer's direction (positive sense, like
  `scale_by_adam`).

  Args:
    weights: "default" (the shipped weights), a path, a weights pytree, or
      None (the base update exactly).
    rows_per_step, max_cost, ns_steps, beta, b1, b2, eps, eps_root,
      consistent_rms, exclude: the base's (`orthogonal.hybrid`).
    b3: decay of the slow average of the base's updates.
    max_mix: bound of each coefficient |c| (DEFAULT_MAX_MIX).
    weight_decay, mask: decoupled weight decay added after the direction.
    learning_rate: the float or schedule the chain multiplies by afterwards;
      read only for the relative-step feature.
    fixed_mix: a [T, K] array of coefficients used instead of the network
      (the constant ablation); None runs the network.

  `update(updates, state, params, *, value=loss)` feeds the loss history.
  """
  checks.check("max_mix", max_mix, lambda x: x >= 0, ">= 0")
  checks.check_decay("b3", b3)
  checks.check("weight_decay", weight_decay, lambda x: x >= 0, ">= 0")
  if learning_rate is not None:
    checks.check_learning_rate(learning_rate)
  net_params, arch = resolve_weights(weights)
  net = net_lib.DirectionNet(arch)
  base = orthogonal.hybrid(
      1.0, rows_per_step=rows_per_step, max_cost=max_cost,
      ns_steps=ns_steps, beta=beta, b1=b1, b2=b2, eps=eps, eps_root=eps_root,
      consistent_rms=consistent_rms, mu_dtype=mu_dtype, exclude=exclude)
  lr_fn = schedules.as_schedule(learning_rate)
  k = len(DIRECTIONS)

  def init_fn(params):
    checks.check_float_params(params, "the gradient transformer")
    t = len(jax.tree.leaves(params))
    return GradientTransformerState(
        count=jnp.zeros([], jnp.int32), base=base.init(params),
        slow=optax.tree.zeros_like(params, dtype=mu_dtype),
        window_TxHxF=jnp.zeros((t, arch.history, net_lib.NUM_STEP_FEATURES)),
        loss_H=jnp.zeros((arch.history,)),
        loss_valid_H=jnp.zeros((arch.history,)), mix_TxK=jnp.zeros((t, k)))

  def update_fn(updates, state, params=None, *, value=None, **extra_args):
    del extra_args
    if params is None:
      raise ConfigError("the gradient transformer needs `params` in update(): "
                        "its features include the relative step size.")
    grads = updates
    neg_u, base_state = base.update(grads, state.base, params)
    u = jax.tree.map(lambda x: -x.astype(jnp.float32), neg_u)
    count = optax.safe_increment(state.count)
    slow = optax.tree.update_moment(u, state.slow, b3, 1)
    s_hat = optax.tree.bias_correction(slow, b3, count)
    window, loss_H, valid_H = (state.window_TxHxF, state.loss_H,
                               state.loss_valid_H)
    mix_TxK = state.mix_TxK
    treedef = jax.tree.structure(grads)
    if treedef.num_leaves:
      sums_7xT = tensor_sums(u, s_hat, grads, params)
      lr = jnp.asarray(lr_fn(state.count), jnp.float32)
      window = _push(window, step_features(sums_7xT, lr))
      loss_H, valid_H = _push_loss(loss_H, valid_H, value)
      if fixed_mix is not None:
        mix_TxK = jnp.asarray(fixed_mix, jnp.float32).reshape(-1, k)
      elif net_params is None:
        mix_TxK = jnp.zeros_like(state.mix_TxK)
      else:
        static = static_features(params, orthogonal.orthogonalised(
            params, rows_per_step=rows_per_step, max_cost=max_cost,
            ns_steps=ns_steps, exclude=exclude))
        # The features are the network's inputs, not paths for a
        # meta-gradient: through them it is chaotic (ratios near zero).
        inputs = jax.lax.stop_gradient(
            (window, static, global_features(loss_H, valid_H)))
        raw_TxK = net.apply({"params": net_params}, *inputs)
        mix_TxK = max_mix * jnp.tanh(raw_TxK.astype(jnp.float32))
      scale, c_slow, c_grad = mixed_scales(sums_7xT, mix_TxK)
      per = lambda v: treedef.unflatten(list(v))
      u = jax.tree.map(
          lambda x, s, g, a, cs, cg: a * (x + cs * s + cg * g.astype(
              jnp.float32)), u, s_hat, grads, per(scale), per(c_slow),
          per(c_grad))
    if not (isinstance(weight_decay, (int, float)) and weight_decay == 0):
      decay = mask(params) if callable(mask) else mask
      decay = decay if decay is not None else jax.tree.map(
          lambda _: True, params)
      u = jax.tree.map(lambda x, p, m: x + jnp.where(
          m, weight_decay, 0.0) * p.astype(jnp.float32), u, params, decay)
    out = jax.tree.map(lambda x, p: x.astype(p.dtype), u, params)
    return out, GradientTransformerState(
        count=count, base=base_state,
        slow=optax.tree.cast_like(slow, state.slow),
        window_TxHxF=window, loss_H=loss_H, loss_valid_H=valid_H,
        mix_TxK=mix_TxK)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def gradient_transformer(
    learning_rate: optax.ScalarOrSchedule, *, rows_per_step: orthogonal.Rows,
    weight_decay: float = 0.0, mask: Any = None, weights: Any = "default",
    max_cost: float = 0.5, ns_steps: int = 5, beta: float = 0.95,
    b1: float = 0.9, b2: float = 0.999, b3: float = 0.99, eps: float = 1e-8,
    eps_root: float = 0.0, consistent_rms: float = 0.2,
    max_mix: float = DEFAULT_MAX_MIX, mu_dtype: Any = None,
    fixed_mix: Any = None,
    exclude: str = matrices.INPUT_OUTPUT,
) -> optax.GradientTransformationExtraArgs:
  """A complete optimizer, used like `optax.adamw(learning_rate, ...)`;
  the arguments are `scale_by_gradient_transformer`'s. With `weights=None` it
  is `orthogonal.hybrid` (tested)."""
  checks.check_learning_rate(learning_rate)
  return optax.chain(
      scale_by_gradient_transformer(
          weights, rows_per_step=rows_per_step, max_cost=max_cost,
          ns_steps=ns_steps, beta=beta, b1=b1, b2=b2, b3=b3, eps=eps,
          eps_root=eps_root, consistent_rms=consistent_rms, max_mix=max_mix,
          weight_decay=weight_decay, mask=mask, learning_rate=learning_rate,
          mu_dtype=mu_dtype, fixed_mix=fixed_mix, exclude=exclude),
      optax.scale_by_learning_rate(learning_rate))


def find_mix(opt_state) -> jax.Array:
  """The coefficients [T, K] of the last step in an optimizer state."""
  s = state_lookup.find_state(opt_state, GradientTransformerState)
  if s is None:
    raise ConfigError("no gradient-transformer state in this optimizer "
                      "state.")
  return s.mix_TxK


def diagnostics(opt_state) -> dict[str, jax.Array]:
  """Mean and range of each coefficient at the last step, for TensorBoard."""
  s = state_lookup.find_state(opt_state, GradientTransformerState)
  if s is None or s.mix_TxK.shape[0] == 0:
    return {}
  out = {}
  for j, name in enumerate(DIRECTIONS):
    out[f"direction/{name}_mean"] = jnp.mean(s.mix_TxK[:, j])
    out[f"direction/{name}_min"] = jnp.min(s.mix_TxK[:, j])
    out[f"direction/{name}_max"] = jnp.max(s.mix_TxK[:, j])
  return out
