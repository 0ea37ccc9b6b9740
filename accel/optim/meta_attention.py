"""Meta-attention learning rates: a learning rate that settles itself
online, with per-group multipliers from attention over gradient statistics.

`scale_by_meta_attention_lr(learning_rate)` plays the role of
`optax.scale_by_learning_rate`: it maps an incoming direction d_t (e.g.
Adam's) to  -learning_rate(t) * exp(level) * multiplier_g * d_t  for each
group g (a parameter tensor).

The level (the default estimator). If a multiplier a scaled all updates
u_s, the first-order derivative of the loss at theta_t with respect to
log a is <grad_t, sum_s u_s> (hypergradient descent, Baydin et al. 2018),
with the sum a trace of the updates decaying by 1 - 1/`horizon`. The
level takes the signed, unnormalised step  -level_rate * cos(grad_t,
trace)  every step (that step bounded by `max_level_step`, and its
rises by `max_level_rise`, if given),
clipped to +-log(max_multiplier). Oscillating
components of the updates cancel in the trace while consistent progress
adds up, so a long horizon (100) sees the progress a larger rate buys; a
rate too high makes the gradient turn against the trace and the level
falls fast. Measured (benchmarks/meta_attention_estimator): started at
0.1x, 1x and 10x the best rate of an MLP, the level ends within 2x of it
and of each other. While a decaying schedule anneals, the estimate says
"raise" at every rate, so with a decaying base the level should learn only
before the decay (`adapt_steps`; the factory's `adapt_fraction`). Its cost
over the base: the trace and three reductions per tensor.

The network (`learn_groups=True`). Tokens: one per group, each a window
of `window` refreshes of statistics: log RMS of the gradient, of the
first and of the second moment, the gradient-momentum cosine, the cosine
between the gradient and the trace, and the log update/parameter ratio;
plus a global token with the loss history and the log step. `num_heads`
heads; every token queries all tokens. Output: a logit a_g per group and
a_0 from the global token; multiplier_g = exp(log(max_multiplier) *
tanh(a_0 + a_g)). The output layer starts at zero, so every multiplier is
1 at initialisation. The network learns online: the per-group
hypergradients, normalised to cosines (centred over the groups while the
level learns, so the level sets the overall rate), are averaged over the
`update_every` steps the multipliers were held, pulled back through the
network with `jax.vjp` at the statistics they came from, plus a pull of
strength `anchor` toward multiplier 1, and the network takes one Adam
step of size `hyper_lr`. Measured: the network learning beside the level
moved rates away from the best (Adam on its weights makes every
meta-update sign-like, so a persistent bias saturates the bounds), which
is why it is off by default.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel.errors import ConfigError
from accel.optim import checks
from accel.optim import schedules
from accel.optim import state_lookup

_TINY = 1e-30
NUM_FEATURES = 7
# The base rate when none is given: the level moves it (module doc).
DEFAULT_LEARNING_RATE = 1e-2


class MetaAttentionState(NamedTuple):
  """Without `learn_groups` the network's fields are None (nothing runs
  or is stored for them) and multiplier_T stays 1."""
  count: jax.Array          # int32 []
  net_params: Any           # the attention network, learnt online
  net_opt_state: Any        # its Adam state
  window_TxWxF: jax.Array | None  # per-group statistics, newest last;
                                  # the current multipliers came from it
  loss_W: jax.Array | None  # mean log loss per refresh, newest last
  loss_valid_W: jax.Array | None
  loss_acc: jax.Array | None  # sum and count of log losses since the
  loss_n: jax.Array | None    # refresh
  trace: Any                # decaying sum of past updates (hypergradient)
  trace_sq_T: jax.Array     # its mean square per group
  global_G: jax.Array | None  # global features the multipliers came from
  hyper_acc_T: jax.Array | None  # hypergradient summed since the refresh
  hyper_n: jax.Array | None
  multiplier_T: jax.Array   # the network's multipliers (times exp(level)
                            # is what is applied)
  global_multiplier: jax.Array
  attention_TxN: jax.Array | None  # attention weights of the group tokens
                                   # (mean over heads); column 0 is the
                                   # global token
  hypergrad_T: jax.Array | None  # last applied per-group hypergradient
  level: jax.Array          # [] global log multiplier learnt by signed
                            # steps (level_rate); applied on top of
                            # multiplier_T


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


def _means_T(fn, *trees) -> jax.Array:
  """[T]: the mean of fn(leaves...) per tensor, in float32."""
  def one(*leaves):
    x = fn(*(leaf.astype(jnp.float32) for leaf in leaves))
    return jnp.sum(x) / max(leaves[0].size, 1)
  return jnp.stack(jax.tree.leaves(jax.tree.map(one, *trees)))


def _per_tensor(values_T, tree):
  """A tree shaped like `tree` holding values_T[i] at leaf i."""
  return jax.tree.structure(tree).unflatten(list(values_T))


def _add_log_loss(loss_acc, loss_n, value):
  """Adds log(value) for a finite, positive loss `value`, if given."""
  if value is None:
    return loss_acc, loss_n
  v = jnp.asarray(value, jnp.float32)
  ok = jnp.isfinite(v) & (v > 0)
  return (loss_acc + jnp.where(ok, jnp.log(jnp.where(ok, v, 1.0)), 0.),
          loss_n + ok.astype(jnp.float32))


def _group_features(grad, moment, direction, second, params, gg_T,
                    cos_ge_T, lr, multiplier_T) -> jax.Array:
  """[T, F]: this refresh's statistics of every group (module doc)."""
  mm_T = _means_T(lambda m: m * m, moment)
  gm_T = _means_T(lambda g, m: g * m, grad, moment)
  vv_T = (jnp.zeros_like(mm_T) if second is None
          else _means_T(lambda v: v, second))
  pp_T = _means_T(lambda p: p * p, params)
  dd_T = _means_T(lambda d: d * d, direction)
  log_update_T = (0.5 * jnp.log(dd_T + _TINY) + jnp.log(lr + _TINY)
                  + jnp.log(multiplier_T))
  return jnp.stack([
      0.05 * jnp.log(gg_T + _TINY), 0.05 * jnp.log(mm_T + _TINY),
      0.025 * jnp.log(vv_T * vv_T + _TINY),
      gm_T / jnp.sqrt(gg_T * mm_T + _TINY), cos_ge_T,
      0.1 * (log_update_T - 0.5 * jnp.log(pp_T + _TINY)),
      jnp.ones_like(gg_T)], axis=1)


