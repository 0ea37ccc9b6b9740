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

from accel.optim import gt_transform
from accel.optim import meta_attention
from accel.optim import Optimizer
from accel.train.state import TrainState

Batch = dict[str, jax.Array]


def _weights_BxT(batch: Batch, labels) -> jax.Array:
  """How much each target counts: token mask x example weight x validity."""
  w = batch.get("label_mask", jnp.ones(labels.shape, jnp.float32))
  w = w.reshape(labels.shape[0], -1).astype(jnp.float32)
  for key in ("weight", "mask"):  # selection weights; eval padding
    if key in batch:
      w = w * batch[key].astype(jnp.float32)[:, None]
  return w


def loss_and_stats(params, model: nn.Module, batch: Batch, rng, train: bool):
  """Weighted mean cross-entropy, and the sums that evaluation adds up.

  Logits are float32 (the models cast them), so the softmax and the loss are
  float32 whatever the compute dtype.
  """
  logits = model.apply({"params": params}, batch["inputs"], train=train,
                       rngs={"dropout": rng})
  labels = batch["label"]
  logits_BxTxC = logits.reshape(labels.shape[0], -1, logits.shape[-1])
  labels_BxT = labels.reshape(labels.shape[0], -1)
  losses_BxT = optax.softmax_cross_entropy_with_integer_labels(
      logits_BxTxC, labels_BxT)
  correct_BxT = (jnp.argmax(logits_BxTxC, -1) == labels_BxT)
  w_BxT = _weights_BxT(batch, labels_BxT)
  weight_sum = w_BxT.sum()
  loss_sum = (losses_BxT * w_BxT).sum()
  stats = {"loss_sum": loss_sum, "correct_sum": (correct_BxT * w_BxT).sum(),
           "weight_sum": weight_sum}
  return loss_sum / jnp.maximum(weight_sum, 1e-9), stats


def train_step(state: TrainState, batch: Batch, *, model: nn.Module,
               optimizer: Optimizer) -> tuple[TrainState, dict[str, Any]]:
  rng = jax.random.fold_in(state.rng, state.step)
  grad_fn = jax.value_and_grad(loss_and_stats, has_aux=True)
  (loss, stats), grads = grad_fn(state.params, model, batch, rng, True)
  updates, opt_state = optimizer.tx.update(grads, state.opt_state,
                                           state.params, value=loss)
  params = optax.apply_updates(state.params, updates)
  metrics = {
      "loss": loss,
      "accuracy": stats["correct_sum"] / jnp.maximum(stats["weight_sum"], 1e-9),
      "grad_norm": optax.tree.norm(grads),
      "update_norm": optax.tree.norm(updates),
      "param_norm": optax.tree.norm(params),
      "learning_rate": optimizer.schedule(state.step),
      **gt_transform.diagnostics(opt_state),
      **meta_attention.diagnostics(opt_state),
  }
  new_state = state.replace(step=state.step + 1, params=params,
                            opt_state=opt_state)
  return new_state, metrics


def eval_step(state: TrainState, batch: Batch, *, model: nn.Module,
              optimizer: Optimizer) -> dict[str, jax.Array]:
  params = optimizer.eval_params(state.opt_state, state.params)
  _, stats = loss_and_stats(params, model, batch, state.rng, False)
  return stats
