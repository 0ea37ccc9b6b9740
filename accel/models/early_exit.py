"""Adaptive depth: a small exit head after each block, and the first
confident exit answering for an example.

With `early_exit=True` a model (the Transformer classifier, the ResNet)
puts an exit head on the representation after each block but the last
(the normal classifier answers after the last). In training the exits'
logits go to the `exits` collection and the train step adds their
cross-entropy to the main one (accel.train.step: the mean over all
exits). In evaluation an example leaves at the first exit whose
confidence, its largest softmax probability, is above `exit_threshold`
(so 1.0 never leaves early: the full model's answer, bit for bit); the
model returns the logits of the exit each example took and records how
many blocks each used (`exits/blocks`).

Under jit every shape is static, so a batched evaluation runs every block
for every example whatever the threshold: adaptive depth changes the
answers and the blocks an example *needs*, not the time a batch takes
(benchmarks/early_exit has the measurement).
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from accel.models import layers

COLLECTION = "exits"


class ExitHead(nn.Module):
  """LayerNorm and a dense layer to float32 logits, on pooled features."""
  num_classes: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x_BxD):
    x_BxD = layers.layer_norm(self.dtype, self.param_dtype, name="norm")(
        x_BxD)
    return layers.dense(self.num_classes, ("embed", None), self.dtype,
                        self.param_dtype, name="dense",
                        float32_output=True)(x_BxD).astype(jnp.float32)


def choose(exits: Sequence[jax.Array], final_BxC: jax.Array,
           threshold: float) -> tuple[jax.Array, jax.Array]:
  """(logits [B, C] of the exit each example takes, blocks it used [B]):
  exit i (after block i + 1) where its confidence first exceeds
  `threshold`, else the final logits (all len(exits) + 1 blocks)."""
  all_ExBxC = jnp.stack([*exits, final_BxC])
  conf_ExB = jax.nn.softmax(all_ExBxC, axis=-1).max(-1)
  passed_ExB = conf_ExB > threshold
  passed_ExB = passed_ExB.at[-1].set(True)  # the final layer always answers
  first_B = jnp.argmax(passed_ExB, axis=0)
  logits_BxC = jnp.take_along_axis(all_ExBxC, first_B[None, :, None],
                                   axis=0)[0]
  return logits_BxC, (first_B + 1).astype(jnp.float32)


def finish(module: nn.Module, exits: Sequence[jax.Array],
           final_BxC: jax.Array, threshold: float, train: bool) -> jax.Array:
  """What an early-exit model returns: the final logits in training (the
  exits' logits sown for the loss), the chosen exit's in evaluation (the
  blocks used sown)."""
  if train:
    module.sow(COLLECTION, "logits", tuple(exits))
    return final_BxC
  logits_BxC, blocks_B = choose(exits, final_BxC, threshold)
  module.sow(COLLECTION, "blocks", blocks_B)
  return logits_BxC