def _applied(multiplier_T, level):
  """[T]: the multipliers applied, the network's times the level's."""
  return multiplier_T * jnp.exp(level)


def _push(window, new):
  """Drops the oldest entry of `window` (axis 0 or 1) and appends `new`."""
  if window.ndim == 1:
    return jnp.concatenate([window[1:], new[None]])
  return jnp.concatenate([window[:, 1:], new[:, None]], axis=1)


def _learn(log_multipliers, hyper_opt, state, hyper_acc_T, hyper_n, anchor,
           adapting, centre):
  """One Adam step of the network on the held multipliers' mean
  hypergradient (plus the anchor's pull), pulled back with jax.vjp at the
  statistics they came from; nothing when none was accumulated or when
  `adapting` is false. With `centre`, the hypergradient's mean over the
  groups is removed first (the level, not the network, sets the overall
  rate)."""
  mean_hyper_T = hyper_acc_T / jnp.maximum(hyper_n, 1.0)
  mean_hyper_T = jnp.where(centre, mean_hyper_T - jnp.mean(mean_hyper_T),
                           mean_hyper_T)
  lm_T, vjp, _ = jax.vjp(
      lambda p: log_multipliers(p, state.window_TxWxF, state.global_G),
      state.net_params, has_aux=True)
  learn = (hyper_n > 0) & adapting
  (net_grads,) = vjp(jnp.where(learn, mean_hyper_T + anchor * lm_T, 0.0))
  net_updates, net_opt_state = hyper_opt.update(
      net_grads, state.net_opt_state, state.net_params)
  keep = lambda new, old: jnp.where(learn, new, old)
  net_opt_state = jax.tree.map(keep, net_opt_state, state.net_opt_state)
  net_params = jax.tree.map(lambda p, u: keep(p + u, p), state.net_params,
                            net_updates)
  return net_params, net_opt_state, jnp.where(learn, mean_hyper_T, 0.0)


