"""The scorers against their definitions, and what the attention scorer
reads in a real run."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from accel import data
from accel import models
from accel import selection as sel
from accel import train
from accel.selection import scorers


def test_scorers_match_their_definitions(tiny):
  _, model, params, batch = tiny
  logits = model.apply({"params": params}, batch["inputs"], train=False)
  xent = optax.softmax_cross_entropy_with_integer_labels(logits,
                                                         batch["label"])
  np.testing.assert_allclose(scorers.loss_scorer(model)(params, batch), xent,
                             rtol=1e-5)
  # Gradient of the loss with respect to the logits, example by example.
  grads = jax.vmap(jax.grad(
      lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y)))(
          logits, batch["label"])
  np.testing.assert_allclose(scorers.grad_norm_bound_scorer(model)(params, batch),
                             np.linalg.norm(grads, axis=-1), rtol=1e-5)
  table = jnp.linspace(0.0, 1.0, 300)
  np.testing.assert_allclose(
      scorers.reducible_loss_scorer(model, table)(params, batch),
      xent - table[:32], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(scorers.uniform_scorer(model)(params, batch), 0)
  no_ids = {k: v for k, v in batch.items() if k != "example_id"}
  with pytest.raises(ValueError, match="looks examples up by 'example_id'"):
    scorers.reducible_loss_scorer(model, table)(params, no_ids)
  with pytest.raises(ValueError, match="Unknown scorer 'entropy'"):
    sel.make_scorer("entropy", model)


def test_attention_scorer_matches_its_definition(tiny):
  source, model, params, batch = tiny
  labels = source.arrays("train")["label"]
  idx = scorers.reference_set(labels, 3, source.spec.num_classes, seed=1)
  assert len(idx) == len(set(idx.tolist()))
  counts = np.bincount(labels[idx], minlength=source.spec.num_classes)
  assert (counts == np.minimum(3, np.bincount(
      labels, minlength=source.spec.num_classes))).all()
  ref = source.fetch("train", idx)
  scores = scorers.attention_scorer(model, ref, source.spec.num_classes,
                                temperature=0.5)(params, batch)
  # NumPy reference: the MLP head's input is the last hidden layer.
  feats = lambda x: np.asarray(scorers.head_features(model, params, x)[1])
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
  np.testing.assert_allclose(scorers.attention_scorer(
      model, ref, source.spec.num_classes, temperature=0.5)(params, part),
                             scores[:5], rtol=1e-5)


def _auc(scores, positive):
  s, y = np.asarray(scores), np.asarray(positive).astype(bool)
  return (s[y][:, None] > s[~y][None, :]).mean()


@pytest.mark.slow
def test_attention_scorer_flags_corrupted_labels_before_and_after_training(
    tmp_path, noisy_config):
  """What the scorer reads: label agreement in feature space. It ranks
  corrupted labels high at initialisation, where the loss cannot, and still
  after training."""
  c = noisy_config()
  c.data.imbalance, c.total_steps = 1.0, 150
  trained = train.run(c, str(tmp_path / "run"))["state"].params
  source = data.make_source(c.data)
  model = models.make(c.model, source.spec)
  params0 = jax.jit(lambda k: model.init(
      k, models.dummy_inputs(source.spec), train=False))(
          jax.random.PRNGKey(0))["params"]
  arrays = source.arrays("train")
  ref = source.fetch("train", scorers.reference_set(
      arrays["label"], 8, source.spec.num_classes))
  score = jax.jit(scorers.attention_scorer(model, ref, source.spec.num_classes))
  batch = source.fetch("train", np.arange(512))
  loss = jax.jit(scorers.loss_scorer(model))
  assert _auc(score(params0, batch), batch["noisy"]) > 0.75
  assert _auc(loss(params0, batch), batch["noisy"]) < 0.6
  assert _auc(score(jax.device_get(trained), batch), batch["noisy"]) > 0.85
  # Clean examples attend to their own class's prototype far more.
  a = np.asarray(jax.jit(lambda p: scorers.prototype_attention(
      scorers.head_features(model, p, batch["inputs"])[1],
      scorers.head_features(model, p, ref["inputs"])[1], ref["label"],
      source.spec.num_classes, 0.1))(jax.device_get(trained)))
  own = a[np.arange(len(a)), batch["label"]]
  noisy = np.asarray(batch["noisy"]).astype(bool)
  assert own[~noisy].mean() > 3 * own[noisy].mean()
