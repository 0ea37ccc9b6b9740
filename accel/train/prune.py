"""Pruning during training (`config.prune`): masks that zero weights.

  snip       connection sensitivity at initialisation (Lee et al. 2019,
             arXiv 1810.02340): at the first step, keep the (1 - sparsity)
             share of weights with the largest |gradient x weight| on that
             step's batch, over all prunable weights at once; fixed after.
  magnitude  gradual magnitude pruning (Zhu & Gupta 2017, arXiv
             1710.01878): every `every` steps from `start_step` to
             `end_step`, zero the smallest weights (over all prunable
             weights) so that the zero share follows the cubic schedule
             s_t = s (1 - (1 - (t - start) / (end - start))^3).
  nm         N:M structured sparsity (`n` of every `m` consecutive weights
             along a kernel's input axis kept, the 2:4 pattern sparse tensor
             cores run): the largest magnitudes of each group, chosen every
             `every` steps from `start_step` until `end_step`, then fixed.
             A kernel whose input axis does not divide by m stays dense.
  units      architecture adaptation, the thesis's dropping of
             low-importance units: each hidden layer's output units
             (kernel columns, with their bias) ranked by the norm of their
             incoming weights; the weakest share, rising on the cubic
             schedule to `sparsity`, is removed.

The prunable weights are the hidden layers' kernels (accel.optim.matrices:
the input and output layers, embeddings, biases and norms stay dense);
`units` also masks the dropped units' biases. Masks are boolean trees like
the parameters in the train state (TrainState.masks: checkpointed, sharded
like the parameters). The train step multiplies the gradients and the
updated parameters by them, so a pruned weight stays exactly zero through
every update, weight decay and momentum included, and through a resume.
Mask updates run inside the step (a `lax.cond` on the update steps).

Masks zero weights; they do not make dense matrix multiplies cheaper here
(XLA on CPU and GPU computes the zeros too): what pruning buys at this
size is a smaller model to ship, not faster training.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
from optax import contrib

from accel.errors import ConfigError
from accel.optim import matrices

METHODS = ("none", "snip", "magnitude", "nm", "units")
DEFAULTS = {"method": "none", "sparsity": 0.5, "start_step": 0,
            "end_step": 0, "every": 100, "n": 2, "m": 4}


def section(**overrides) -> ml_collections.ConfigDict:
  unknown = sorted(set(overrides) - set(DEFAULTS))
  if unknown:
    raise ConfigError(f"Unknown prune option {unknown[0]!r}. Accepted "
                      f"options: {sorted(DEFAULTS)}.")
  return ml_collections.ConfigDict({**DEFAULTS, **overrides})


def check(c, total_steps: int) -> None:
  """Raises ConfigError naming a bad `config.prune` value."""
  if c.method not in METHODS:
    raise ConfigError(f"config.prune.method must be one of {METHODS}, got "
                      f"{c.method!r}.")
  if c.method == "none":
    return
  if not 0.0 <= c.sparsity < 1.0:
    raise ConfigError(f"config.prune.sparsity is the share of prunable "
                      f"weights set to zero, in [0, 1); got {c.sparsity}.")
  if c.every < 1:
    raise ConfigError(f"config.prune.every must be >= 1, got {c.every}.")
  end = end_step(c, total_steps)
  if not 0 <= c.start_step <= end <= total_steps:
    raise ConfigError(
        f"config.prune needs 0 <= start_step <= end_step <= total_steps; got "
        f"start_step={c.start_step}, end_step={c.end_step} (0: 3/4 of the "
        f"run, {end}), total_steps={total_steps}.")
  if c.method == "nm" and not 0 < c.n < c.m:
    raise ConfigError(f"config.prune.n and m need 0 < n < m (2:4 keeps 2 "
                      f"of every 4); got n={c.n}, m={c.m}.")


def end_step(c, total_steps: int) -> int:
  """`c.end_step`, or (0) three quarters of the run."""
  return int(c.end_step) or (3 * total_steps) // 4


class Pruning(NamedTuple):
  """`config.prune` resolved for a run (hashable: the train step's static
  argument)."""
  method: str
  sparsity: float
  start_step: int
  end_step: int
  every: int
  n: int
  m: int


def resolve(c, total_steps: int) -> Pruning | None:
  """The run's pruning, checked; None when `c.method` is none."""
  check(c, total_steps)
  if c.method == "none":
    return None
  return Pruning(c.method, float(c.sparsity), int(c.start_step),
                 end_step(c, total_steps), int(c.every), int(c.n), int(c.m))


def prunable(params) -> Any:
  """A tree like `params`: True on the hidden layers' kernels (static
  Python bools: shapes and names decide)."""
  return jax.tree.map(
      lambda s: s is not None, matrices.hidden_matrices(params),
      is_leaf=lambda x: x is None or isinstance(
          x, contrib.MuonDimensionNumbers))


def init_masks(params) -> Any:
  """Every weight kept."""
  return jax.tree.map(lambda p: jnp.ones(p.shape, bool), params)


