"""Selecting k of N scored candidates: pure functions, jittable, static k.

`select_batch(scores_N, k, *, rng, method, ...)` returns indices and
weights:
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
  rank        k distinct candidates drawn without replacement with
              probability proportional to pressure^(-r / (N - 1)), r the
              candidate's rank by score (0 the highest): the highest-scored
              candidate is `rank_pressure` times as likely as the lowest,
              whatever the scale of the scores (Loshchilov & Hutter 2015,
              arXiv 1511.06343). Weights 1.
  uniform     k distinct candidates uniformly (the control); weights 1.

Class rebalancing: `class_weights` (one per class) enter as
score + temperature * log(class_weight): for the sampling methods that
multiplies a class's probabilities by its weight; top-k ranks with the
same shift. `class_quota=m` guarantees each class min(m, its candidates)
places (the best-keyed of its candidates are taken first), for topk,
sample and uniform.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from accel.errors import ConfigError

METHODS = ("topk", "sample", "importance", "rank", "uniform")
_BIG = 1e9


def sampling_probs(scores_N: jax.Array, temperature: float = 1.0,
                   min_prob: float = 0.0) -> jax.Array:
  """[N]: the first draw's probabilities of `sample` and `importance`."""
  return ((1.0 - min_prob) * jax.nn.softmax(scores_N / temperature)
          + min_prob / scores_N.shape[0])


def variance_reduction(norms_N: jax.Array, p_N: jax.Array) -> jax.Array:
  """tau: how many times smaller the second moment of the batch-mean
  gradient is when examples are drawn with probabilities `p_N` and
  importance-weighted than when drawn uniformly, if `norms_N` were the
  examples' gradient norms: N sum(n^2) / sum(n^2 / p). It is
  1 / (1 - ||p - u||^2 / ||p||^2) when p is proportional to the norms
  (Katharopoulos & Fleuret 2018, arXiv 1803.00942), and 1 for uniform p.
  """
  sq_N = jnp.square(norms_N.astype(jnp.float32))
  n = norms_N.shape[0]
  return n * sq_N.sum() / jnp.maximum((sq_N / p_N).sum(), 1e-30)


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
                 class_quota: int = 0, rank_pressure: float = 10.0
                 ) -> tuple[jax.Array, jax.Array]:
  """Indices (k,) int32 into the candidates and weights (k,) float32.

  See the module doc for the methods. `labels_N` is needed for
  `class_weights` and `class_quota`.
  """
  if method not in METHODS:
    raise ConfigError(f"Unknown selection method {method!r}; expected one of "
                      f"{METHODS}.")
  n = scores_N.shape[0]
  if not 0 < k <= n:
    raise ConfigError(f"Cannot select k={k} of {n} candidates; need "
                      f"0 < k <= {n}.")
  if temperature <= 0:
    raise ConfigError(f"temperature must be > 0, got {temperature}.")
  if rank_pressure < 1.0:
    raise ConfigError(f"rank_pressure must be >= 1, got {rank_pressure}.")
  if not 0.0 <= min_prob <= 1.0:
    raise ConfigError(f"min_prob must be in [0, 1], got {min_prob}.")
  if (class_weights is not None or class_quota) and labels_N is None:
    raise ConfigError("class_weights and class_quota need labels_N.")
  if class_quota and method == "importance":
    raise ConfigError("class_quota would bias the importance weights; use "
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
  elif method == "rank":
    rank_N = jnp.argsort(jnp.argsort(-scores_N)).astype(jnp.float32)
    log_p_N = -jnp.log(rank_pressure) * rank_N / max(n - 1, 1)
    keys_N = _gumbel_keys(rng, log_p_N)
  else:
    log_p_N = jnp.log(sampling_probs(scores_N, temperature, min_prob))
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


def class_weights_from_counts(counts_C: np.ndarray, power: float
                              ) -> np.ndarray:
  """(count_c / mean count)^-power: 0 = off, 1 = inverse frequency."""
  counts = np.maximum(np.asarray(counts_C, np.float64), 1.0)
  return (counts / counts.mean()) ** (-power)
