"""Scored batch formation: each method's semantics against exact or
statistical references, class weights and quotas, scorers, the table, and
selection inside a training run."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from accel import data
from accel import models
from accel import train
from accel.data import irreducible
from accel.data import selection as sel
from accel.train import config as config_lib

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


@pytest.fixture(scope="module")
def tiny():
  source = data.make_source({"name": "synthetic", "num_train": 256,
                             "num_test": 64, "dim": 8, "label_noise": 0.2})
  model = models.make({"name": "mlp", "hidden": (16,)}, source.spec)
  params = model.init(jax.random.PRNGKey(0),
                      models.dummy_inputs(source.spec), train=False)["params"]
  batch = source.fetch("train", np.arange(32))
  batch["example_id"] = np.arange(32, dtype=np.int32)
  return source, model, params, batch


def test_scorers_match_their_definitions(tiny):
  _, model, params, batch = tiny
  logits = model.apply({"params": params}, batch["inputs"], train=False)
  xent = optax.softmax_cross_entropy_with_integer_labels(logits,
                                                         batch["label"])
  np.testing.assert_allclose(sel.loss_scorer(model)(params, batch), xent,
                             rtol=1e-5)
  # Gradient of the loss with respect to the logits, example by example.
  grads = jax.vmap(jax.grad(
      lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y)))(
          logits, batch["label"])
  np.testing.assert_allclose(sel.grad_norm_bound_scorer(model)(params, batch),
                             np.linalg.norm(grads, axis=-1), rtol=1e-5)
  table = jnp.linspace(0.0, 1.0, 300)
  np.testing.assert_allclose(
      sel.reducible_loss_scorer(model, table)(params, batch),
      xent - table[:32], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(sel.uniform_scorer(model)(params, batch), 0)
  no_ids = {k: v for k, v in batch.items() if k != "example_id"}
  with pytest.raises(ValueError, match="looks examples up by 'example_id'"):
    sel.reducible_loss_scorer(model, table)(params, no_ids)
  with pytest.raises(ValueError, match="Unknown scorer 'entropy'"):
    sel.make_scorer("entropy", model)


def test_irreducible_table_round_trips_and_refuses_other_data(tmp_path, tiny):
  source, _, _, _ = tiny
  path = str(tmp_path / "il.npz")
  n = source.num_examples("train")
  table = np.linspace(0, 2, n).astype(np.float32)
  cfg = {"name": "synthetic", "num_train": 256}
  irreducible.save_table(path, table, cfg)
  np.testing.assert_array_equal(irreducible.load_table(path, source, cfg),
                                table)
  with pytest.raises(ValueError, match="was made for data"):
    irreducible.load_table(path, source, {"name": "synthetic",
                                          "num_train": 256, "dim": 4})
  irreducible.save_table(path, table[:100], cfg)
  with pytest.raises(ValueError, match=f"has 100 entries but the training "
                     f"split has {n}"):
    irreducible.load_table(path, source, cfg)
  with pytest.raises(FileNotFoundError, match="launch/irreducible_loss.py"):
    irreducible.load_table(str(tmp_path / "none.npz"), source, cfg)


def _noisy_config(**selection):
  c = config_lib.base_config()
  c.data = config_lib.data_section("synthetic", num_train=1024, num_test=256,
                                   dim=8, label_noise=0.3, imbalance=5.0)
  c.model = config_lib.model_section("mlp", hidden=(32,))
  c.optim = config_lib.optim_section("adamw", learning_rate=1e-2)
  c.total_steps, c.batch_size, c.log_every = 60, 32, 20
  c.eval_every = c.checkpoint_every = 0
  c.progress_bar = False
  c.selection = config_lib.selection_section(**selection)
  return c


def test_training_with_selection_rho_loss_avoids_noisy_labels(tmp_path):
  """RHO-LOSS picks fewer corrupted labels than the loss scorer, which
  seeks them out; metrics reach TensorBoard."""
  table_path = str(tmp_path / "il.npz")
  c = _noisy_config()
  irreducible.save_table(table_path, irreducible.make_table(
      c, holdout_fraction=0.5, steps=150, batch_size=32), c.data)
  shares = {}
  for scorer in ("loss", "reducible_loss"):
    workdir = str(tmp_path / scorer)
    train.run(_noisy_config(scorer=scorer, method="topk", ratio=4,
                            warmup_steps=10, class_rebalance=1.0,
                            irreducible_table=table_path), workdir)
    from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
    acc = event_accumulator.EventAccumulator(os.path.join(workdir,
                                                          "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/selection/noisy_share_selected",
            "train/selection/class_share/0",
            "train/selection/score_p90"} <= tags
    assert "train/selection/scores" in acc.Tags()["histograms"]
    share = acc.Scalars("train/selection/scoring_share")
    assert [e.step for e in share] == [20, 40, 60]  # after the warm-up
    assert all(0 < e.value < 1 for e in share)
    # The last window: after warm-up.
    shares[scorer] = [e.value for e in acc.Scalars(
        "train/selection/noisy_share_selected")][-1]
    candidates = [e.value for e in acc.Scalars(
        "train/selection/noisy_share_candidates")][-1]
  assert shares["loss"] > candidates  # high loss = mostly corrupted labels
  assert shares["reducible_loss"] < shares["loss"] - 0.1


def test_selection_config_errors_are_named(tmp_path):
  with pytest.raises(ValueError, match="Unknown selection option 'raito'"):
    config_lib.selection_section(raito=4)
  c = _noisy_config(scorer="reducible_loss")
  with pytest.raises(ValueError, match="needs config.selection."
                     "irreducible_table"):
    train.run(c, str(tmp_path / "a"))
  c = _noisy_config(scorer="loss", ratio=0.5)
  with pytest.raises(ValueError, match="ratio is candidates per selected "
                     "example, >= 1; got 0.5"):
    train.run(c, str(tmp_path / "b"))


def test_attention_scorer_matches_its_definition(tiny):
  source, model, params, batch = tiny
  labels = source.arrays("train")["label"]
  idx = sel.reference_set(labels, 3, source.spec.num_classes, seed=1)
  assert len(idx) == len(set(idx.tolist()))
  counts = np.bincount(labels[idx], minlength=source.spec.num_classes)
  assert (counts == np.minimum(3, np.bincount(
      labels, minlength=source.spec.num_classes))).all()
  ref = source.fetch("train", idx)
  scores = sel.attention_scorer(model, ref, source.spec.num_classes,
                                temperature=0.5)(params, batch)
  # NumPy reference: the MLP head's input is the last hidden layer.
  feats = lambda x: np.asarray(sel.head_features(model, params, x)[1])
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  f, rf = unit(feats(batch["inputs"])), unit(feats(ref["inputs"]))
  protos = unit(np.stack([rf[ref["label"] == c].mean(0)
                          for c in range(source.spec.num_classes)]))
  z = f @ protos.T / 0.5
  logp = z - np.log(np.exp(z).sum(1, keepdims=True))
  np.testing.assert_allclose(
      scores, -logp[np.arange(len(f)), batch["label"]], rtol=1e-4, atol=1e-5)
  # A candidate's score does not depend on the other candidates.
  part = {k: v[:5] for k, v in batch.items()}
  np.testing.assert_allclose(sel.attention_scorer(
      model, ref, source.spec.num_classes, temperature=0.5)(params, part),
                             scores[:5], rtol=1e-5)


def _auc(scores, positive):
  s, y = np.asarray(scores), np.asarray(positive).astype(bool)
  return (s[y][:, None] > s[~y][None, :]).mean()


def test_attention_scorer_flags_corrupted_labels_before_and_after_training(
    tmp_path):
  """What the scorer reads: label agreement in feature space. It ranks
  corrupted labels high at initialisation, where the loss cannot, and still
  after training."""
  c = _noisy_config()
  c.data.imbalance, c.total_steps = 1.0, 150
  trained = train.run(c, str(tmp_path / "run"))["state"].params
  source = data.make_source(c.data)
  model = models.make(c.model, source.spec)
  params0 = model.init(jax.random.PRNGKey(0), models.dummy_inputs(
      source.spec), train=False)["params"]
  arrays = source.arrays("train")
  ref = source.fetch("train", sel.reference_set(
      arrays["label"], 8, source.spec.num_classes))
  score = jax.jit(sel.attention_scorer(model, ref, source.spec.num_classes))
  batch = source.fetch("train", np.arange(512))
  loss = jax.jit(sel.loss_scorer(model))
  assert _auc(score(params0, batch), batch["noisy"]) > 0.75
  assert _auc(loss(params0, batch), batch["noisy"]) < 0.6
  assert _auc(score(jax.device_get(trained), batch), batch["noisy"]) > 0.85
  # Clean examples attend to their own class's prototype far more.
  a = np.asarray(jax.jit(lambda p: sel.prototype_attention(
      sel.head_features(model, p, batch["inputs"])[1],
      sel.head_features(model, p, ref["inputs"])[1], ref["label"],
      source.spec.num_classes, 0.1))(jax.device_get(trained)))
  own = a[np.arange(len(a)), batch["label"]]
  noisy = np.asarray(batch["noisy"]).astype(bool)
  assert own[~noisy].mean() > 3 * own[noisy].mean()


def test_attention_scorer_trains_and_names_bad_settings(tmp_path):
  c = _noisy_config(scorer="attention", method="topk", ratio=2,
                    reference_per_class=4)
  c.total_steps = 4
  assert train.run(c, str(tmp_path / "ok"))["step"] == 4
  c = _noisy_config(scorer="attention", prototype_temperature=0.0)
  with pytest.raises(ValueError, match="prototype_temperature must be > 0"):
    train.run(c, str(tmp_path / "t"))
  c = _noisy_config(scorer="attention", reference_per_class=0)
  with pytest.raises(ValueError, match="reference_per_class must be >= 1"):
    train.run(c, str(tmp_path / "r"))
  c.data = config_lib.data_section("sequence", task="lm", num_train=64,
                                   num_test=16)
  c.model = config_lib.model_section("transformer_lm", width=16,
                                     num_layers=1, num_heads=2, mlp_dim=32)
  c.selection.reference_per_class = 8
  with pytest.raises(ValueError, match="needs a classification data set"):
    train.run(c, str(tmp_path / "lm"))