def cubic(step, start: int, end: int, sparsity: float) -> jax.Array:
  """Zhu & Gupta's target zero share at `step` (0 before `start`,
  `sparsity` from `end` on)."""
  frac = jnp.clip((step - start) / max(end - start, 1), 0.0, 1.0)
  return sparsity * (1.0 - (1.0 - frac) ** 3)


def _global_keep(scores, which, share_zero) -> Any:
  """Masks keeping, over all leaves where `which` is True at once, the
  (1 - share_zero) share of entries with the largest `scores`."""
  flat = jnp.concatenate([s.reshape(-1) for s, w in zip(
      jax.tree.leaves(scores), jax.tree.leaves(which)) if w])
  threshold = jnp.quantile(flat, share_zero)
  # Strictly above the quantile: ties at the threshold are pruned, so the
  # zero share is at least the target.
  keep = lambda s, w: (s > threshold) | (share_zero <= 0) if w else (
      jnp.ones(s.shape, bool))
  return jax.tree.map(keep, scores, which)


def snip_masks(params, grads, which, sparsity: float) -> Any:
  scores = jax.tree.map(lambda p, g: jnp.abs(p * g).astype(jnp.float32),
                        params, grads)
  return _global_keep(scores, which, sparsity)


def magnitude_masks(params, which, share_zero) -> Any:
  scores = jax.tree.map(lambda p: jnp.abs(p).astype(jnp.float32), params)
  return _global_keep(scores, which, share_zero)


def nm_masks(params, which, n: int, m: int) -> Any:
  """n of every m consecutive weights along the input axis (axis -2 of a
  kernel read as [..., in, out]) kept, the largest in magnitude."""
  def one(p, w):
    if not w or p.shape[-2] % m:
      return jnp.ones(p.shape, bool)
    a = jnp.abs(p.astype(jnp.float32))
    g = jnp.moveaxis(a, -2, -1)  # [..., out, in]
    g = g.reshape(g.shape[:-1] + (g.shape[-1] // m, m))
    rank = jnp.argsort(jnp.argsort(-g, axis=-1), axis=-1)
    keep = (rank < n).reshape(g.shape[:-2] + (p.shape[-2],))
    return jnp.moveaxis(keep, -1, -2)
  return jax.tree.map(one, params, which)


def unit_masks(params, which, share_zero) -> Any:
  """Each hidden kernel's weakest output units (columns, by the norm of
  their incoming weights) and their biases masked out."""
  masks = jax.tree.map(lambda p: jnp.ones(p.shape, bool), params)

  def visit(tree, mtree, wtree):
    out = dict(mtree)
    for name, sub in tree.items():
      if isinstance(sub, dict):
        out[name] = visit(sub, mtree[name], wtree[name])
      elif name == "kernel" and wtree[name]:
        cols = sub.reshape(-1, sub.shape[-1]).astype(jnp.float32)
        norm = jnp.linalg.norm(cols, axis=0)
        cut = jnp.quantile(norm, share_zero)
        alive = (norm > cut) | (share_zero <= 0)
        out[name] = jnp.broadcast_to(alive, sub.shape)
        if "bias" in tree and tree["bias"].shape == alive.shape:
          out["bias"] = alive
    return out
  return visit(params, masks, which)


def compute(p: Pruning, params, grads, which, step) -> Any:
  """The masks `p.method` gives at `step` (whether the step updates them
  is `updates_at`)."""
  if p.method == "snip":
    return snip_masks(params, grads, which, p.sparsity)
  if p.method == "magnitude":
    return magnitude_masks(params, which,
                           cubic(step, p.start_step, p.end_step, p.sparsity))
  if p.method == "nm":
    return nm_masks(params, which, p.n, p.m)
  if p.method == "units":
    return unit_masks(params, which, cubic(step, p.start_step, p.end_step,
                                           p.sparsity))
  raise ConfigError(f"config.prune.method {p.method!r} computes no masks.")


def updates_at(p: Pruning, step) -> jax.Array:
  """Whether the masks change at `step` (traced bool)."""
  if p.method == "snip":
    return step == p.start_step
  return ((step >= p.start_step) & (step <= p.end_step)
          & ((step - p.start_step) % p.every == 0))


def step_masks(p: Pruning, masks, params, grads, step) -> Any:
  """The masks after `step` looked at them (new ones on update steps)."""
  which = prunable(params)
  return jax.lax.cond(updates_at(p, step),
                      lambda: compute(p, params, grads, which, step),
                      lambda: masks)


def apply(masks, tree) -> Any:
  """`tree` (parameters or gradients) with the masked entries zeroed."""
  return jax.tree.map(lambda x, k: jnp.where(k, x, jnp.zeros_like(x)),
                      tree, masks)


def zero_share(masks, which) -> jax.Array:
  """The share of prunable weights masked out."""
  pruned = sum(jnp.sum(~k) for k, w in zip(jax.tree.leaves(masks),
                                           jax.tree.leaves(which)) if w)
  total = sum(k.size for k, w in zip(jax.tree.leaves(masks),
                                     jax.tree.leaves(which)) if w)
  return pruned / max(total, 1)
