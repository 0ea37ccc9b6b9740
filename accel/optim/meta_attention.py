"""Meta-attention learning rates: attention over gradient statistics sets a
learning-rate multiplier per parameter group, learnt online by hypergradient.

`scale_by_meta_attention_lr(learning_rate)` plays the role of
`optax.scale_by_learning_rate`: it maps an incoming direction d_t (e.g.
Adam's) to  -learning_rate(t) * multiplier_g * d_t  for each group g (a
parameter tensor). The multipliers come from a small network:

  tokens    one per group, each a window of `window` refreshes of
            statistics: log RMS of the gradient, of the first and of the
            second moment, the gradient-momentum cosine, the cosine between
            the gradient and the previous direction, and the log
            update/parameter ratio; plus a global token with the loss
            history (mean log loss between refreshes) and the log step;
  attention `num_heads` heads; every group token and the global token
            query all tokens;
  output    a logit a_g per group and a_0 from the global token;
            multiplier_g = exp(log(max_multiplier) * tanh(a_0 + a_g)), so
            every multiplier lies in [1/max_multiplier, max_multiplier] and
            exp(log(max_multiplier) * tanh(a_0)) is the global multiplier.
            The output layer starts at zero: every multiplier is exactly 1
            at initialisation and the transform equals the base schedule.

Statistics are refreshed and the network runs every `update_every` steps
(the multipliers are held in between); only three reductions per tensor run
on the other steps.

Online learning (hypergradient descent, Baydin et al. 2018). If a_g scaled
group g's updates u_s, the first-order derivative of the loss at theta_t
with respect to log a_g is <grad_t, sum_s u_s>_g. Baydin et al. sum over the
last step only; here the sum is a trace of the updates decaying by
1 - 1/`horizon` (horizon 1 is their one-step rule). The transform uses the
raw gradient when the chain passes it as the `grad=` extra argument (as
`meta_attention_adamw` does), else the incoming direction as its proxy. The
per-step hypergradients are averaged over the `update_every` steps the
multipliers were held, pulled back through the network with `jax.vjp` at the
statistics the multipliers were computed from, and the network takes one
Adam step of size `hyper_lr`.

Against the short-horizon bias (one-step hypergradients favour learning
rates that are too small: along the sharp directions that oscillate, a
smaller step always lowers the next loss, so multipliers collapse):
  - the horizon: oscillating components of the updates cancel in the trace
    while consistent progress adds up, so a long horizon (100 by default)
    sees the progress a larger learning rate buys. The price: the
    derivative ignores curvature over the horizon, so it can raise a
    learning rate that already oscillates; once that diverges, the
    gradient turns against the trace and the multiplier falls again;
  - the hypergradient is normalised per group to a cosine, so its size does
    not grow with the gradient noise;
  - a pull of strength `anchor` (gradient anchor * log multiplier) draws
    every log multiplier back toward 0, the base schedule;
  - the multipliers are bounded in [1/max_multiplier, max_multiplier].
benchmarks/meta_attention/ compares horizon 1 and 100 (final multipliers
and accuracy) on the same tuning budget.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel.optim import gt_transform
from accel.optim import state_lookup

_TINY = 1e-30
NUM_FEATURES = 7


class MetaAttentionState(NamedTuple):
  count: jax.Array          # int32 []
  net_params: Any           # the attention network, learnt online
  net_opt_state: Any        # its Adam state
  window_TxWxF: jax.Array   # per-group statistics, newest last; the
                            # current multipliers came from it
  loss_W: jax.Array         # mean log loss per refresh, newest last
  loss_valid_W: jax.Array
  loss_acc: jax.Array       # sum and count of log losses since the refresh
  loss_n: jax.Array
  trace: Any                # decaying sum of past updates (hypergradient)
  trace_sq_T: jax.Array     # its mean square per group
  global_G: jax.Array       # global features the multipliers came from
  hyper_acc_T: jax.Array    # hypergradient summed since the refresh
  hyper_n: jax.Array
  multiplier_T: jax.Array   # current multipliers
  global_multiplier: jax.Array
  attention_TxN: jax.Array  # attention weights of the group tokens (mean
                            # over heads); column 0 is the global token
  hypergrad_T: jax.Array    # last applied per-group hypergradient


class MetaAttentionNet(nn.Module):
  """Group tokens (T, W, F) + global features -> logits (T,) and global ()."""
  num_heads: int
  width: int

  @nn.compact
  def __call__(self, window_TxWxF, global_G):
    t = window_TxWxF.shape[0]
    x_TxD = nn.Dense(self.width, name="embed")(window_TxWxF.reshape(t, -1))
    g_1xD = nn.Dense(self.width, name="embed_global")(global_G)[None]
    x_NxD = jnp.concatenate([g_1xD, x_TxD], axis=0)
    y = nn.LayerNorm(name="norm")(x_NxD)
    head_dim = max(self.width // self.num_heads, 1)
    dense = lambda name: nn.DenseGeneral((self.num_heads, head_dim),
                                         name=name)(y)
    q, k, v = dense("query"), dense("key"), dense("value")
    logits_HxNxN = jnp.einsum("thk,nhk->htn", q, k) / jnp.sqrt(head_dim)
    probs_HxNxN = jax.nn.softmax(logits_HxNxN, axis=-1)
    out_NxHxK = jnp.einsum("htn,nhk->thk", probs_HxNxN, v)
    h_NxD = x_NxD + nn.DenseGeneral(self.width, axis=(-2, -1),
                                    name="out")(out_NxHxK)
    h_NxD = nn.gelu(nn.Dense(self.width, name="mlp")(
        nn.LayerNorm(name="norm_mlp")(h_NxD)))
    out_N = nn.Dense(1, kernel_init=nn.initializers.zeros,
                     name="head")(h_NxD)[:, 0]
    return out_N[1:], out_N[0], probs_HxNxN.mean(0)[1:]


def _global_features(loss_W, valid_W, count):
  rel = (loss_W - loss_W[-1]) * valid_W
  return jnp.concatenate([valid_W, rel,
                          0.1 * jnp.log1p(count.astype(jnp.float32))[None]])


def _mean(x, n):
  return jnp.sum(x) / n


def scale_by_meta_attention_lr(
    learning_rate: optax.ScalarOrSchedule, *, num_heads: int = 2,
    window: int = 16, width: int = 16, hyper_lr: float = 1e-3,
    max_multiplier: float = 10.0, anchor: float = 1e-3,
    horizon: float = 100.0, update_every: int = 1, seed: int = 0,
) -> optax.GradientTransformationExtraArgs:
  """-learning_rate(t) * multiplier_group * updates; see the module doc.

  Args:
    learning_rate: the base: a float or an optax schedule.
    num_heads, width: the attention network's heads and width.
    window: refreshes of statistics each token carries.
    hyper_lr: Adam step size of the network's online learning (0 freezes
      it: the transform is then exactly the base schedule).
    max_multiplier: bound of every multiplier, [1/max, max].
    anchor: pull of the log multipliers toward 0 (see the module doc).
    horizon: steps the hypergradient looks back over: it differentiates the
      loss with respect to a multiplier on the updates of the last ~horizon
      steps (a trace decaying by 1 - 1/horizon); 1 is Baydin et al.'s
      one-step hypergradient.
    update_every: refresh statistics and run the network every k steps.
    seed: initialisation of the network.

  `update(updates, state, params=None, *, value=None, grad=None,
  first_moment=None, second_moment=None)`: `value` is the loss (loss-history
  features), `grad` the raw gradient for the hypergradient (else the
  incoming direction stands in), `first_moment`/`second_moment` the base
  optimizer's moments for the statistics (else the direction and nothing).
  """
  if update_every < 1:
    raise ValueError(f"update_every must be >= 1, got {update_every}.")
  if horizon < 1:
    raise ValueError(f"horizon must be >= 1, got {horizon}.")
  decay = 1.0 - 1.0 / horizon
  if max_multiplier < 1:
    raise ValueError(f"max_multiplier must be >= 1, got {max_multiplier}.")
  schedule = gt_transform.as_schedule(learning_rate)
  net = MetaAttentionNet(num_heads, width)
  hyper_opt = optax.adam(hyper_lr)
  log_max = jnp.log(max_multiplier)
  num_global = 2 * window + 1

  def init_fn(params):
    t = len(jax.tree.leaves(params))
    net_params = net.init(jax.random.PRNGKey(seed),
                          jnp.zeros((max(t, 1), window, NUM_FEATURES)),
                          jnp.zeros((num_global,)))["params"]
    zeros_w = jnp.zeros((t, window, NUM_FEATURES), jnp.float32)
    zero = jnp.zeros([], jnp.float32)
    return MetaAttentionState(
        count=jnp.zeros([], jnp.int32), net_params=net_params,
        net_opt_state=hyper_opt.init(net_params), window_TxWxF=zeros_w,
        loss_W=jnp.zeros((window,)), loss_valid_W=jnp.zeros((window,)),
        loss_acc=zero, loss_n=zero,
        trace=jax.tree.map(jnp.zeros_like, params),
        trace_sq_T=jnp.zeros((t,)), global_G=jnp.zeros((num_global,)),
        hyper_acc_T=jnp.zeros((t,)), hyper_n=zero, multiplier_T=jnp.ones((t,)),
        global_multiplier=jnp.ones([]), attention_TxN=jnp.zeros((t, t + 1)),
        hypergrad_T=jnp.zeros((t,)))

  def log_multipliers(net_params, window_TxWxF, global_G):
    out_T, out_0, attention_TxN = net.apply({"params": net_params},
                                            window_TxWxF, global_G)
    return log_max * jnp.tanh(out_0 + out_T), (out_0, attention_TxN)

  def update_fn(updates, state, params=None, *, value=None, grad=None,
                first_moment=None, second_moment=None, **extra):
    del extra
    d_leaves, treedef = jax.tree.flatten(updates)
    t = len(d_leaves)
    if t == 0:
      return updates, state._replace(count=optax.safe_increment(state.count))
    flat = lambda tree: (None if tree is None
                         else treedef.flatten_up_to(tree))
    f32 = lambda leaves: (None if leaves is None else
                          [x.astype(jnp.float32) for x in leaves])
    d32 = f32(d_leaves)
    e32 = f32(flat(state.trace))
    g32 = f32(flat(grad)) or d32
    m32 = f32(flat(first_moment)) or d32
    v32 = f32(flat(second_moment))
    p32 = f32(flat(params))
    sizes = [max(d.size, 1) for d in d_leaves]
    lr = jnp.asarray(schedule(state.count), jnp.float32)

    # --- Every step: the hypergradient of the held multipliers.
    gg_T = jnp.stack([_mean(g * g, n) for g, n in zip(g32, sizes)])
    ge_T = jnp.stack([_mean(g * e, n) for g, e, n in zip(g32, e32, sizes)])
    cos_ge_T = ge_T / jnp.sqrt(gg_T * state.trace_sq_T + _TINY)
    has_prev = state.count > 0
    # d loss(theta_t) / d log a_g = <g_t, sum of the updates a_g scaled>
    # (first order), normalised to a cosine.
    hyper_T = jnp.where(has_prev, cos_ge_T, 0.0)
    hyper_acc_T = state.hyper_acc_T + hyper_T
    hyper_n = state.hyper_n + has_prev.astype(jnp.float32)
    loss_acc, loss_n = state.loss_acc, state.loss_n
    if value is not None:
      v = jnp.asarray(value, jnp.float32)
      ok = jnp.isfinite(v) & (v > 0)
      loss_acc = loss_acc + jnp.where(ok, jnp.log(jnp.where(ok, v, 1.0)), 0.)
      loss_n = loss_n + ok.astype(jnp.float32)

    # --- Every `update_every` steps: learn, new statistics, new multipliers.
    def refresh(_):
      mean_hyper_T = hyper_acc_T / jnp.maximum(hyper_n, 1.0)
      lm_T, vjp, _ = jax.vjp(
          lambda p: log_multipliers(p, state.window_TxWxF, state.global_G),
          state.net_params, has_aux=True)
      learn = hyper_n > 0
      (net_grads,) = vjp(jnp.where(learn, mean_hyper_T + anchor * lm_T, 0.0))
      net_updates, net_opt_state = hyper_opt.update(
          net_grads, state.net_opt_state, state.net_params)
      net_opt_state = jax.tree.map(lambda new, old: jnp.where(learn, new, old),
                                   net_opt_state, state.net_opt_state)
      net_params = jax.tree.map(lambda p, u: jnp.where(learn, p + u, p),
                                state.net_params, net_updates)

      feats = []
      for i in range(t):
        g, m, d, n = g32[i], m32[i], d32[i], sizes[i]
        mm, gm = _mean(m * m, n), _mean(g * m, n)
        vv = _mean(v32[i], n) if v32 is not None else jnp.zeros([])
        pp = _mean(p32[i] * p32[i], n) if p32 is not None else jnp.ones([])
        log_update = (0.5 * jnp.log(_mean(d * d, n) + _TINY)
                      + jnp.log(lr + _TINY)
                      + jnp.log(state.multiplier_T[i]))
        feats.append(jnp.stack([
            0.05 * jnp.log(gg_T[i] + _TINY), 0.05 * jnp.log(mm + _TINY),
            0.025 * jnp.log(vv * vv + _TINY),
            gm / jnp.sqrt(gg_T[i] * mm + _TINY), cos_ge_T[i],
            0.1 * (log_update - 0.5 * jnp.log(pp + _TINY)), jnp.ones([])]))
      window_TxWxF = jnp.concatenate(
          [state.window_TxWxF[:, 1:], jnp.stack(feats)[:, None]], axis=1)
      has_loss = loss_n > 0
      new_loss = jnp.where(has_loss, loss_acc / jnp.maximum(loss_n, 1.0),
                           state.loss_W[-1])
      loss_W = jnp.concatenate([state.loss_W[1:], new_loss[None]])
      loss_valid_W = jnp.concatenate([state.loss_valid_W[1:],
                                      has_loss.astype(jnp.float32)[None]])
      global_G = _global_features(loss_W, loss_valid_W, state.count)
      lm_T, (out_0, attention_TxN) = log_multipliers(net_params, window_TxWxF,
                                                     global_G)
      return dict(
          net_params=net_params, net_opt_state=net_opt_state,
          window_TxWxF=window_TxWxF, loss_W=loss_W, loss_valid_W=loss_valid_W,
          loss_acc=jnp.zeros([]), loss_n=jnp.zeros([]),
          global_G=global_G, hyper_acc_T=jnp.zeros((t,)),
          hyper_n=jnp.zeros([]),
          multiplier_T=jnp.exp(lm_T),
          global_multiplier=jnp.exp(log_max * jnp.tanh(out_0)),
          attention_TxN=attention_TxN,
          hypergrad_T=jnp.where(learn, mean_hyper_T, 0.0))

    def hold(_):
      return dict(
          net_params=state.net_params, net_opt_state=state.net_opt_state,
          window_TxWxF=state.window_TxWxF, loss_W=state.loss_W,
          loss_valid_W=state.loss_valid_W, loss_acc=loss_acc, loss_n=loss_n,
          global_G=state.global_G,
          hyper_acc_T=hyper_acc_T, hyper_n=hyper_n,
          multiplier_T=state.multiplier_T,
          global_multiplier=state.global_multiplier,
          attention_TxN=state.attention_TxN, hypergrad_T=state.hypergrad_T)

    if update_every == 1:
      fields = refresh(None)
    else:
      fields = jax.lax.cond(state.count % update_every == 0, refresh, hold,
                            None)
    mult_T = fields["multiplier_T"]
    out32 = [-lr * mult_T[i] * d for i, d in enumerate(d32)]
    new_e32 = [decay * e + o for e, o in zip(e32, out32)]
    new_state = MetaAttentionState(
        count=optax.safe_increment(state.count),
        trace=treedef.unflatten([e.astype(dl.dtype)
                                 for e, dl in zip(new_e32, d_leaves)]),
        trace_sq_T=jnp.stack([_mean(e * e, n)
                              for e, n in zip(new_e32, sizes)]),
        **fields)
    return treedef.unflatten([o.astype(dl.dtype) for o, dl in
                              zip(out32, d_leaves)]), new_state

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
                         anchor: float = 1e-3, horizon: float = 100.0,
                         update_every: int = 1, seed: int = 0,
                         mu_dtype: Any = None,
                         ) -> optax.GradientTransformationExtraArgs:
  """AdamW whose learning-rate scaling is `scale_by_meta_attention_lr`.

  Under `optax.inject_hyperparams`, pass `static_args=("num_heads",
  "window", "width", "update_every", "seed")`: they fix shapes or control
  flow and cannot be arrays.

  The raw gradient (not Adam's smoothed direction, whose successive values
  nearly always agree) feeds the hypergradient, and Adam's moments feed the
  statistics. `mu_dtype` is the first moment's dtype (None: the params').
  """
  adam = optax.scale_by_adam(b1, b2, eps, mu_dtype=mu_dtype)
  decay = optax.add_decayed_weights(weight_decay, mask)
  meta = scale_by_meta_attention_lr(
      learning_rate, num_heads=num_heads, window=window, width=width,
      hyper_lr=hyper_lr, max_multiplier=max_multiplier, anchor=anchor,
      horizon=horizon, update_every=update_every, seed=seed)

  def init_fn(params):
    return MetaAttentionAdamWState((adam.init(params), decay.init(params)),
                                   meta.init(params))

  def update_fn(updates, state, params=None, *, value=None, **extra):
    del extra
    adam_state, decay_state = state.adam
    direction, adam_state = adam.update(updates, adam_state, params)
    direction, decay_state = decay.update(direction, decay_state, params)
    out, meta_state = meta.update(
        direction, state.meta, params, value=value, grad=updates,
        first_moment=adam_state.mu, second_moment=adam_state.nu)
    return out, MetaAttentionAdamWState((adam_state, decay_state), meta_state)

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
          "meta_lr/global_multiplier": s.global_multiplier,
          "meta_lr/hypergrad_mean": jnp.mean(s.hypergrad_T),
          "meta_lr/attention_to_global": jnp.mean(s.attention_TxN[:, 0])}


def attention_table(opt_state, params) -> tuple[np.ndarray, list[str]] | None:
  """The group tokens' attention weights (rows: tensors; columns: the global
  token, then the tensors) and the tensor names, for a heat map; None when
  `opt_state` holds no meta-attention state."""
  s = find_state(opt_state)
  if s is None or s.multiplier_T.shape[0] == 0:
    return None
  names = [jax.tree_util.keystr(path, simple=True, separator="/")
           for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
  return np.asarray(jax.device_get(s.attention_TxN)), names
