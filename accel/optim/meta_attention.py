"""Meta-attention learning rates: attention over gradient statistics sets a
learning-rate multiplier per parameter group, learnt online by hypergradient.

`scale_by_meta_attention_lr(learning_rate)` plays the role of
`optax.scale_by_learning_rate`: it maps an incoming direction d_t (e.g.
Adam's) to  -learning_rate(t) * multiplier_g * d_t  for each group g (a
parameter tensor). The multipliers come from a small network:

  tokens    one per group, each a window of `window` steps of statistics:
            log RMS of the direction, of the gradient-like input... (here the
            incoming direction, its previous value and the parameter), the
            cosine between successive directions, and the update/parameter
            ratio; plus a global token with the loss history and log step;
  attention `num_heads` heads; every group token queries all tokens;
  output    log multiplier_g = log(max_multiplier) * tanh(w . h_g + b), with
            w and b starting at zero: every multiplier is exactly 1 at
            initialisation and the transform equals the base schedule.

Online learning (Baydin et al. 2018). With theta_t = theta_{t-1} -
lr a_g d_{t-1}, the derivative of the loss at theta_t with respect to
log a_g is  -lr a_g <grad_t, d_{t-1}>_g. The gradient at theta_t is not
available here, but the incoming direction's sign agrees with it for the
first-order transforms this follows, so the transform uses the direction
d_t as the gradient proxy unless the chain passes the raw gradient as the
`grad=` extra argument. That hypergradient is pulled back through the
network with `jax.vjp` at the statistics the multipliers were computed from,
and the network takes one Adam step of size `hyper_lr`.

Against the short-horizon bias (one-step hypergradients favour learning
rates that are too small, so multipliers collapse): the hypergradient is
normalised per group (only its direction is used), a pull of strength
`anchor` draws every log multiplier back toward 0 (the base schedule), and
the multipliers are bounded in [1/max_multiplier, max_multiplier].
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from accel.optim import gt_transform
from accel.optim import state_lookup

_TINY = 1e-30
NUM_FEATURES = 5


class MetaAttentionState(NamedTuple):
  count: jax.Array          # int32 []
  net_params: Any           # the attention network, learnt online
  net_opt_state: Any        # its Adam state
  window_TxWxF: jax.Array   # per-group statistics, newest last
  loss_W: jax.Array         # log-loss window
  loss_valid_W: jax.Array
  prev_direction: Any       # d_{t-1}, for the hypergradient
  prev_inputs_TxWxF: jax.Array  # the window the last multipliers came from
  prev_loss_W: jax.Array
  prev_loss_valid_W: jax.Array
  multiplier_T: jax.Array   # last multipliers (diagnostics)
  attention_TxN: jax.Array  # last attention weights, mean over heads
  hypergrad_T: jax.Array    # last per-group hypergradient (diagnostics)


class MetaAttentionNet(nn.Module):
  """Group tokens (T, W, F) + global window -> log-multiplier logits (T,)."""
  num_heads: int
  width: int

  @nn.compact
  def __call__(self, window_TxWxF, global_G):
    t, w, _ = window_TxWxF.shape
    x_TxD = nn.Dense(self.width, name="embed")(
        window_TxWxF.reshape(t, -1))
    g_1xD = nn.Dense(self.width, name="embed_global")(global_G)[None]
    tokens_NxD = jnp.concatenate([g_1xD, x_TxD], axis=0)
    y = nn.LayerNorm(name="norm")(tokens_NxD)
    head_dim = max(self.width // self.num_heads, 1)
    q = nn.DenseGeneral((self.num_heads, head_dim), name="query")(y[1:])
    k = nn.DenseGeneral((self.num_heads, head_dim), name="key")(y)
    v = nn.DenseGeneral((self.num_heads, head_dim), name="value")(y)
    logits_HxTxN = jnp.einsum("thk,nhk->htn", q, k) / jnp.sqrt(head_dim)
    probs_HxTxN = jax.nn.softmax(logits_HxTxN, axis=-1)
    self.sow("intermediates", "attention", probs_HxTxN.mean(0))
    out_TxHxK = jnp.einsum("htn,nhk->thk", probs_HxTxN, v)
    h_TxD = x_TxD + nn.DenseGeneral(self.width, axis=(-2, -1),
                                    name="out")(out_TxHxK)
    h_TxD = nn.gelu(nn.Dense(self.width, name="mlp")(nn.LayerNorm()(h_TxD)))
    del w
    return nn.Dense(1, kernel_init=nn.initializers.zeros,
                    name="head")(h_TxD)[:, 0]


def _global(loss_W, valid_W, count):
  rel = (loss_W - loss_W[-1]) * valid_W
  return jnp.concatenate([valid_W, rel,
                          jnp.stack([0.1 * jnp.log1p(count.astype(
                              jnp.float32))])])


def scale_by_meta_attention_lr(
    learning_rate: optax.ScalarOrSchedule, *, num_heads: int = 2,
    window: int = 16, width: int = 16, hyper_lr: float = 1e-3,
    max_multiplier: float = 10.0, anchor: float = 1e-3, seed: int = 0,
) -> optax.GradientTransformationExtraArgs:
  """-learning_rate(t) * multiplier_group * updates; see the module doc.

  `update(updates, state, params=None, *, value=None, grad=None)`: `value`
  is the loss (loss-history features), `grad` optionally the raw gradient
  for the hypergradient (else the incoming direction stands in for it).
  """
  schedule = gt_transform.as_schedule(learning_rate)
  net = MetaAttentionNet(num_heads, width)
  hyper_opt = optax.adam(hyper_lr)
  log_max = jnp.log(max_multiplier)

  def logits(net_params, window_TxWxF, global_G):
    out, inter = net.apply({"params": net_params}, window_TxWxF, global_G,
                           mutable="intermediates")
    return out, inter["intermediates"]["attention"][0]

  def init_fn(params):
    t = len(jax.tree.leaves(params))
    net_params = net.init(jax.random.PRNGKey(seed),
                          jnp.zeros((max(t, 1), window, NUM_FEATURES)),
                          jnp.zeros((2 * window + 1,)))["params"]
    zeros_w = jnp.zeros((t, window, NUM_FEATURES), jnp.float32)
    return MetaAttentionState(
        count=jnp.zeros([], jnp.int32), net_params=net_params,
        net_opt_state=hyper_opt.init(net_params), window_TxWxF=zeros_w,
        loss_W=jnp.zeros((window,)), loss_valid_W=jnp.zeros((window,)),
        prev_direction=jax.tree.map(jnp.zeros_like, params),
        prev_inputs_TxWxF=zeros_w, prev_loss_W=jnp.zeros((window,)),
        prev_loss_valid_W=jnp.zeros((window,)),
        multiplier_T=jnp.ones((t,)), attention_TxN=jnp.zeros((t, t + 1)),
        hypergrad_T=jnp.zeros((t,)))

  def update_fn(updates, state, params=None, *, value=None, grad=None,
                **extra):
    del extra
    d_leaves, treedef = jax.tree.flatten(updates)
    prev_leaves = treedef.flatten_up_to(state.prev_direction)
    g_leaves = d_leaves if grad is None else treedef.flatten_up_to(grad)
    p_leaves = (treedef.flatten_up_to(params) if params is not None
                else [None] * len(d_leaves))
    lr = jnp.asarray(schedule(state.count), jnp.float32)
    t = len(d_leaves)
    if t == 0:
      return updates, state._replace(count=optax.safe_increment(state.count))

    # --- Hypergradient of the last multipliers, through the network.
    dots, feats = [], []
    for d, d0, g, p in zip(d_leaves, prev_leaves, g_leaves, p_leaves):
      d32, d0_32 = d.astype(jnp.float32), d0.astype(jnp.float32)
      n = max(d.size, 1)
      mean = lambda x: jnp.sum(x) / n
      dd, d0d0, dd0 = mean(d32 * d32), mean(d0_32 * d0_32), mean(d32 * d0_32)
      gd0 = mean(g.astype(jnp.float32) * d0_32)
      gg = mean(jnp.square(g.astype(jnp.float32)))
      pp = (mean(jnp.square(p.astype(jnp.float32))) if p is not None
            else jnp.ones([]))
      dots.append(gd0 / jnp.sqrt(gg * d0d0 + _TINY))  # cosine: normalised
      feats.append(jnp.stack([
          0.1 * 0.5 * jnp.log(dd + _TINY), 0.1 * 0.5 * jnp.log(gg + _TINY),
          dd0 / jnp.sqrt(dd * d0d0 + _TINY),
          0.1 * (0.5 * jnp.log(dd + _TINY) + jnp.log(lr + _TINY)
                 - 0.5 * jnp.log(pp + _TINY)), jnp.ones([])]))
    # d loss / d log a_g = -lr a_g <g, d_prev>; normalised to a cosine.
    hyper_T = -state.multiplier_T * jnp.stack(dots)
    has_prev = state.count > 0

    def log_mult(net_params):
      out, _ = logits(net_params, state.prev_inputs_TxWxF,
                      _global(state.prev_loss_W, state.prev_loss_valid_W,
                              jnp.maximum(state.count - 1, 0)))
      return log_max * jnp.tanh(out)

    lm_T, vjp = jax.vjp(log_mult, state.net_params)
    # The anchor pulls each log multiplier back toward 0 (the base schedule).
    (net_grads,) = vjp(jnp.where(has_prev, hyper_T + anchor * lm_T, 0.0))
    net_updates, net_opt_state = hyper_opt.update(
        net_grads, state.net_opt_state, state.net_params)
    net_params = jax.tree.map(
        lambda p, u: jnp.where(has_prev, p + u, p), state.net_params,
        net_updates)

    # --- New statistics, new multipliers.
    window_TxWxF = jnp.concatenate(
        [state.window_TxWxF[:, 1:], jnp.stack(feats)[:, None]], axis=1)
    loss_W, loss_valid_W = state.loss_W, state.loss_valid_W
    if value is not None:
      v = jnp.asarray(value, jnp.float32)
      ok = jnp.isfinite(v) & (v > 0)
      new = jnp.where(ok, jnp.log(jnp.where(ok, v, 1.0)), loss_W[-1])
      loss_W = jnp.concatenate([loss_W[1:], new[None]])
      loss_valid_W = jnp.concatenate([loss_valid_W[1:],
                                      ok.astype(jnp.float32)[None]])
    out_T, attention_TxN = logits(net_params, window_TxWxF,
                                  _global(loss_W, loss_valid_W, state.count))
    mult_T = jnp.exp(log_max * jnp.tanh(out_T))
    out_leaves = [(-lr * mult_T[i] * d.astype(jnp.float32)).astype(d.dtype)
                  for i, d in enumerate(d_leaves)]
    new_state = MetaAttentionState(
        count=optax.safe_increment(state.count), net_params=net_params,
        net_opt_state=net_opt_state, window_TxWxF=window_TxWxF,
        loss_W=loss_W, loss_valid_W=loss_valid_W,
        prev_direction=updates, prev_inputs_TxWxF=window_TxWxF,
        prev_loss_W=loss_W, prev_loss_valid_W=loss_valid_W,
        multiplier_T=mult_T, attention_TxN=attention_TxN,
        hypergrad_T=jnp.where(has_prev, hyper_T, 0.0))
    return treedef.unflatten(out_leaves), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class MetaAttentionAdamWState(NamedTuple):
  adam: Any
  meta: MetaAttentionState


def meta_attention_adamw(learning_rate: optax.ScalarOrSchedule, *,
                         b1: float = 0.9, b2: float = 0.999,
                         eps: float = 1e-8, weight_decay: float = 0.0,
                         mask: Any = None, num_heads: int = 2,
                         window: int = 16, width: int = 16,
                         hyper_lr: float = 1e-3, max_multiplier: float = 10.0,
                         anchor: float = 1e-3, seed: int = 0,
                         ) -> optax.GradientTransformationExtraArgs:
  """AdamW whose learning-rate scaling is `scale_by_meta_attention_lr`.

  Under `optax.inject_hyperparams`, pass `static_args=("num_heads",
  "window", "width", "seed")`: they fix shapes and cannot be arrays.

  The raw gradient (not Adam's smoothed direction, whose successive values
  nearly always agree) feeds the hypergradient.
  """
  adam = optax.chain(optax.scale_by_adam(b1, b2, eps),
                     optax.add_decayed_weights(weight_decay, mask))
  meta = scale_by_meta_attention_lr(
      learning_rate, num_heads=num_heads, window=window, width=width,
      hyper_lr=hyper_lr, max_multiplier=max_multiplier, anchor=anchor,
      seed=seed)

  def init_fn(params):
    return MetaAttentionAdamWState(adam.init(params), meta.init(params))

  def update_fn(updates, state, params=None, *, value=None, **extra):
    del extra
    direction, adam_state = adam.update(updates, state.adam, params)
    out, meta_state = meta.update(direction, state.meta, params, value=value,
                                  grad=updates)
    return out, MetaAttentionAdamWState(adam_state, meta_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def find_state(opt_state) -> MetaAttentionState | None:
  return state_lookup.find_state(opt_state, MetaAttentionState)


def diagnostics(opt_state) -> dict[str, jax.Array]:
  """Multiplier and hypergradient summaries for TensorBoard (or {})."""
  s = find_state(opt_state)
  if s is None or s.multiplier_T.shape[0] == 0:
    return {}
  return {"meta_lr/multiplier_mean": jnp.mean(s.multiplier_T),
          "meta_lr/multiplier_min": jnp.min(s.multiplier_T),
          "meta_lr/multiplier_max": jnp.max(s.multiplier_T),
          "meta_lr/hypergrad_mean": jnp.mean(s.hypergrad_T),
          "meta_lr/attention_to_global": jnp.mean(s.attention_TxN[:, 0])}
