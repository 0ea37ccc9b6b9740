"""Scorers: `scorer(params, batch) -> scores_N`, an eval-mode forward pass
with no gradient, higher meaning "more worth training on".

  loss             per-example cross-entropy;
  grad_norm_bound  norm of the loss gradient with respect to the logits,
                   ||softmax - onehot||, which bounds the last layer's
                   gradient norm up to the norm of its input (Katharopoulos
                   & Fleuret 2018);
  reducible_loss   RHO-LOSS (Mindermann et al. 2022): the loss minus an
                   irreducible loss looked up by `example_id` in a table
                   (accel.selection.tables; made by accel.train.irreducible);
  attention        below;
  uniform          zeros;
  stale_loss       each candidate's last training loss, from a table the
                   train step fills (accel.selection.stale): no forward
                   pass.

The attention scorer asks whether a candidate's representation agrees with
its label, as judged by a reference set rather than by the classifier head.
The reference is `reference_per_class` examples of each class, set aside
from the training data once (a fixed seed). Every step the model embeds
them and the candidates: the input of its classifier head, L2-normalised.
The reference embeddings of each class are averaged into a prototype, and
each candidate attends over the class prototypes: a_c =
softmax_c(cos(f, p_c) / prototype_temperature). Its score is -log a_y: the
cross-entropy of this attention against its own label y. Nothing in the
scorer is trained; it is a nearest-class-mean check of the label in the
model's feature space. A clean example attends to its own class's
prototype (low score); one far from it (hard, ambiguous, or wrongly
labelled) attends elsewhere (high score). Because the labels it trusts are
the reference set's, it is informative before the model has learnt
anything: a random network keeps the inputs' cluster structure
(tests/selection/test_scorers.py measures how well it ranks corrupted
labels). Like the loss, top-k on it seeks out corrupted labels.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from accel.errors import ConfigError

# `stale_loss` (accel.selection.stale) is no scorer function: the selector
# reads it from a table in the train state.
SCORERS = ("loss", "grad_norm_bound", "reducible_loss", "attention",
           "uniform", "stale_loss")


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
      raise ConfigError("The reducible_loss scorer looks examples up by "
                        "'example_id', but the batch has only "
                        f"{sorted(batch)}.")
    return loss(params, batch) - table[batch["example_id"]]
  return score


def head_features(model, params, inputs) -> tuple[jax.Array, jax.Array]:
  """(logits, the classifier head's input as [B, D] float32)."""
  logits, state = model.apply({"params": params}, inputs, train=False,
                              mutable=["intermediates"])
  found = [v for path, v in flax.traverse_util.flatten_dict(
      state.get("intermediates", {})).items() if path[-1] == "features"]
  if len(found) != 1:
    raise ConfigError(
        f"The attention scorer reads the input of the model's classifier "
        f"head; {type(model).__name__} reports {len(found)} such inputs "
        "(classification models end in accel.models.layers.ClassifierHead).")
  features = found[0][0]
  return logits, features.reshape(features.shape[0], -1).astype(jnp.float32)


def prototype_attention(features_BxD, ref_features_RxD, ref_labels_R,
                        num_classes: int, temperature: float) -> jax.Array:
  """[B, C] attention of each (normalised) feature over the normalised class
  means of the reference features."""
  unit = lambda x: x / jnp.maximum(
      jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-6)
  onehot_RxC = jax.nn.one_hot(ref_labels_R, num_classes)
  sums_CxD = onehot_RxC.T @ unit(ref_features_RxD)
  protos_CxD = unit(sums_CxD / jnp.maximum(onehot_RxC.sum(0), 1.0)[:, None])
  return jax.nn.softmax(unit(features_BxD) @ protos_CxD.T / temperature,
                        axis=-1)


def attention_scorer(model, reference: dict[str, np.ndarray],
                     num_classes: int, temperature: float = 0.1):
  """-log attention of each candidate to its own class's prototype (module
  doc). `reference`: {"inputs", "label"} arrays of the reference set."""
  ref_inputs = jnp.asarray(reference["inputs"])
  ref_labels = jnp.asarray(reference["label"], jnp.int32)

  def score(params, batch):
    _, feats = head_features(model, params, batch["inputs"])
    _, ref_feats = head_features(model, params, ref_inputs)
    a_BxC = prototype_attention(feats, ref_feats, ref_labels, num_classes,
                                temperature)
    own = jnp.take_along_axis(a_BxC, batch["label"][:, None], axis=1)[:, 0]
    return -jnp.log(jnp.maximum(own, 1e-12))
  return score


def reference_set(labels_N: np.ndarray, per_class: int, num_classes: int,
                  seed: int = 0) -> np.ndarray:
  """Indices of `per_class` examples of each class (fewer where a class has
  fewer), drawn without replacement with a fixed seed."""
  if per_class < 1:
    raise ConfigError(f"reference_per_class must be >= 1, got {per_class}.")
  rng = np.random.default_rng(seed)
  idx = []
  for c in range(num_classes):
    members = np.flatnonzero(labels_N == c)
    idx.extend(rng.choice(members, min(per_class, len(members)),
                          replace=False))
  if not idx:
    raise ConfigError("The reference set is empty: no training labels.")
  return np.sort(np.asarray(idx))


def uniform_scorer(model):
  del model
  return lambda params, batch: jnp.zeros((batch["label"].shape[0],))


def make_scorer(name: str, model, *, irreducible_N=None, reference=None,
                num_classes=None, prototype_temperature: float = 0.1):
  if name == "attention":
    if reference is None or num_classes is None:
      raise ConfigError("The attention scorer needs a reference set and the "
                        "number of classes.")
    return attention_scorer(model, reference, num_classes,
                            prototype_temperature)
  if name == "loss":
    return loss_scorer(model)
  if name == "grad_norm_bound":
    return grad_norm_bound_scorer(model)
  if name == "uniform":
    return uniform_scorer(model)
  if name == "stale_loss":
    raise ConfigError("stale_loss has no scorer function: the selector "
                      "reads it from the train state's table "
                      "(accel.selection.stale).")
  if name == "reducible_loss":
    if irreducible_N is None:
      raise ConfigError("The reducible_loss scorer needs an irreducible-loss "
                        "table: set config.selection.irreducible_table to a "
                        "file made by launch/irreducible_loss.py.")
    return reducible_loss_scorer(model, irreducible_N)
  raise ConfigError(f"Unknown scorer {name!r}; expected one of {SCORERS}.")