def _refresh(log_multipliers, hyper_opt, anchor, log_max, centre, adapting,
             state, feats_TxF, hyper_acc_T, hyper_n, loss_acc, loss_n):
  """Learn, push the new statistics, compute new multipliers: the fields
  of MetaAttentionState that change only at a refresh."""
  net_params, net_opt_state, hypergrad_T = _learn(
      log_multipliers, hyper_opt, state, hyper_acc_T, hyper_n, anchor,
      adapting, centre)
  has_loss = loss_n > 0
  new_loss = jnp.where(has_loss, loss_acc / jnp.maximum(loss_n, 1.0),
                       state.loss_W[-1])
  loss_W = _push(state.loss_W, new_loss)
  loss_valid_W = _push(state.loss_valid_W, has_loss.astype(jnp.float32))
  window_TxWxF = _push(state.window_TxWxF, feats_TxF)
  global_G = _global_features(loss_W, loss_valid_W, state.count)
  lm_T, (out_0, attention_TxN) = log_multipliers(net_params, window_TxWxF,
                                                 global_G)
  t, zero = hyper_acc_T.shape[0], jnp.zeros([])
  return dict(
      net_params=net_params, net_opt_state=net_opt_state,
      window_TxWxF=window_TxWxF, loss_W=loss_W, loss_valid_W=loss_valid_W,
      loss_acc=zero, loss_n=zero, global_G=global_G,
      hyper_acc_T=jnp.zeros((t,)), hyper_n=zero,
      multiplier_T=jnp.exp(lm_T),
      global_multiplier=jnp.exp(log_max * jnp.tanh(out_0)),
      attention_TxN=attention_TxN, hypergrad_T=hypergrad_T)


def _hold(state, hyper_acc_T, hyper_n, loss_acc, loss_n):
  """The fields _refresh sets, held between refreshes (the accumulators go
  on adding up)."""
  return dict(
      net_params=state.net_params, net_opt_state=state.net_opt_state,
      window_TxWxF=state.window_TxWxF, loss_W=state.loss_W,
      loss_valid_W=state.loss_valid_W, loss_acc=loss_acc, loss_n=loss_n,
      global_G=state.global_G, hyper_acc_T=hyper_acc_T, hyper_n=hyper_n,
      multiplier_T=state.multiplier_T,
      global_multiplier=state.global_multiplier,
      attention_TxN=state.attention_TxN, hypergrad_T=state.hypergrad_T)


# The options that fix shapes or control flow. They default to None and are
# resolved here, so optax.inject_hyperparams, which turns every numeric
# default into a traced hyperparameter, leaves them alone without
# static_args.
_STRUCTURE = {"num_heads": 2, "window": 16, "width": 16, "update_every": 1,
              "seed": 0, "learn_groups": False}


def _structure(**given) -> dict[str, int | bool]:
  """The structural options: each given value (checked to be an int, or a
  bool for the switches), or its default."""
  out = {}
  for name, value in given.items():
    value = _STRUCTURE[name] if value is None else value
    if isinstance(_STRUCTURE[name], bool):
      if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False (it sets the "
                          f"control flow), got {value!r}.")
      out[name] = bool(value)
      continue
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
      raise ConfigError(f"{name} must be an int (it sets a shape or the "
                        f"control flow), got {value!r}.")
    out[name] = int(value)
  return out


