"""select_batch: each method's semantics against exact or statistical
references, class weights and quotas, and the errors it names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from accel import selection as sel

N, K = 12, 4
SCORES = jnp.asarray(np.random.default_rng(0).normal(size=N) * 1.5,
                     jnp.float32)
DRAWS = 20000


def _draw_many(method, k=K, scores=SCORES, **kw):
  keys = jax.random.split(jax.random.PRNGKey(1), DRAWS)
  fn = jax.jit(jax.vmap(lambda r: sel.select_batch(scores, k, rng=r,
                                                   method=method, **kw)))
  idx, w = fn(keys)
  return np.asarray(idx), np.asarray(w)


def _probs(scores, temperature=1.0, min_prob=0.0):
  p = np.asarray(jax.nn.softmax(scores / temperature), np.float64)
  return (1 - min_prob) * p + min_prob / len(p)


def _assert_frequencies(counts, p, draws):
  # 5 standard deviations of a binomial count: fails by chance ~1e-6.
  sd = np.sqrt(draws * p * (1 - p))
  assert np.all(np.abs(counts - draws * p) <= 5 * sd + 1), (counts / draws, p)


def test_topk_is_exact_with_unit_weights():
  idx, w = sel.select_batch(SCORES, K, rng=jax.random.PRNGKey(0))
  assert sorted(np.asarray(idx).tolist()) == sorted(
      np.argsort(-np.asarray(SCORES))[:K].tolist())
  np.testing.assert_array_equal(w, 1.0)
  assert idx.dtype == jnp.int32 and w.dtype == jnp.float32


@pytest.mark.parametrize("temperature,min_prob", [(1.0, 0.0), (0.5, 0.3)])
def test_sample_draws_follow_softmax_with_floor(temperature, min_prob):
  idx, w = _draw_many("sample", temperature=temperature, min_prob=min_prob)
  p = _probs(SCORES, temperature, min_prob)
  # Gumbel-top-k lists draws in order: the first follows p exactly.
  _assert_frequencies(np.bincount(idx[:, 0], minlength=N), p, DRAWS)
  assert all(len(set(row)) == K for row in idx.tolist())  # distinct
  np.testing.assert_array_equal(w, 1.0)


def test_uniform_floor_holds_against_an_overwhelming_score():
  scores = jnp.zeros(N).at[0].set(100.0)
  idx, _ = _draw_many("sample", k=1, scores=scores, min_prob=0.6)
  counts = np.bincount(idx[:, 0], minlength=N)
  p = _probs(scores, 1.0, 0.6)
  assert p[1:].min() == pytest.approx(0.6 / N)
  _assert_frequencies(counts, p, DRAWS)


def test_importance_weights_give_an_unbiased_mean():
  losses = np.asarray(jax.nn.softplus(SCORES + 1.0), np.float64)
  idx, w = _draw_many("importance", min_prob=0.1)
  estimates = (w * losses[idx]).mean(axis=1)  # (1/k) sum w_i loss_i
  sd = estimates.std() / np.sqrt(DRAWS)
  assert abs(estimates.mean() - losses.mean()) < 5 * sd
  assert all(len(set(row)) == K for row in idx.tolist())
  # Without the weights the sample over-represents high scores: biased.
  assert losses[idx].mean() > losses.mean() + 10 * sd


@pytest.mark.parametrize("pressure", [10.0, 100.0])
def test_rank_draws_follow_rank_probabilities(pressure):
  # The scores' scale does not matter, only their order.
  for scale in (1.0, 1e3):
    idx, w = _draw_many("rank", scores=SCORES * scale,
                        rank_pressure=pressure)
    rank = np.argsort(np.argsort(-np.asarray(SCORES)))
    p = pressure ** (-rank / (N - 1))
    p /= p.sum()
    _assert_frequencies(np.bincount(idx[:, 0], minlength=N), p, DRAWS)
    assert p.max() / p.min() == pytest.approx(pressure)
    assert all(len(set(row)) == K for row in idx.tolist())
    np.testing.assert_array_equal(w, 1.0)


def test_uniform_includes_every_candidate_equally():
  idx, w = _draw_many("uniform")
  counts = np.bincount(idx.ravel(), minlength=N)
  _assert_frequencies(counts, np.full(N, K / N), DRAWS)
  assert all(len(set(row)) == K for row in idx.tolist())
  np.testing.assert_array_equal(w, 1.0)


def test_class_weights_multiply_class_probabilities():
  labels = jnp.asarray(np.arange(N) % 3, jnp.int32)
  weights = jnp.asarray([1.0, 4.0, 0.25])
  idx, _ = _draw_many("sample", k=1, labels_N=labels, class_weights=weights)
  p = _probs(SCORES) * np.asarray(weights)[np.arange(N) % 3]
  _assert_frequencies(np.bincount(idx[:, 0], minlength=N), p / p.sum(),
                      DRAWS)
  # Top-k ranks by score + log weight.
  idx, _ = sel.select_batch(SCORES, K, rng=jax.random.PRNGKey(0),
                            labels_N=labels, class_weights=weights)
  shifted = np.asarray(SCORES) + np.log(np.asarray(weights))[np.arange(N) % 3]
  assert sorted(np.asarray(idx).tolist()) == sorted(
      np.argsort(-shifted)[:K].tolist())


@pytest.mark.parametrize("method", ["topk", "sample", "uniform"])
def test_class_quota_guarantees_places(method):
  # Class 2 has two candidates with the lowest scores; class 0 dominates.
  labels = np.zeros(N, np.int32)
  labels[[3, 7]] = 1
  labels[[5, 9]] = 2
  scores = jnp.asarray(np.where(labels == 0, 5.0, -5.0), jnp.float32)
  for r in range(20):
    idx, _ = sel.select_batch(scores, 6, rng=jax.random.PRNGKey(r),
                              method=method, labels_N=jnp.asarray(labels),
                              class_quota=2)
    chosen = labels[np.asarray(idx)]
    assert np.sum(chosen == 1) >= 2 and np.sum(chosen == 2) >= 2
    assert len(set(np.asarray(idx).tolist())) == 6


def test_jitted_selection_needs_no_host_transfer():
  scores = jax.device_put(SCORES)
  labels = jax.device_put(jnp.arange(N, dtype=jnp.int32) % 3)
  rng = jax.device_put(jax.random.PRNGKey(0))
  fns = {m: jax.jit(lambda s, l, r, m=m: sel.select_batch(
      s, K, rng=r, method=m, labels_N=l, class_weights=jnp.ones(3)))
         for m in sel.METHODS}
  for fn in fns.values():  # compile outside the guard
    jax.block_until_ready(fn(scores, labels, rng))
  with jax.transfer_guard("disallow"):
    for fn in fns.values():
      jax.block_until_ready(fn(scores, labels, rng))


def test_bad_arguments_are_named():
  rng = jax.random.PRNGKey(0)
  with pytest.raises(ValueError, match="Unknown selection method 'best'"):
    sel.select_batch(SCORES, K, rng=rng, method="best")
  with pytest.raises(ValueError, match="Cannot select k=13 of 12"):
    sel.select_batch(SCORES, 13, rng=rng)
  with pytest.raises(ValueError, match="class_quota would bias"):
    sel.select_batch(SCORES, K, rng=rng, method="importance",
                     labels_N=jnp.zeros(N, jnp.int32), class_quota=1)
  with pytest.raises(ValueError, match="need labels_N"):
    sel.select_batch(SCORES, K, rng=rng, class_quota=1)
  with pytest.raises(ValueError, match="rank_pressure must be >= 1, got 0.5"):
    sel.select_batch(SCORES, K, rng=rng, method="rank", rank_pressure=0.5)


def test_variance_reduction_against_its_definition():
  rng = np.random.default_rng(3)
  norms = rng.uniform(0.1, 3.0, 50)
  # Exact second moments of the weighted one-draw estimate g_i / (N p_i).
  uniform = np.mean(norms ** 2)
  for p in (norms / norms.sum(), np.full(50, 1 / 50),
            np.asarray(sel.sampling_probs(jnp.asarray(norms), 0.5, 0.2))):
    weighted = np.sum(p * (norms / (50 * p)) ** 2)
    assert float(sel.variance_reduction(jnp.asarray(norms), jnp.asarray(p))
                 ) == pytest.approx(uniform / weighted, rel=1e-5)
  p = norms / norms.sum()  # proportional: Katharopoulos & Fleuret's form
  u = np.full(50, 1 / 50)
  kf = 1 / (1 - np.sum((p - u) ** 2) / np.sum(p ** 2))
  assert float(sel.variance_reduction(jnp.asarray(norms), jnp.asarray(p))
               ) == pytest.approx(kf, rel=1e-5)
  assert float(sel.variance_reduction(jnp.asarray(norms), jnp.asarray(u))
               ) == pytest.approx(1.0)
