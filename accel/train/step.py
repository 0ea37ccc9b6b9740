"""The pure train and eval steps.

`train_step(state, batch) -> (state, metrics)` and `eval_step(params, batch)
-> sums` take the model and optimizer as static arguments (bound with
functools.partial before jit). Both fetch nothing from the host.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from accel.models import early_exit as exit_lib
from accel.optim import Optimizer
from accel.train import distill as distill_lib
from accel.train import prune as prune_lib
from accel.train.distill import Distill
from accel.train.state import TrainState

Batch = dict[str, jax.Array]
_SELECTION_STREAM = 0x5E1EC7  # folds the step's key into selection's own


def _weights_BxT(batch: Batch, labels) -> tuple[jax.Array, jax.Array]:
  """How much each target counts, and which targets are real.

  The first is label mask x selection weight x evaluation validity, the
  second the same without the selection weight: the loss divides by the
  count of real targets, so importance weights keep it unbiased.
  """
  w = batch.get("label_mask", jnp.ones(labels.shape, jnp.float32))
  w = w.reshape(labels.shape[0], -1).astype(jnp.float32)
  if "mask" in batch:  # evaluation padding
    w = w * batch["mask"].astype(jnp.float32)[:, None]
  if "weight" not in batch:
    return w, w
  return w * batch["weight"].astype(jnp.float32)[:, None], w


def loss_and_stats(params, model: nn.Module, batch: Batch, rng, train: bool,
                   teacher_logits=None, distill: Distill | None = None,
                   per_example: bool = False):
  """Weighted cross-entropy over the real targets, and the sums that
  evaluation adds up.

  Logits are float32 (the models cast them), so the softmax and the loss are
  float32 whatever the compute dtype. With `teacher_logits` the loss is
  `(1 - alpha) * hard + alpha * soft` (accel/train/distill.py), both
  averaged over the same weighted targets; the stats then also carry the two
  terms' sums. With `per_example`, the stats carry `example_loss` [B]: each
  example's cross-entropy, averaged over its real targets and not weighted
  by selection (the stale_loss table records it).
  """
  exits = {}
  if getattr(model, "early_exit", False):
    logits, state = model.apply({"params": params}, batch["inputs"],
                                train=train, rngs={"dropout": rng},
                                mutable=[exit_lib.COLLECTION])
    exits = state.get(exit_lib.COLLECTION, {})
  else:
    logits = model.apply({"params": params}, batch["inputs"], train=train,
                         rngs={"dropout": rng})
  labels = batch["label"]
  logits_BxTxC = logits.reshape(labels.shape[0], -1, logits.shape[-1])
  labels_BxT = labels.reshape(labels.shape[0], -1)
  losses_BxT = optax.softmax_cross_entropy_with_integer_labels(
      logits_BxTxC, labels_BxT)
  correct_BxT = (jnp.argmax(logits_BxTxC, -1) == labels_BxT)
  w_BxT, real_BxT = _weights_BxT(batch, labels_BxT)
  weight_sum = real_BxT.sum()
  loss_sum = (losses_BxT * w_BxT).sum()
  if "logits" in exits:
    # Adaptive depth (accel.models.early_exit): every exit's cross-entropy
    # counts as much as the final one's.
    exit_sums = [(optax.softmax_cross_entropy_with_integer_labels(
        e.reshape(logits_BxTxC.shape), labels_BxT) * w_BxT).sum()
                 for e in exits["logits"][0]]
    loss_sum = (loss_sum + sum(exit_sums)) / (1 + len(exit_sums))
  stats = {"loss_sum": loss_sum, "correct_sum": (correct_BxT * real_BxT).sum(),
           "weight_sum": weight_sum}
  if "blocks" in exits:  # evaluation: the blocks each example used
    stats["blocks_sum"] = (exits["blocks"][0] * real_BxT[:, 0]).sum()
  if per_example:
    stats["example_loss"] = ((losses_BxT * real_BxT).sum(1)
                             / jnp.maximum(real_BxT.sum(1), 1.0))
  if teacher_logits is not None:
    soft_BxT = distill_lib.soft_loss_BxT(
        logits_BxTxC, teacher_logits.reshape(logits_BxTxC.shape),
        distill.temperature)
    stats["hard_loss_sum"] = loss_sum
    stats["soft_loss_sum"] = (soft_BxT * w_BxT).sum()
    loss_sum = ((1 - distill.alpha) * loss_sum
                + distill.alpha * stats["soft_loss_sum"])
  if labels.ndim == 1:  # classification: per-class sums for evaluation
    onehot_BxC = jax.nn.one_hot(labels, logits_BxTxC.shape[-1])
    stats["class_correct"] = onehot_BxC.T @ (correct_BxT * real_BxT)[:, 0]
    stats["class_count"] = onehot_BxC.T @ real_BxT[:, 0]
  return loss_sum / jnp.maximum(weight_sum, 1e-9), stats


def train_step(state: TrainState, batch: Batch, teacher_params=None, *,
               model: nn.Module, optimizer: Optimizer, selector=None,
               distill: Distill | None = None,
               pruning: prune_lib.Pruning | None = None
               ) -> tuple[TrainState, dict[str, Any]]:
  """One update. With a `selector` (accel.selection), `batch` holds the
  candidates; they are scored, selected and gathered here first. With
  `distill`, the teacher (`teacher_params`) scores the batch in eval mode
  and the loss mixes in its soft targets. With `pruning`, the masks are
  updated on their schedule and zero the gradients and the updated
  parameters (accel.train.prune)."""
  rng = jax.random.fold_in(state.rng, state.step)
  selection_metrics = {}
  if selector is not None:
    batch, selection_metrics = selector(
        state.params, batch, jax.random.fold_in(rng, _SELECTION_STREAM),
        state.step, state.selection)
  teacher, distill_metrics = None, {}
  if distill is not None:
    teacher = distill_lib.teacher_logits(distill, teacher_params,
                                         batch["inputs"])
  grad_fn = jax.value_and_grad(loss_and_stats, has_aux=True)
  (loss, stats), grads = grad_fn(state.params, model, batch, rng, True,
                                 teacher, distill,
                                 state.selection is not None)
  selection_state = state.selection
  if state.selection is not None:
    selection_state = selector.record(state.selection, batch,
                                      stats["example_loss"], state.step)
  if distill is not None:
    n = jnp.maximum(stats["weight_sum"], 1e-9)
    distill_metrics = {"distill/hard_loss": stats["hard_loss_sum"] / n,
                       "distill/soft_loss": stats["soft_loss_sum"] / n}
  masks, prune_metrics = state.masks, {}
  if pruning is not None:
    masks = prune_lib.step_masks(pruning, state.masks, state.params, grads,
                                 state.step)
    grads = prune_lib.apply(masks, grads)
    prune_metrics = {"prune/zero_share": prune_lib.zero_share(
        masks, prune_lib.prunable(state.params))}
  updates, opt_state = optimizer.tx.update(grads, state.opt_state,
                                           state.params, value=loss)
  params = optax.apply_updates(state.params, updates)
  if pruning is not None:
    params = prune_lib.apply(masks, params)
  metrics = {
      "loss": loss,
      "accuracy": stats["correct_sum"] / jnp.maximum(stats["weight_sum"], 1e-9),
      "grad_norm": optax.tree.norm(grads),
      "update_norm": optax.tree.norm(updates),
      "param_norm": optax.tree.norm(params),
      "learning_rate": optimizer.schedule(state.step),
      **optimizer.diagnostics(opt_state),
      **selection_metrics,
      **distill_metrics,
      **prune_metrics,
  }
  new_state = state.replace(step=state.step + 1, params=params,
                            opt_state=opt_state, selection=selection_state,
                            masks=masks)
  return new_state, metrics


def eval_step(state: TrainState, batch: Batch, *, model: nn.Module,
              optimizer: Optimizer) -> dict[str, jax.Array]:
  params = optimizer.eval_params(state.opt_state, state.params)
  _, stats = loss_and_stats(params, model, batch, state.rng, False)
  return stats