def scale_by_meta_attention_lr(
    learning_rate: optax.ScalarOrSchedule | None = None, *,
    num_heads: int | None = None, window: int | None = None,
    width: int | None = None, hyper_lr: float = 1e-4,
    max_multiplier: float = 10.0, anchor: float = 1e-3,
    horizon: float = 100.0, update_every: int | None = None,
    seed: int | None = None, adapt_steps: int | None = None,
    adapt_start: int | None = None,
    level_rate: float = 1.0, max_level_step: float | None = None,
    max_level_rise: float | None = None,
    learn_groups: bool | None = None,
) -> optax.GradientTransformationExtraArgs:
  """-learning_rate(t) * exp(level) * multiplier_group * updates; see the
  module doc.

  Args:
    learning_rate: the base: a float or an optax schedule (None:
      DEFAULT_LEARNING_RATE, constant; the level moves it).
    num_heads, width: the attention network's heads and width (2, 16).
    window: refreshes of statistics each token carries (16).
    hyper_lr: Adam step size of the network's online learning, with
      `learn_groups` (0 freezes it at its zero output).
    max_multiplier: bound of every multiplier and of exp(level),
      [1/max, max].
    anchor: pull of the network's log multipliers toward 0.
    horizon: steps the hypergradient looks back over: it differentiates the
      loss with respect to a multiplier on the updates of the last ~horizon
      steps (a trace decaying by 1 - 1/horizon); 1 is Baydin et al.'s
      one-step hypergradient.
    update_every: with `learn_groups`, refresh statistics and run the
      network every k steps (1).
    seed: initialisation of the network (0).
    adapt_steps: the level and the network learn during the first
      `adapt_steps` steps only; then the level is held and the network's
      multipliers follow the statistics with fixed weights (None: both
      learn throughout). The hypergradient says "raise the rate" at every
      rate while a decaying schedule anneals
      (benchmarks/meta_attention_estimator), so with a decaying base the
      level is best settled before the decay and the decay left to the
      schedule (the factory's `adapt_fraction`).
    adapt_start: ... and not before step `adapt_start`: the level and the
      network are held at their start until then, while the trace fills
      (for a base whose own step size is still growing, as Prodigy's
      estimate does early). None means 0 and keeps it out of
      `optax.inject_hyperparams`' traced values.
    level_rate: kappa of the level, the global log multiplier, which takes
      the signed, unnormalised step -kappa * cos every step while adapting,
      cos being the cosine between the whole gradient and the whole trace,
      bounded by +-log(max_multiplier). 0 holds the level at 0.
    max_level_step: bound of the level's step (in log rate), or None for
      none. The first steps' cosines are near -1 (the gradient has barely
      changed, so it agrees with the few updates in the trace): with a
      fast level (level_rate 3) and wide bounds (100) the level rose 70x
      in four steps, then collapsed, where 0.1 kept it
      (benchmarks/meta_attention_starts). A start that diverges faster
      than the bounded level can fall (gradient descent 10x above a
      quadratic's stability limit) is not rescued.
    max_level_rise: bound of the level's rises only (in log rate), or
      None for none; falls keep the full step. Measured, not a default:
      the asymmetry biases the level down. On the quadratic of
      benchmarks/meta_attention_starts (best rate 0.4, bounds 100x,
      bound 0.1) at level_rate 1 the rate ends at its lower bound from
      0.1x (0.0004, against 0.41 unbounded); at level_rate 3 from 10x
      too (quadratic.log).
    learn_groups: run the attention network and learn its per-group
      multipliers online (relative to their mean while the level learns);
      False (the default: the network learning beside the level hurt in
      benchmarks/meta_attention_estimator) computes no statistics and runs
      no network: every group's multiplier is 1.

  `update(updates, state, params, *, value=None, grad=None,
  first_moment=None, second_moment=None)`: `params` are required (with
  `learn_groups`, the update/parameter ratio is a statistic); `value` is the
  loss (loss-history features) and `first_moment`/`second_moment` the base
  optimizer's moments for the statistics (else the direction and nothing);
  `grad` is the raw gradient for the hypergradient (else the incoming
  direction stands in).
  """
  if learning_rate is None:
    learning_rate = DEFAULT_LEARNING_RATE
  shape = _structure(num_heads=num_heads, window=window, width=width,
                     update_every=update_every, seed=seed,
                     learn_groups=learn_groups)
  num_heads, window, width = (shape["num_heads"], shape["window"],
                              shape["width"])
  update_every, seed = shape["update_every"], shape["seed"]
  learn_groups = shape["learn_groups"]
  if update_every < 1:
    raise ConfigError(f"update_every must be an int >= 1, got "
                      f"{update_every!r}.")
  checks.check_learning_rate(learning_rate)
  checks.check("horizon", horizon, lambda x: x >= 1, ">= 1 (steps)")
  checks.check("max_multiplier", max_multiplier, lambda x: x >= 1, ">= 1")
  checks.check("hyper_lr", hyper_lr, lambda x: x >= 0, ">= 0")
  checks.check("anchor", anchor, lambda x: x >= 0, ">= 0")
  checks.check("level_rate", level_rate, lambda x: x >= 0, ">= 0")
  if max_level_step is not None:
    checks.check("max_level_step", max_level_step, lambda x: x > 0, "> 0")
  if max_level_rise is not None:
    checks.check("max_level_rise", max_level_rise, lambda x: x > 0, "> 0")
  if adapt_start is not None:
    checks.check("adapt_start", adapt_start, lambda x: x >= 0, ">= 0")
  if adapt_steps is not None:
    checks.check("adapt_steps", adapt_steps, lambda x: x >= 0,
                 ">= 0 (steps) or None")
  decay = 1.0 - 1.0 / horizon
  schedule = schedules.as_schedule(learning_rate)
  net = MetaAttentionNet(num_heads, width)
  hyper_opt = optax.adam(hyper_lr)
  log_max = jnp.log(max_multiplier)
  num_global = 2 * window + 1

  def init_fn(params):
    checks.check_float_params(params, "meta-attention")
    t = len(jax.tree.leaves(params))
    zeros = lambda *shape: jnp.zeros(shape, jnp.float32)
    if not learn_groups:
      return MetaAttentionState(
          count=jnp.zeros([], jnp.int32), net_params=None,
          net_opt_state=None, window_TxWxF=None, loss_W=None,
          loss_valid_W=None, loss_acc=None, loss_n=None,
          trace=optax.tree.zeros_like(params), trace_sq_T=zeros(t),
          global_G=None, hyper_acc_T=None, hyper_n=None,
          multiplier_T=jnp.ones((t,)), global_multiplier=jnp.ones([]),
          attention_TxN=None, hypergrad_T=None, level=zeros())
    net_params = net.init(jax.random.PRNGKey(seed),
                          jnp.zeros((max(t, 1), window, NUM_FEATURES)),
                          jnp.zeros((num_global,)))["params"]
    return MetaAttentionState(
        count=jnp.zeros([], jnp.int32), net_params=net_params,
        net_opt_state=hyper_opt.init(net_params),
        window_TxWxF=zeros(t, window, NUM_FEATURES), loss_W=zeros(window),
        loss_valid_W=zeros(window), loss_acc=zeros(), loss_n=zeros(),
        trace=optax.tree.zeros_like(params), trace_sq_T=zeros(t),
        global_G=zeros(num_global), hyper_acc_T=zeros(t), hyper_n=zeros(),
        multiplier_T=jnp.ones((t,)), global_multiplier=jnp.ones([]),
        attention_TxN=zeros(t, t + 1), hypergrad_T=zeros(t), level=zeros())

  def log_multipliers(net_params, window_TxWxF, global_G):
    out_T, out_0, attention_TxN = net.apply({"params": net_params},
                                            window_TxWxF, global_G)
    return log_max * jnp.tanh(out_0 + out_T), (out_0, attention_TxN)

  refresh = functools.partial(_refresh, log_multipliers, hyper_opt, anchor,
                              log_max, jnp.asarray(level_rate) > 0)
  ends_at = ((lambda count: jnp.array(True)) if adapt_steps is None
             else (lambda count: count < adapt_steps))
  adapting_at = (ends_at if adapt_start is None
                 else (lambda count: (count >= adapt_start) & ends_at(count)))

  def update_fn(updates, state, params=None, *, value=None, grad=None,
                first_moment=None, second_moment=None, **extra):
    del extra
    if params is None:
      raise ConfigError("meta-attention learning rates need `params` in "
                        "update(): the update/parameter ratio is one of "
                        "the network's statistics.")
    if not jax.tree.leaves(updates):
      return updates, state._replace(count=optax.safe_increment(state.count))
    grad = updates if grad is None else grad
    lr = jnp.asarray(schedule(state.count), jnp.float32)
    # Every step: d loss(theta_t) / d log a_g = <g_t, sum of the updates
    # a_g scaled> (first order).
    gg_T = _means_T(lambda g: g * g, grad)
    ge_T = _means_T(lambda g, e: g * e, grad, state.trace)
    has_prev = state.count > 0
    adapting = adapting_at(state.count)
    # The level: one signed step on the cosine of the whole vectors.
    sizes_T = jnp.asarray([max(x.size, 1) for x in jax.tree.leaves(grad)],
                          jnp.float32)
    cos_all = jnp.sum(ge_T * sizes_T) / jnp.sqrt(
        jnp.sum(gg_T * sizes_T) * jnp.sum(state.trace_sq_T * sizes_T) + _TINY)
    step = level_rate * cos_all
    if max_level_step is not None:
      step = jnp.clip(step, -max_level_step, max_level_step)
    if max_level_rise is not None:  # a negative step raises the level
      step = jnp.maximum(step, -max_level_rise)
    level = jnp.where(
        has_prev & adapting,
        jnp.clip(state.level - step, -log_max, log_max), state.level)
    if learn_groups:
      fields = _network_fields(updates, state, params, value, grad,
                               first_moment, second_moment, lr, gg_T, ge_T,
                               has_prev, adapting)
      applied = _per_tensor(_applied(fields["multiplier_T"], level), updates)
      out = jax.tree.map(lambda d, m: -lr * m * d.astype(jnp.float32),
                         updates, applied)
    else:  # Every multiplier is 1: the level alone scales the base.
      fields = {}
      scale = -lr * jnp.exp(level)
      out = jax.tree.map(lambda d: scale * d.astype(jnp.float32), updates)
    trace = jax.tree.map(lambda e, o: decay * e.astype(jnp.float32) + o,
                         state.trace, out)
    new_state = state._replace(
        count=optax.safe_increment(state.count),
        trace=optax.tree.cast_like(trace, state.trace),
        trace_sq_T=_means_T(lambda e: e * e, trace), level=level, **fields)
    return optax.tree.cast_like(out, updates), new_state

  def _network_fields(updates, state, params, value, grad, first_moment,
                      second_moment, lr, gg_T, ge_T, has_prev, adapting):
    """The network's part of the new state (learn_groups): per-group
    cosines accumulated, and every `update_every` steps a learning step,
    new statistics and new multipliers."""
    cos_ge_T = ge_T / jnp.sqrt(gg_T * state.trace_sq_T + _TINY)
    hyper_acc_T = state.hyper_acc_T + jnp.where(has_prev, cos_ge_T, 0.0)
    hyper_n = state.hyper_n + has_prev.astype(jnp.float32)
    loss = _add_log_loss(state.loss_acc, state.loss_n, value)
    features = lambda: _group_features(
        grad, updates if first_moment is None else first_moment, updates,
        second_moment, params, gg_T, cos_ge_T, lr,
        _applied(state.multiplier_T, state.level))
    fresh = lambda: refresh(adapting, state, features(), hyper_acc_T,
                            hyper_n, *loss)
    held = lambda: _hold(state, hyper_acc_T, hyper_n, *loss)
    return (fresh() if update_every == 1 else jax.lax.cond(
        state.count % update_every == 0, fresh, held))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class MetaAttentionAdamWState(NamedTuple):
  adam: Any
  meta: MetaAttentionState


