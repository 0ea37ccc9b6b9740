"""Scored batch formation: score a candidate batch with the model, then train
on the examples worth learning.

Each step draws `ratio * batch_size` candidates; inside the same jitted
train step a scorer gives every candidate a score, `select_batch` picks
`batch_size` of them (and, for importance sampling, their weights), and the
update runs on the gathered batch. Shapes are static; nothing returns to
the host.

`select_batch(scores_N, k, *, rng, method, ...)`:
  topk        the k highest scores; weights 1.
  sample      k distinct candidates, drawn one after another without
              replacement with probability p = (1 - min_prob) *
              softmax(scores / temperature) + min_prob / N (Gumbel-top-k);
              every candidate keeps at least min_prob / N per draw.
              Weights 1.
  importance  drawn as `sample`, with weights w_i = k / (N q_i), where q_i is
              the candidate's inclusion probability given the (k+1)-th
              largest Gumbel key (priority-sampling estimator, Duffield et
              al. 2007; Kool et al. 2019): (1/k) sum_i w_i loss_i is an
              unbiased estimate of the candidate-batch mean loss. The train
              step divides the weighted loss by k (the row count), not by
              the weights' sum, to keep it unbiased.
  uniform     k distinct candidates uniformly (the control); weights 1.

Class rebalancing: `class_weights` (one per class) enter as
score + temperature * log(class_weight): for the sampling methods that
multiplies a class's probabilities by its weight; top-k ranks with the
same shift. `class_quota=m` guarantees each class min(m, its candidates)
places (the best-keyed of its candidates are taken first), for topk,
sample and uniform.

Scorers, `scorer(params, batch) -> scores_N` (eval-mode forward, no
gradient): `loss` (per-example cross-entropy), `grad_norm_bound` (norm of
the loss gradient with respect to the logits, ||softmax - onehot||, which
bounds the last layer's gradient norm up to the norm of its input;
Katharopoulos & Fleuret 2018), `reducible_loss` (RHO-LOSS, Mindermann et
al. 2022: loss minus an irreducible loss looked up by `example_id` in a
table that `accel.data.irreducible` makes), `uniform` (zeros).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

METHODS = ("topk", "sample", "importance", "uniform")
SCORERS = ("loss", "grad_norm_bound", "reducible_loss", "uniform")

# config.selection; scorer "none" turns selection off.
DEFAULTS = {"scorer": "none", "method": "topk", "ratio": 4.0,
            "warmup_steps": 0, "temperature": 1.0, "min_prob": 0.0,
            "class_rebalance": 0.0, "class_quota": 0,
            "irreducible_table": ""}
_BIG = 1e9


def _gumbel_keys(rng, log_p_N):
  return log_p_N + jax.random.gumbel(rng, log_p_N.shape, jnp.float32)


def _quota_bonus(keys_N, labels_N, quota: int):
  """+_BIG on each class's `quota` best-keyed candidates.

  O(N^2) comparisons: fine for candidate batches of a few thousand.
  """
  # rank_i = how many same-class candidates have a larger key (ties by index).
  n = keys_N.shape[0]
  ahead_NxN = (keys_N[None, :] > keys_N[:, None]) | (
      (keys_N[None, :] == keys_N[:, None])
      & (jnp.arange(n)[None, :] < jnp.arange(n)[:, None]))
  same_NxN = labels_N[None, :] == labels_N[:, None]
  rank_N = jnp.sum(ahead_NxN & same_NxN, axis=1)
  return jnp.where(rank_N < quota, _BIG, 0.0)


def select_batch(scores_N: jax.Array, k: int, *, rng: jax.Array,
                 method: str = "topk", labels_N: jax.Array | None = None,
                 class_weights: jax.Array | None = None,
                 temperature: float = 1.0, min_prob: float = 0.0,
                 class_quota: int = 0) -> tuple[jax.Array, jax.Array]:
  """Indices (k,) int32 into the candidates and weights (k,) float32.

  See the module doc for the methods. `labels_N` is needed for
  `class_weights` and `class_quota`.
  """
  if method not in METHODS:
    raise ValueError(f"Unknown selection method {method!r}; expected one of "
                     f"{METHODS}.")
  n = scores_N.shape[0]
  if not 0 < k <= n:
    raise ValueError(f"Cannot select k={k} of {n} candidates; need "
                     f"0 < k <= {n}.")
  if temperature <= 0:
    raise ValueError(f"temperature must be > 0, got {temperature}.")
  if not 0.0 <= min_prob <= 1.0:
    raise ValueError(f"min_prob must be in [0, 1], got {min_prob}.")
  if (class_weights is not None or class_quota) and labels_N is None:
    raise ValueError("class_weights and class_quota need labels_N.")
  if class_quota and method == "importance":
    raise ValueError("class_quota would bias the importance weights; use "
                     "class_weights with method='importance'.")
  scores_N = jnp.nan_to_num(scores_N.astype(jnp.float32), nan=0.0,
                            posinf=_BIG, neginf=-_BIG)
  if class_weights is not None:
    cw = jnp.asarray(class_weights, jnp.float32)
    scores_N = scores_N + temperature * jnp.log(cw[labels_N])
  if method == "topk":
    keys_N = scores_N
  elif method == "uniform":
    keys_N = jax.random.uniform(rng, (n,))
  else:
    p_N = ((1.0 - min_prob) * jax.nn.softmax(scores_N / temperature)
           + min_prob / n)
    log_p_N = jnp.log(p_N)
    keys_N = _gumbel_keys(rng, log_p_N)
  if class_quota:
    keys_N = keys_N + _quota_bonus(keys_N, labels_N, class_quota)
  if method != "importance":
    _, idx_k = jax.lax.top_k(keys_N, k)
    return idx_k.astype(jnp.int32), jnp.ones((k,), jnp.float32)
  if k == n:
    return jnp.arange(n, dtype=jnp.int32), jnp.ones((n,), jnp.float32)
  top, idx = jax.lax.top_k(keys_N, k + 1)
  kappa, idx_k = top[k], idx[:k]
  # P(log p_i + Gumbel > kappa) = 1 - exp(-exp(log p_i - kappa)).
  q_k = -jnp.expm1(-jnp.exp(log_p_N[idx_k] - kappa))
  return idx_k.astype(jnp.int32), (k / (n * q_k)).astype(jnp.float32)


# --- Scorers ----------------------------------------------------------------

def _logits_and_labels(model, params, batch):
  logits = model.apply({"params": params}, batch["inputs"], train=False)
  labels = batch["label"]
  b = labels.shape[0]
  return (logits.reshape(b, -1, logits.shape[-1]).astype(jnp.float32),
          labels.reshape(b, -1), batch.get("label_mask"))


def _per_example(values_BxT, mask):
  if mask is None:
    return values_BxT.mean(axis=1)
  m = mask.reshape(values_BxT.shape).astype(jnp.float32)
  return (values_BxT * m).sum(1) / jnp.maximum(m.sum(1), 1.0)


def loss_scorer(model) -> Callable[[Any, dict[str, jax.Array]], jax.Array]:
  def score(params, batch):
    logits, labels, mask = _logits_and_labels(model, params, batch)
    return _per_example(optax.softmax_cross_entropy_with_integer_labels(
        logits, labels), mask)
  return score


def grad_norm_bound_scorer(model):
  def score(params, batch):
    logits, labels, mask = _logits_and_labels(model, params, batch)
    diff = jax.nn.softmax(logits) - jax.nn.one_hot(labels, logits.shape[-1])
    return _per_example(jnp.linalg.norm(diff, axis=-1), mask)
  return score


def reducible_loss_scorer(model, irreducible_N: jax.Array):
  """Training loss minus the irreducible loss of the same example."""
  loss = loss_scorer(model)
  table = jnp.asarray(irreducible_N, jnp.float32)

  def score(params, batch):
    if "example_id" not in batch:
      raise ValueError("The reducible_loss scorer looks examples up by "
                       "'example_id', but the batch has only "
                       f"{sorted(batch)}.")
    return loss(params, batch) - table[batch["example_id"]]
  return score


def uniform_scorer(model):
  del model
  return lambda params, batch: jnp.zeros((batch["label"].shape[0],))


def make_scorer(name: str, model, *, irreducible_N=None):
  if name == "loss":
    return loss_scorer(model)
  if name == "grad_norm_bound":
    return grad_norm_bound_scorer(model)
  if name == "uniform":
    return uniform_scorer(model)
  if name == "reducible_loss":
    if irreducible_N is None:
      raise ValueError("The reducible_loss scorer needs an irreducible-loss "
                       "table: set config.selection.irreducible_table to a "
                       "file made by launch/irreducible_loss.py.")
    return reducible_loss_scorer(model, irreducible_N)
  raise ValueError(f"Unknown scorer {name!r}; expected one of {SCORERS}.")


# --- The selection step as the train step uses it ---------------------------

def class_weights_from_counts(counts_C: np.ndarray, power: float
                              ) -> np.ndarray:
  """(count_c / mean count)^-power: 0 = off, 1 = inverse frequency."""
  counts = np.maximum(np.asarray(counts_C, np.float64), 1.0)
  return (counts / counts.mean()) ** (-power)


class Selector:
  """Scores candidates, selects, gathers: `(params, candidates, rng, step)
  -> (batch, metrics)`, pure and jittable.

  During the first `warmup_steps` steps the first k candidates (a uniform
  random batch: the stream is shuffled) are taken and nothing is scored.
  """

  def __init__(self, scorer, k: int, *, method: str, warmup_steps: int = 0,
               temperature: float = 1.0, min_prob: float = 0.0,
               class_weights=None, class_quota: int = 0,
               num_classes: int | None = None):
    self.scorer, self.k = scorer, k
    self.warmup_steps = warmup_steps
    self.num_classes = num_classes
    self._select = functools.partial(
        select_batch, k=k, method=method, temperature=temperature,
        min_prob=min_prob,
        class_weights=(None if class_weights is None
                       else jnp.asarray(class_weights, jnp.float32)),
        class_quota=class_quota)
    self._needs_labels = class_weights is not None or class_quota > 0

  def __call__(self, params, candidates, rng, step):
    n = candidates["label"].shape[0]

    def scored(_):
      scores_N = jax.lax.stop_gradient(self.scorer(params, candidates))
      labels = candidates["label"] if self._needs_labels else None
      idx_k, w_k = self._select(scores_N, rng=rng, labels_N=labels)
      return idx_k, w_k, scores_N

    def first_k(_):
      return (jnp.arange(self.k, dtype=jnp.int32),
              jnp.ones((self.k,), jnp.float32), jnp.zeros((n,)))

    if self.warmup_steps > 0:
      idx_k, w_k, scores_N = jax.lax.cond(step < self.warmup_steps, first_k,
                                          scored, None)
    else:
      idx_k, w_k, scores_N = scored(None)
    batch = {key: v[idx_k] for key, v in candidates.items()}
    batch["weight"] = w_k
    return batch, self.metrics(candidates, batch, scores_N, idx_k)

  def metrics(self, candidates, batch, scores_N, idx_k):
    out = {"selection/score_mean_candidates": scores_N.mean(),
           "selection/score_mean_selected": scores_N[idx_k].mean(),
           "selection/weight_max": batch["weight"].max()}
    for q in (10, 50, 90):
      out[f"selection/score_p{q}"] = jnp.percentile(scores_N, q)
    if "noisy" in candidates:
      out["selection/noisy_share_candidates"] = candidates["noisy"].mean()
      out["selection/noisy_share_selected"] = batch["noisy"].mean()
    labels = batch["label"]
    if self.num_classes and labels.ndim == 1 and self.num_classes <= 32:
      share_C = jnp.bincount(labels, length=self.num_classes) / labels.shape[0]
      for c in range(self.num_classes):
        out[f"selection/class_share/{c}"] = share_C[c]
    return out


def candidate_batch_size(config) -> int:
  """Examples per step the input pipeline yields: the candidates."""
  if config.selection.scorer == "none":
    return config.batch_size
  return int(config.selection.ratio * config.batch_size)


def make_selector(config, model, source) -> Selector | None:
  """The run's selector from `config.selection`, or None when it is off."""
  c = config.selection
  if c.scorer == "none":
    return None
  if c.ratio < 1:
    raise ValueError(f"config.selection.ratio is candidates per selected "
                     f"example, >= 1; got {c.ratio}.")
  if c.method not in METHODS:
    raise ValueError(f"Unknown config.selection.method {c.method!r}; "
                     f"expected one of {METHODS}.")
  spec = source.spec
  classification = spec.task == "classification"
  if (c.class_rebalance or c.class_quota) and not classification:
    raise ValueError("Class rebalancing needs a classification data set; "
                     f"{spec.name!r} is a {spec.task!r} task.")
  class_weights = None
  if c.class_rebalance:
    arrays = getattr(source, "arrays", None)
    if arrays is None:
      raise ValueError(f"class_rebalance needs the training labels in "
                       f"memory; the {spec.name!r} source does not hold them.")
    counts = np.bincount(arrays("train")["label"], minlength=spec.num_classes)
    class_weights = class_weights_from_counts(counts, c.class_rebalance)
  table = None
  if c.scorer == "reducible_loss":
    from accel.data import irreducible  # pylint: disable=g-import-not-at-top
    if not c.irreducible_table:
      raise ValueError("config.selection.scorer='reducible_loss' needs "
                       "config.selection.irreducible_table (a file made by "
                       "launch/irreducible_loss.py).")
    table = irreducible.load_table(c.irreducible_table, source, config.data)
  scorer = make_scorer(c.scorer, model, irreducible_N=table)
  return Selector(scorer, config.batch_size, method=c.method,
                  warmup_steps=c.warmup_steps, temperature=c.temperature,
                  min_prob=c.min_prob, class_weights=class_weights,
                  class_quota=c.class_quota,
                  num_classes=spec.num_classes if classification else None)