def meta_attention_adamw(learning_rate: optax.ScalarOrSchedule | None = None,
                         *, b1: float = 0.9, b2: float = 0.999,
                         eps: float = 1e-8, weight_decay: float = 0.0,
                         mask: Any = None, num_heads: int | None = None,
                         window: int | None = None, width: int | None = None,
                         hyper_lr: float = 1e-4, max_multiplier: float = 10.0,
                         anchor: float = 1e-3, horizon: float = 100.0,
                         update_every: int | None = None,
                         seed: int | None = None, mu_dtype: Any = None,
                         adapt_steps: int | None = None,
                         adapt_start: int | None = None,
                         level_rate: float = 1.0,
                         max_level_step: float | None = None,
                         max_level_rise: float | None = None,
                         learn_groups: bool | None = None,
                         ) -> optax.GradientTransformationExtraArgs:
  """AdamW whose learning-rate scaling is `scale_by_meta_attention_lr`.

  `meta_attention_adamw()` is a complete optimizer: AdamW at
  DEFAULT_LEARNING_RATE whose level settles the rate online. With
  `level_rate=0` (and `learn_groups` off) it is exactly AdamW at
  `learning_rate`.

  `num_heads`, `window`, `width`, `update_every`, `seed` and
  `learn_groups` fix shapes or control flow; None takes their defaults
  (2, 16, 16, 1, 0, False), so
  `optax.inject_hyperparams(meta_attention_adamw)(learning_rate=1e-2)`
  needs no `static_args`.

  The raw gradient (not Adam's smoothed direction, whose successive values
  nearly always agree) feeds the hypergradient, and Adam's moments feed the
  network's statistics. `mu_dtype` is the first moment's dtype (None: the
  params').
  """
  adam = optax.scale_by_adam(b1, b2, eps, mu_dtype=mu_dtype)
  decay = optax.add_decayed_weights(weight_decay, mask)
  meta = scale_by_meta_attention_lr(
      learning_rate, num_heads=num_heads, window=window, width=width,
      hyper_lr=hyper_lr, max_multiplier=max_multiplier, anchor=anchor,
      horizon=horizon, update_every=update_every, seed=seed,
      adapt_steps=adapt_steps, adapt_start=adapt_start,
      level_rate=level_rate, max_level_step=max_level_step,
      max_level_rise=max_level_rise, learn_groups=learn_groups)

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
  applied_T = _applied(s.multiplier_T, s.level)
  out = {"meta_lr/multiplier_mean": jnp.mean(applied_T),
         "meta_lr/multiplier_min": jnp.min(applied_T),
         "meta_lr/multiplier_max": jnp.max(applied_T),
         "meta_lr/global_multiplier": s.global_multiplier * jnp.exp(s.level),
         "meta_lr/level": jnp.exp(s.level)}
  if s.attention_TxN is not None:  # the network runs (learn_groups)
    out["meta_lr/hypergrad_mean"] = jnp.mean(s.hypergrad_T)
    out["meta_lr/attention_to_global"] = jnp.mean(s.attention_TxN[:, 0])
  return out


def attention_table(opt_state, params) -> tuple[np.ndarray, list[str]] | None:
  """The group tokens' attention weights (rows: tensors; columns: the global
  token, then the tensors) and the tensor names, for a heat map; None when
  `opt_state` holds no meta-attention state or no network
  (`learn_groups` off)."""
  s = find_state(opt_state)
  if s is None or s.attention_TxN is None or s.multiplier_T.shape[0] == 0:
    return None
  names = [jax.tree_util.keystr(path, simple=True, separator="/")
           for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
  return np.asarray(jax.device_get(s.attention_TxN)), names
